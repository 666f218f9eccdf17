"""The feedback loop driven as the daemon drives it: one project's data directory, Dagster instance
and sensor cursor, ticked tick by tick, the runs it requests executed in-process on that instance,
and what they leave in the warehouse and the MLflow registry (`FeedbackLoop`); and numbered outcome
files of a scenario with a known truth (`demo_data.feedback`) fed through it, the model in use
judged against that truth (`ScenarioLoop`, used by the feedback tests and
`benchmarks/feedback_loop.py`)."""

from __future__ import annotations

import contextlib
import json
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import duckdb
import mlflow
import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from leadscore_assets.components.lead_scoring_project import project_definitions
from leadscore_assets.demo_data import feedback, linkedin
from leadscore_assets.lib.project.config import ProjectConfig
from leadscore_assets.lib.features.frame import ID, FeatureSet
from leadscore_assets.lib.scoring.registry import load_version
from leadscore_assets.resources import build_resources
from leadscore_assets.resources.feedback_inbox import FeedbackFile, mark_processed
from leadscore_assets.testing.runs import warehouse_file, with_candidates

SENSOR, JOB = "linkedin_feedback_sensor", "linkedin_pipeline"


class FeedbackLoop:
    """One project's data directory, Dagster instance and sensor cursor, driven like the daemon."""

    def __init__(self, config: ProjectConfig, data_dir: Path, instance: dg.DagsterInstance):
        self.config, self.data_dir, self.instance = config, data_dir, instance
        self.cursor: str | None = None
        self.reported: set[str] = set()  # leads some outcome file already covers
        self.sensor = self.definitions(config).resolve_sensor_def(SENSOR)
        self.tracking_uri = f"sqlite:///{data_dir / 'mlflow' / 'mlflow.db'}"

    @property
    def folder(self) -> Path:
        return self.data_dir / self.config.feedback.folder

    def definitions(self, config: ProjectConfig) -> dg.Definitions:
        return dg.Definitions.merge(
            project_definitions(config),
            dg.Definitions(resources=build_resources(self.data_dir), executor=dg.in_process_executor),
        )

    # -- the sensor, tick by tick ------------------------------------------------------------

    def tick(self):
        """One sensor evaluation; its cursor is stored for the next tick, as the daemon does."""
        with dg.build_sensor_context(instance=self.instance, cursor=self.cursor,
                                     resources=build_resources(self.data_dir)) as context:
            data = self.sensor.evaluate_tick(context)
        self.cursor = data.cursor
        return data

    def requests_until_quiet(self, max_ticks: int = 4) -> list[dg.RunRequest]:
        """Tick until a tick has nothing ready and nothing pending; every run request on the way."""
        requests = []
        for _ in range(max_ticks):
            data = self.tick()
            requests += data.run_requests
            if not data.run_requests and "not complete yet" not in (data.skip_message or ""):
                return requests
        raise AssertionError(f"sensor still busy after {max_ticks} ticks: {data.skip_message}")

    def loaded_by_hand(self, requests: list[dg.RunRequest]) -> None:
        """Record requested files as landed outside the sensor (a manual backfill), for tests that
        only look at what the sensor asks for: a request that never runs would be retried."""
        files = [FeedbackFile(path=Path(r.run_config["ops"]["linkedin_land_feedback"]["config"]["files"][0]),
                              content_hash=r.run_config["ops"]["linkedin_land_feedback"]["config"]["content_hashes"][0],
                              size=0) for r in requests]
        self.cursor = json.dumps(mark_processed(json.loads(self.cursor), files))

    # -- files ---------------------------------------------------------------------------------

    def outcome_rows(self, n: int, seed: int, bad_rows: int = 0) -> pd.DataFrame:
        rows = feedback.generate(self.data_dir, n=n, seed=seed, bad_rows=bad_rows, exclude=self.reported)
        self.reported |= set(rows.lead_id)
        return rows

    def outcome_bytes(self, n: int, seed: int, bad_rows: int = 0) -> bytes:
        return self.outcome_rows(n, seed, bad_rows).to_csv(index=False).encode()

    def drop(self, name: str, n: int, seed: int, bad_rows: int = 0) -> Path:
        """A complete outcome file dropped by the demo CRM export (temp name, then renamed)."""
        path = feedback.write_feedback(self.data_dir, n=n, seed=seed, bad_rows=bad_rows, name=name,
                                       exclude=self.reported)
        self.reported |= set(pd.read_csv(path, dtype=str).lead_id)
        return path

    # -- runs ----------------------------------------------------------------------------------

    def execute(self, request: dg.RunRequest | None = None, config: ProjectConfig | None = None):
        """The run a request asks for (or a plain retrain), on the shared instance, tagged with the
        run key as the daemon tags the runs it launches."""
        job = self.definitions(config or self.config).resolve_job_def(JOB)
        if request is None:
            return job.execute_in_process(instance=self.instance, raise_on_error=False)
        return job.execute_in_process(run_config=request.run_config, instance=self.instance, raise_on_error=False,
                                      tags={**request.tags, "dagster/run_key": request.run_key})

    def query(self, sql: str, params: list | None = None) -> pd.DataFrame:
        # What readers see: the published file (runs write staged copies and swap them in).
        with duckdb.connect(str(warehouse_file(self.data_dir, self.config.name)), read_only=True) as conn:
            return conn.execute(sql, params or []).df()

    # -- the registry ----------------------------------------------------------------------------

    @property
    def client(self) -> mlflow.MlflowClient:
        return mlflow.MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def alias(self, alias: str) -> str | None:
        try:
            return str(self.client.get_model_version_by_alias(self.config.registered_model_name, alias).version)
        except mlflow.exceptions.MlflowException:
            return None

    def versions(self) -> list[str]:
        found = self.client.search_model_versions(f"name='{self.config.registered_model_name}'")
        return sorted((str(v.version) for v in found), key=int)

    def version_of(self, run_id: str):
        """The model version a Dagster run registered (its challenger)."""
        name = self.config.registered_model_name
        found = [v for v in self.client.search_model_versions(f"name='{name}'")
                 if v.tags.get("dagster.run_id") == run_id]
        assert len(found) == 1, f"run {run_id} registered {len(found)} versions"
        return self.client.get_model_version(name, found[0].version)

    def load_champion(self):
        return load_version(self.config.registered_model_name, "champion", self.client)

    def decisions(self) -> pd.DataFrame:
        return self.query("SELECT * FROM linkedin.model_decisions ORDER BY decided_at")

    def decision_of(self, run_id: str) -> pd.Series:
        rows = self.decisions().query("dagster_run_id == @run_id")
        assert len(rows) == 1, f"run {run_id} appended {len(rows)} decision rows"
        return rows.iloc[0]


def step_failures(result) -> list[str]:
    """`step: error` for every failed step, to show in an assertion message."""
    out = []
    for e in result.all_events:
        if e.event_type_value == "STEP_FAILURE":
            error = e.event_specific_data.error
            while error is not None and error.cause is not None:  # down to the asset's own exception
                error = error.cause
            out.append(f"{e.step_key}: {error.message.strip() if error else e.message}")
    return out



# -- scenarios: outcome files with a known truth ------------------------------------------------

ROWS, EXPORT_SEED, FEEDBACK_SEED, OUTCOMES = 2000, 23, 5, 250
CANDIDATES = ["dummy", "logistic_regression", "spline_logistic"]


def scenario_config(config: ProjectConfig, candidates: list[str] = CANDIDATES) -> ProjectConfig:
    """The project's own policy and features; a small candidate list and no Optuna search."""
    config = with_candidates(config, candidates)
    search = config.models.search.model_copy(update={"n_trials": 0})
    return config.model_copy(update={"models": config.models.model_copy(update={"search": search})})


def auc_against_truth(score: np.ndarray, true_probability: np.ndarray) -> float:
    """The ROC-AUC `score` has in expectation on outcomes drawn from `true_probability`: every
    lead counts as a positive with weight p and as a negative with weight 1 - p."""
    p = np.asarray(true_probability, dtype=float)
    s = np.asarray(score, dtype=float)
    y = np.r_[np.ones(len(p)), np.zeros(len(p))]
    return float(roc_auc_score(y, np.r_[s, s], sample_weight=np.r_[p, 1 - p]))


class ScenarioLoop(FeedbackLoop):
    """A project fed numbered outcome files of one scenario, each run as the sensor requests."""

    def __init__(self, config: ProjectConfig, data_dir: Path, instance: dg.DagsterInstance, scenario: str,
                 outcomes: int = OUTCOMES, seed: int = FEEDBACK_SEED):
        super().__init__(config, data_dir, instance)
        self.scenario, self.outcomes, self.seed = scenario, outcomes, seed

    @classmethod
    @contextlib.contextmanager
    def started(cls, config: ProjectConfig, scenario: str, root: Path | None = None, rows: int = ROWS,
                export_seed: int = EXPORT_SEED, **kwargs) -> Iterator[ScenarioLoop]:
        """Demo export, instance and a first run that makes the champion; the sensor ticked once."""
        with contextlib.ExitStack() as stack:
            if root is None:
                root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"feedback_{scenario}_")))
            data_dir, home = root / "data", root / "dagster_home"
            home.mkdir(parents=True)
            linkedin.write(data_dir, rows=rows, seed=export_seed)
            instance = dg.DagsterInstance.local_temp(tempdir=str(home), overrides={"telemetry": {"enabled": False}})
            stack.callback(instance.dispose)
            loop = cls(config, data_dir, instance, scenario, **kwargs)
            first = loop.execute()
            assert first.success, step_failures(first)
            assert loop.alias("champion") == "1"
            assert loop.tick().run_requests == []
            yield loop

    def land(self, batch: int) -> pd.Series:
        """Drop file `batch` of the scenario, tick until the sensor is quiet, run what it asks for;
        the decision row of that run (with `seconds`: the run's wall time)."""
        path = feedback.write_feedback(self.data_dir, n=self.outcomes, seed=self.seed, scenario=self.scenario,
                                       batch=batch)
        self.reported |= set(pd.read_csv(path, dtype=str).lead_id)
        [request] = self.requests_until_quiet()
        assert request.tags["leadscore/feedback_file"] == path.name
        started = time.perf_counter()
        result = self.execute(request)
        assert result.success, step_failures(result)
        return pd.concat([self.decision_of(result.run_id),
                          pd.Series({"file": path.name, "seconds": time.perf_counter() - started})])

    def open_lead_auc(self, version: str | None = None) -> dict[str, float]:
        """The champion's (or model `version`'s) ROC-AUC against the scenario's truth on every open
        lead of the export, next to the truth's own (the best any model can do there)."""
        truth = feedback.true_probabilities(self.data_dir, scenario=self.scenario)
        open_ids = feedback.open_leads(self.data_dir).lead_id
        features = self.query(f"SELECT * FROM linkedin.features WHERE list_contains(?, {ID})", [list(open_ids)])
        fs = FeatureSet.from_frame(self.query("SELECT * FROM linkedin.feature_schema"))
        rows = features.merge(truth.rename(columns={"lead_id": ID}), on=ID, how="inner")
        if version is None:
            model = self.load_champion()
        else:
            model = load_version(self.config.registered_model_name, str(version), self.client)
        score = model.predict_proba(rows[fs.columns])[:, 1]
        return {"model": auc_against_truth(score, rows.true_probability),
                "truth": auc_against_truth(rows.true_probability, rows.true_probability),
                "leads": float(len(rows))}
