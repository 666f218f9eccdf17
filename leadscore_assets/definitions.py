"""The code location: every project under defs/, the shared resources and the main job."""

from pathlib import Path

import dagster as dg
from dagster_mlflow import end_mlflow_on_run_finished

from leadscore_assets.resources import resources_for_env

ALL_SOURCES_JOB = "score_all_sources"


@dg.definitions
def defs() -> dg.Definitions:
    projects = dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
    main = dg.define_asset_job(ALL_SOURCES_JOB, selection=dg.AssetSelection.all(),
                               description="Every configured source, raw export to scores.",
                               hooks={end_mlflow_on_run_finished})
    return dg.Definitions.merge(
        projects,
        dg.Definitions(jobs=[main], resources=resources_for_env(), executor=dg.in_process_executor),
    )
