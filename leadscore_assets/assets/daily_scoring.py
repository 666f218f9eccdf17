"""daily_scores: one day's new or changed leads scored on their own, a partition per day.

`lead_scores` rescores every lead in every run of the pipeline, which is what a retrain needs
(a new champion changes every score) but not what a day needs: leads that arrived yesterday
can be scored by the champion in place without touching the other 470,000. With
`daily_scoring:` in the project YAML, `<project>/daily_scores` is partitioned by day (UTC) on
the column that says when a lead arrived or last changed. A partition reads that day's source
rows (`load_rows_between`), scores them with `models:/leadscore-<project>@champion` (the very
pyfunc that is served: validation, features, model, calibration, grade, decile, reasons; an
invalid row gets its `error` instead of scores) and writes
`<warehouse>/<project>/daily_scores/<day>.parquet` with one atomic rename, so a failed day
leaves the previous file for that day as it was. The `<project>_daily_scoring` job and its
schedule (off until switched on) score yesterday each morning; backfills of any range of days
run from the asset's Partitions tab in the UI.

Personal data is dropped by the model before features; the file carries the lead id, the
scores and reasons, the champion's version and the scoring time, nothing else of the lead.
"""


import os
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import pandas as pd

from leadscore_assets.assets.common import preview
from leadscore_assets.assets.inputs import Reads
from leadscore_assets.assets.specs import PROJECT_TAG, asset_kwargs, step_tags
from leadscore_assets.lib.project.config import ProjectConfig
from leadscore_assets.resources.mlflow_store import MlflowStore
from leadscore_assets.resources.source_loader import load_rows_between
from leadscore_assets.resources.storage import LeadscoreStorage
from leadscore_assets.resources.warehouse import Warehouse

LAYER = "daily"


def daily_scores_folder(warehouse: Warehouse, config: ProjectConfig) -> Path:
    return Path(warehouse.directory) / config.name / "daily_scores"


def daily_scores_file(warehouse: Warehouse, config: ProjectConfig, day: str) -> Path:
    return daily_scores_folder(warehouse, config) / f"{day}.parquet"


def write_atomically(frame: pd.DataFrame, target: Path) -> None:
    """Readers see the day's old file or its new one, never half of one."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    frame.to_parquet(partial, index=False)
    os.replace(partial, target)


def build(config: ProjectConfig) -> dg.Definitions:
    """The partitioned asset, its job and its schedule (nothing without `daily_scoring:`)."""
    spec = config.daily_scoring
    if spec is None:
        return dg.Definitions()
    days = dg.DailyPartitionsDefinition(start_date=spec.start_date, timezone="UTC")

    # a backfill of many days is one run (each day still its own file), not a queue of runs

    @dg.asset(
        op_tags=step_tags(config),
        partitions_def=days,
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=Reads(config, after=("published",)).after,  # the champion as the last successful run published it
        **asset_kwargs(
            config, "daily_scores", LAYER,
            f"One day's new or changed leads ({spec.date_column} on that day, UTC) scored by "
            f"`models:/{config.registered_model_name}@champion`: probability, decile, grade, contact flag and "
            "reasons, as the served model answers. A partition per day; backfill ranges from the Partitions tab.",
            {"mlflow", "parquet"},
        ),
    )
    def daily_scores(context: dg.AssetExecutionContext, storage: LeadscoreStorage, warehouse: Warehouse,
                     mlflow_store: MlflowStore):
        model, version = mlflow_store.load_served_model(config.registered_model_name, "champion")
        counts, newest = {}, None
        for day in context.partition_keys:  # one day, or every day of a backfill run
            window = days.time_window_for_partition_key(day)
            start, end = (t.astimezone(timezone.utc).replace(tzinfo=None) for t in (window.start, window.end))
            rows = load_rows_between(config, Path(storage.data_dir), spec.date_column, start, end)
            # the model drops the lineage columns itself; an empty day has the answers' columns and no row
            scores = model.predict(rows, params={"reasons": True}) if len(rows) else pd.DataFrame(
                columns=model.unwrap_python_model().scorer.output_columns, dtype=object)
            scores = scores.assign(champion_version=str(version), scored_at=datetime.now(timezone.utc))
            write_atomically(scores, daily_scores_file(warehouse, config, day))
            counts[day] = (len(rows), int(scores["error"].notna().sum()))
            newest = scores
        leads, invalid = sum(n for n, _ in counts.values()), sum(e for _, e in counts.values())
        return dg.MaterializeResult(metadata={
            "days": len(counts),
            "leads": leads,
            "scored": leads - invalid,
            "invalid": invalid,
            "champion_version": str(version),
            "folder": dg.MetadataValue.path(str(daily_scores_folder(warehouse, config))),
            "top_leads_of_last_day": preview(newest.sort_values("probability", ascending=False, na_position="last")),
        })

    job = dg.define_asset_job(
        f"{config.name}_daily_scoring", selection=[daily_scores.key], partitions_def=days,
        description=f"Score one day's new or changed {config.name} leads with the champion.",
        tags={PROJECT_TAG: config.name},
    )
    schedule = dg.build_schedule_from_partitioned_job(
        job, hour_of_day=spec.schedule_hour, default_status=dg.DefaultScheduleStatus.STOPPED,
        description="OFF until switched on (Automation > Schedules): each morning, score yesterday's leads.",
    )
    return dg.Definitions(assets=[daily_scores], jobs=[job], schedules=[schedule])
