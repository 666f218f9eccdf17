"""The MLflow resource: tracking, one parent run per Dagster run and project, links for the UI.

dagster-mlflow gives each Dagster run one MLflow run: its `mlflow_tracking` resource starts (or,
in another step process, finds by the tag `dagster_run_id`) that run when the resource
initialises and keeps it as the process's active run, and its hook `end_mlflow_on_run_finished`
ends it when the last step finishes or a step fails. leadscore keeps one experiment per project
and a run of `score_all_sources` spans all projects, so one global active run cannot serve: the
parent run is per (Dagster run, project), in the project's experiment. `ProjectParentRun` is
dagster-mlflow's own `MlFlow` class with one change, the start-up: it finds the parent by the
same tag and creates it through the client instead of activating it, so several projects'
parents can be open in one process and candidate, evaluation and drift runs nest under theirs
(`parent_run_id`). The job hook is dagster-mlflow's `end_mlflow_on_run_finished`; it calls
`end_run` on this resource, which ends this Dagster run's parents.

Process-wide MLflow state stays here: runs, and logging into the active run, exist only in
MLflow's fluent API (`mlflow.start_run`, `mlflow.log_*`, `log_model`), which reads the tracking
URI set for the process. Everything else goes through `client` (this store's URI), and lib/ is
handed that client (lib/scoring/registry.py).
"""

from __future__ import annotations

import fcntl

import os
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import quote

import dagster as dg
import mlflow
from dagster_mlflow.resources import MlFlow
from mlflow import MlflowClient
from pydantic import PrivateAttr

from leadscore_assets.lib.scoring.registry import (
    classifier_logging,
    load_sklearn,
    model_files,
    regressor_logging,
    serving_model,
)

DAGSTER_RUN_TAG = "dagster_run_id"  # dagster-mlflow's tag: how a step process finds its parent run
# MLflow's classic machine-learning view (run table, metrics, artifacts), not its GenAI view
# (traces, token usage). The UI of the MLflow we pin (3.17) decides the view from the link's
# `workflowType` query, else from the browser's last choice (GenAI on a browser that never chose),
# and no longer reads the experiment's `mlflow.experimentKind` tag: every link we write carries
# the query. The tag is still set, for the UIs of earlier 3.x releases that read it.
CLASSIC_ML_VIEW = {"mlflow.experimentKind": "custom_model_development"}
CLASSIC_ML_VIEW_QUERY = "workflowType=machine_learning"


class ProjectParentRun(MlFlow):
    """dagster-mlflow's run-per-Dagster-run, one per project, created without becoming active."""

    def __init__(self, client: MlflowClient, experiment, dagster_run_id: str, run_name: str, tags: dict[str, str]):
        # MlFlow.__init__ sets global experiment and active run; only its lookup and tags are used
        self.tracking_client, self.experiment, self.dagster_run_id = client, experiment, dagster_run_id
        self.run_name, self.extra_tags, self.env_tags_to_log = run_name, tags, []
        self.log = SimpleNamespace(info=lambda *_: None)
        self.mlflow_run_id = self._get_current_run_id()
        self._set_active_run(self.mlflow_run_id)

    def _set_active_run(self, run_id=None):
        if run_id is None:
            tags = {DAGSTER_RUN_TAG: self.dagster_run_id, "mlflow.runName": self.run_name, **self.extra_tags}
            self.mlflow_run_id = self.tracking_client.create_run(self.experiment.experiment_id, tags=tags).info.run_id

    def _get_current_run_id(self, experiment=None, dagster_run_id=None):
        found = self.tracking_client.search_runs(
            [self.experiment.experiment_id], max_results=1,
            filter_string=f"tags.{DAGSTER_RUN_TAG} = '{self.dagster_run_id}' and tags.`leadscore.role` = 'dagster_run'")
        return found[0].info.run_id if found else None


class MlflowStore(dg.ConfigurableResource):
    tracking_uri: str
    artifact_location: str
    # where people open MLflow's UI (links in asset metadata); per environment
    ui_url: str = "http://127.0.0.1:5000"
    dagster_ui_url: str = "http://127.0.0.1:3000"
    _dagster_run_id: str | None = PrivateAttr(default=None)
    _job_name: str = PrivateAttr(default="")
    _parents: dict = PrivateAttr(default_factory=dict)  # (Dagster run id, project) -> parent run id

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # for the fluent API (`run`), and for callers of lib's loaders that hand no client yet
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)
        if self.tracking_uri.startswith("sqlite:///"):
            self._create_sqlite_store(Path(self.tracking_uri.removeprefix("sqlite:///")))
        self._dagster_run_id = context.run_id
        run = getattr(context, "dagster_run", None)
        self._job_name = run.job_name if run is not None else ""

    def _create_sqlite_store(self, db: Path) -> None:
        """Create (or migrate) the SQLite store's tables one process at a time: step processes of
        a multiprocess run start together, and MLflow's first-use schema creation is not safe
        against a second process doing the same ("table ... already exists")."""
        db.parent.mkdir(parents=True, exist_ok=True)
        with open(db.parent / ".schema.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self.client.search_experiments(max_results=1)
            self.client.search_registered_models(max_results=1)

    @property
    def client(self) -> MlflowClient:
        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def experiment_id(self, project: str) -> str:
        """One experiment per project, with artifacts under the configured artifact location,
        opened in MLflow's classic ML view."""
        name = f"leadscore/{project}"
        exp = self.client.get_experiment_by_name(name)
        if exp is not None:
            if exp.tags.get("mlflow.experimentKind") != CLASSIC_ML_VIEW["mlflow.experimentKind"]:
                self.client.set_experiment_tag(exp.experiment_id, *next(iter(CLASSIC_ML_VIEW.items())))
            return exp.experiment_id
        location = Path(self.artifact_location).resolve() / project
        return self.client.create_experiment(name, artifact_location=location.as_uri(), tags=CLASSIC_ML_VIEW)

    def parent_run_id(self, project: str) -> str | None:
        """This Dagster run's parent run in the project's experiment (created on first use);
        None outside a Dagster run."""
        if not self._dagster_run_id:
            return None
        if (self._dagster_run_id, project) in self._parents:  # one lookup per run and project
            return self._parents[self._dagster_run_id, project]
        client = self.client
        experiment = client.get_experiment(self.experiment_id(project))
        name = f"{self._job_name or 'run'} {self._dagster_run_id[:8]}"
        tags = {"leadscore.project": project, "leadscore.role": "dagster_run", "dagster.run_id": self._dagster_run_id,
                "dagster.run_url": f"{self.dagster_ui_url.rstrip('/')}/runs/{self._dagster_run_id}",
                "mlflow.note.content": f"Dagster run [{self._dagster_run_id}]"
                                       f"({self.dagster_ui_url.rstrip('/')}/runs/{self._dagster_run_id})"}
        found = ProjectParentRun(client, experiment, self._dagster_run_id, name, tags).mlflow_run_id
        self._parents[self._dagster_run_id, project] = found
        return found

    def end_run(self, status: str = "FINISHED") -> None:
        """Called by dagster-mlflow's `end_mlflow_on_run_finished` hook: end this Dagster run's
        parent runs (every project's) that are still open."""
        if not self._dagster_run_id:
            return
        client = self.client
        experiments = [e.experiment_id for e in client.search_experiments(filter_string="name LIKE 'leadscore/%'")]
        if not experiments:
            return
        for run in client.search_runs(experiments, filter_string=(
                f"tags.{DAGSTER_RUN_TAG} = '{self._dagster_run_id}' and attributes.status = 'RUNNING'")):
            client.set_terminated(run.info.run_id, status=status)

    def end_parent_run(self, project: str, status: str = "FINISHED") -> None:
        """End this Dagster run's parent run of `project` (its last step, `published`, passed)."""
        if self._dagster_run_id and (run_id := self.parent_run_id(project)):
            self.client.set_terminated(run_id, status=status)

    @contextmanager
    def run(self, project: str, run_name: str, role: str, tags: dict[str, str] | None = None):
        """A run named by what it holds (`lightgbm`, `evaluation: lightgbm`, `drift`), nested under
        this Dagster run's parent run of the project."""
        mlflow.set_tracking_uri(self.tracking_uri)
        tags = {"leadscore.project": project, "leadscore.role": role, **(tags or {})}
        if self._dagster_run_id:
            tags["dagster.run_id"] = self._dagster_run_id
        with mlflow.start_run(experiment_id=self.experiment_id(project), run_name=run_name, tags=tags,
                              parent_run_id=self.parent_run_id(project), nested=True) as run:
            yield run

    # -- inside `run(...)`: what assets record, through this resource only -------------------
    @contextmanager
    def nested_run(self, run_name: str, tags: dict[str, str] | None = None):
        """A child of the active run (e.g. one Optuna trial under its candidate), in its experiment
        (MLflow would put a nested run without one in the Default experiment)."""
        tags = {**(tags or {}), **({"dagster.run_id": self._dagster_run_id} if self._dagster_run_id else {})}
        parent = mlflow.active_run()
        with mlflow.start_run(run_name=run_name, nested=True, tags=tags,
                              experiment_id=parent.info.experiment_id if parent else None) as run:
            yield run

    def log_params(self, params: dict) -> None:
        mlflow.log_params(params)

    def log_metrics(self, metrics: dict[str, float]) -> None:
        mlflow.log_metrics(metrics)

    def set_tag(self, key: str, value: str) -> None:
        mlflow.set_tag(key, value)

    def log_artifacts(self, local_dir: str | Path, artifact_path: str) -> None:
        mlflow.log_artifacts(str(local_dir), artifact_path=artifact_path)

    def log_artifact(self, local_file: str | Path, artifact_path: str) -> None:
        mlflow.log_artifact(str(local_file), artifact_path=artifact_path)

    def log_frame(self, frame, artifact_file: str) -> None:
        """A table as a Parquet artifact of the active run."""
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / Path(artifact_file).name
            frame.to_parquet(path, index=False)
            mlflow.log_artifact(str(path), artifact_path=str(Path(artifact_file).parent))

    def run_frame(self, run_id: str, artifact_file: str):
        """A Parquet artifact of a run as a DataFrame; None when the run has no such artifact."""
        import pandas as pd

        with tempfile.TemporaryDirectory() as tmp:
            try:
                path = self.client.download_artifacts(run_id, artifact_file, tmp)
            except (OSError, mlflow.exceptions.MlflowException):
                return None
            return pd.read_parquet(path)

    def log_classifier(self, pipeline, x_example) -> str:
        """Log a fitted pipeline in the active run with its signature; its model URI."""
        return mlflow.sklearn.log_model(pipeline, **classifier_logging(pipeline, x_example)).model_uri

    def log_regressor(self, model, x_example) -> str:
        """Log a fitted regressor in the active run with its signature; its model URI."""
        return mlflow.sklearn.log_model(model, **regressor_logging(model, x_example)).model_uri

    def log_serving_model(self, *, config, fs, raw_cols: list[str], sklearn_model_uri: str, frame, threshold: float,
                          references: dict[str, str], revenue_model_uri: str | None = None, scores=None) -> str:
        """Log the project's serving pyfunc (lib/scoring/registry.py `serving_model`) around the
        logged sklearn pipeline at `sklearn_model_uri` in the active run; its model URI. `scores`:
        that pipeline's P(positive) on `frame`'s rows, when the caller has them."""
        client = self.client
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            sub = model_files(client, sklearn_model_uri, tmp / "downloads" / "clf")
            revenue = model_files(client, revenue_model_uri, tmp / "downloads" / "rev") if revenue_model_uri else None
            logged = serving_model(tmp, config=config, fs=fs, raw_cols=raw_cols, sklearn_model_dir=sub, frame=frame,
                                   threshold=threshold, references=references, revenue_model_dir=revenue,
                                   scores=scores)
            # no input example, on purpose (see `serving_model`): MLflow's nag about it is dropped
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*An input example was not provided", category=UserWarning)
                return mlflow.pyfunc.log_model(**logged).model_uri

    def load_model(self, model_uri: str):
        """A logged sklearn model (pipeline) by URI."""
        return load_sklearn(self.client, model_uri)

    def load_served_model(self, name: str, alias: str):
        """The registered pyfunc under an alias (what `mlflow models serve` serves) and its version."""
        client = self.client
        version = client.get_model_version_by_alias(name, alias).version
        return mlflow.pyfunc.load_model(str(model_files(client, f"models:/{name}/{version}"))), version

    # links for asset metadata: one click from the Dagster UI to MLflow's, in its classic ML view
    def ui_link(self, route: str) -> str:
        """A page of MLflow's UI (`experiments/1/runs/<id>`), opened in the classic ML view."""
        return f"{self.ui_url.rstrip('/')}/#/{route}?{CLASSIC_ML_VIEW_QUERY}"

    def experiment_url(self, project: str) -> str:
        return self.ui_link(f"experiments/{self.experiment_id(project)}")

    def run_url(self, project: str, run_id: str, artifact: str | None = None) -> str:
        """The run's page; with `artifact` (a file or folder of the run's artifacts) the
        artifact view opened on it, which previews a file (a PNG shows as the picture)."""
        route = f"experiments/{self.experiment_id(project)}/runs/{run_id}"
        return self.ui_link(f"{route}/artifactPath/{quote(artifact)}" if artifact else route)

    def model_version_url(self, name: str, version: str) -> str:
        return self.ui_link(f"models/{quote(name)}/versions/{version}")


def env_ui_urls() -> dict[str, str]:
    """The UI addresses of this environment (LEADSCORE_MLFLOW_UI_URL, LEADSCORE_DAGSTER_UI_URL)."""
    return {k: v for k, v in (("ui_url", os.getenv("LEADSCORE_MLFLOW_UI_URL")),
                              ("dagster_ui_url", os.getenv("LEADSCORE_DAGSTER_UI_URL"))) if v}
