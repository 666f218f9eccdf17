"""A small MLflow resource for assets: tracking, model logging and the registry's aliases.

dagster-mlflow's `mlflow_tracking` is an op-era resource that opens a single MLflow run per
Dagster run when the resource initialises and keeps it as global state; leadscore logs one run
per candidate model and per evaluation, so it uses this explicit resource instead.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import mlflow
from mlflow import MlflowClient


class MlflowStore(dg.ConfigurableResource):
    tracking_uri: str
    artifact_location: str

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        if self.tracking_uri.startswith("sqlite:///"):
            Path(self.tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)

    @property
    def client(self) -> MlflowClient:
        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def experiment_id(self, project: str) -> str:
        """One experiment per project, with artifacts under the configured artifact location."""
        name = f"leadscore/{project}"
        exp = self.client.get_experiment_by_name(name)
        if exp is not None:
            return exp.experiment_id
        location = Path(self.artifact_location).resolve() / project
        return self.client.create_experiment(name, artifact_location=location.as_uri())

    def end_abandoned_runs(self, project: str, dagster_run_id: str) -> list[str]:
        """Mark FAILED the MLflow runs of `project` still RUNNING from another Dagster run.

        Call it while holding the project (Warehouse.claim): no other run of the project can be
        alive then, so such a run was left open by a killed step and would stay RUNNING forever.
        """
        stale = self.client.search_runs(
            [self.experiment_id(project)],
            filter_string=f"attributes.status = 'RUNNING' and tags.`dagster.run_id` != '{dagster_run_id}'",
        )
        for run in stale:
            self.client.set_tag(run.info.run_id, "leadscore.ended_by", f"dagster run {dagster_run_id}: abandoned")
            self.client.set_terminated(run.info.run_id, status="FAILED")
        return [run.info.run_id for run in stale]

    @contextmanager
    def run(self, project: str, run_name: str, tags: dict[str, str] | None = None):
        mlflow.set_tracking_uri(self.tracking_uri)
        with mlflow.start_run(experiment_id=self.experiment_id(project), run_name=run_name, tags=tags) as run:
            yield run
