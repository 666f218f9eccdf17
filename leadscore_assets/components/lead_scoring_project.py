"""LeadScoringProject: the Dagster Component that turns one project YAML into its asset chain.

`defs/<source>/defs.yaml` declares `type: leadscore_assets.components.LeadScoringProject` and
the ProjectConfig under `attributes:`. A new source is a new YAML file, not new Python.
"""

from __future__ import annotations

import dagster as dg
import pydantic
from dagster_mlflow import end_mlflow_on_run_finished

from leadscore_assets.assets import (
    daily_scoring,
    effectiveness,
    feedback,
    featurisation,
    ingestion,
    labelling,
    modelling,
    monitoring,
    promotion,
    publishing,
    revenue,
    scoring,
    validation,
)
from leadscore_assets.lib.project.config import ProjectConfig, located

DAILY_ASSETS = dg.AssetSelection.tag("leadscore/layer", daily_scoring.LAYER)  # partitioned, run on their own
LAYERS = (ingestion, validation, feedback, labelling, featurisation, modelling, monitoring, promotion, revenue, scoring,
          effectiveness)  # score_effectiveness: CRM outcomes against the scores leads had, before `published`


def project_definitions(config: ProjectConfig) -> dg.Definitions:
    """All assets and checks of one project, its pipeline job (raw export to scores, also the
    retrain run the feedback sensor starts), the feedback sensor and the nightly schedule."""
    assets = [d for layer in LAYERS for d in layer.build(config)]  # checks are declared on their assets
    assets += publishing.build(config, upstream=sorted({k for a in assets for k in a.keys}, key=str))
    job = dg.define_asset_job(
        f"{config.name}_pipeline",
        selection=dg.AssetSelection.key_prefixes([config.name]) - DAILY_ASSETS,
        description=f"Raw export to scores for the {config.name} project: load, validate, label, train, "
                    "judge the challenger, rescore.",
        tags={"leadscore/project": config.name},
        hooks={end_mlflow_on_run_finished},  # ends the run's MLflow parent run (FAILED when a step fails)
    )
    schedules = []
    if config.retrain_schedule:
        schedules.append(dg.ScheduleDefinition(
            name=f"{config.name}_nightly_retrain", job=job, cron_schedule=config.retrain_schedule,
            default_status=dg.DefaultScheduleStatus.STOPPED,
            description="OFF until switched on (Automation > Schedules): retrain, judge and rescore every night.",
        ))
    outcomes = next((a for a in assets if dg.AssetKey([config.name, "feedback_outcomes"]) in a.keys), None)
    pipeline = dg.Definitions(assets=assets, jobs=[job], schedules=schedules,
                              sensors=feedback.build_sensor(config, job, outcomes))
    # partitioned by day: its own job and schedule, outside the pipeline and `published`
    return dg.Definitions.merge(pipeline, daily_scoring.build(config))


class LeadScoringProject(dg.Component, dg.Resolvable, ProjectConfig):
    """A lead source scored end to end: raw -> validated -> labels -> features -> models -> scores."""

    @classmethod
    def load(cls, attributes, context: dg.ComponentLoadContext):
        """Dagster's loader, with each configuration problem named by file and line."""
        try:
            return super().load(attributes, context)
        except pydantic.ValidationError as err:
            yaml_file = context.path / "defs.yaml" if context.path.is_dir() else context.path
            raise located(err, yaml_file) from err

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        config = ProjectConfig.model_validate(self.model_dump())
        config._written = dict(self._written)  # keep the names as the YAML wrote them, for messages
        return project_definitions(config)
