"""The code location: every project under defs/, the shared resources and the main job.

A project whose YAML does not load does not stop the others (components/defs_folder.py): they
load and run, and it shows up as its `<project>/config_error` asset.
"""

import warnings
from pathlib import Path

import dagster as dg

# dagster-mlflow builds its hook with a beta Dagster API when it is imported, which prints a
# BetaWarning in every process that loads the code location (its code, not ours: nothing to fix
# here); this is the first import of it in the code location, so the warning is never printed.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.BetaWarning)
    from dagster_mlflow import end_mlflow_on_run_finished

from leadscore_assets.assets.specs import PROJECT_TAG
from leadscore_assets.components.defs_folder import load_projects
from leadscore_assets.components.lead_scoring_project import DAILY_ASSETS
from leadscore_assets.resources import resources_for_env

ALL_SOURCES_JOB = "score_all_sources"

# Projects run side by side, each project's steps one at a time: a step process per step, at
# most one per project (its DuckDB file takes one writer), as many as there are cores. The
# forkserver starts from a process that has imported the code location and what a step needs
# (step_preload) once, so a step costs a fork, not a fresh interpreter importing Dagster, MLflow
# and the ML libraries.
PARALLEL_PROJECTS = {
    "multiprocess": {
        "tag_concurrency_limits": [{"key": PROJECT_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 1}],
        "start_method": {"forkserver": {"preload_modules": [
            "leadscore_assets.definitions", "leadscore_assets.components", "leadscore_assets.step_preload"]}},
    }
}


def all_sources_job(selection: dg.AssetSelection = dg.AssetSelection.all() - DAILY_ASSETS):
    """The main job. Multiprocess by default; `execution: {config: {in_process: {}}}` in the run
    config runs it in one process (benchmarks/parallel_projects.py compares the two)."""
    return dg.define_asset_job(
        ALL_SOURCES_JOB, selection=selection,
        description="Every configured source, raw export to scores; projects in parallel, each project's steps in turn.",
        executor_def=dg.multi_or_in_process_executor,
        config={"execution": {"config": PARALLEL_PROJECTS}},
        hooks={end_mlflow_on_run_finished},
    )


def code_location(tree: dg.ComponentTree) -> dg.Definitions:
    """Every project of a defs folder (a broken one reported, not fatal), the main job and the resources."""
    projects = load_projects(tree)
    main = all_sources_job()
    return dg.Definitions.merge(
        projects,
        dg.Definitions(jobs=[main], resources=resources_for_env(), executor=dg.in_process_executor),
    )


@dg.definitions
def defs() -> dg.Definitions:
    tree = dg.ComponentTree.for_project(Path(__file__).parent)  # defs/ where pyproject.toml's [tool.dg] says
    return code_location(tree)
