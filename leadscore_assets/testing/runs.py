"""A project's pipeline run in-process against real DuckDB and MLflow stores, as the tests and
benchmarks run it: its shipped YAML, config variants (candidates, search budget) and the files the
run wrote."""

from pathlib import Path

import dagster as dg

from leadscore_assets.assets.feedback import landing_run_config
from leadscore_assets.components.lead_scoring_project import project_definitions
from leadscore_assets.lib.project.config import ProjectConfig
from leadscore_assets.resources import build_resources
from leadscore_assets.resources.warehouse import published_file, staged_file

DEFS_DIR = Path(__file__).resolve().parents[1] / "defs"  # the shipped projects: <project>/defs.yaml


def with_candidates(config: ProjectConfig, candidates: list[str], trials: int | None = None) -> ProjectConfig:
    """The project's config with another candidate list (and Optuna budget, when given)."""
    models = config.models.model_copy(update={"candidates": candidates})
    if trials is not None:
        models = models.model_copy(update={"search": models.search.model_copy(update={"n_trials": trials})})
    return config.model_copy(update={"models": models})


FAST_CANDIDATES = {"web_sessions": ["dummy", "lightgbm"]}  # a tree model: TreeSHAP reasons served too


def fast(config):
    """The project's own config with two candidates and no search: cheap, and still a real champion."""
    models = config.models.model_copy(update={
        "candidates": FAST_CANDIDATES.get(config.name, ["dummy", "logistic_regression"]), "search": config.models.search.model_copy(update={"n_trials": 0})})
    return config.model_copy(update={"models": models})


def warehouse_file(data_dir: Path, project: str, run_id: str | None = None) -> Path:
    """A project's published DuckDB file, or the staged copy a run wrote (kept when it was blocked)."""
    root = Path(data_dir) / "warehouse"
    return staged_file(root, project, run_id) if run_id else published_file(root, project)


def feedback_run_config(config: ProjectConfig, files: list, content_hashes: list[str]) -> dg.RunConfig:
    """What the feedback sensor would send: land `files` through the project's feedback asset."""
    key = dg.AssetKey([config.name, "feedback_outcomes"])
    asset = next(a for a in project_definitions(config).assets if key in a.keys)
    return landing_run_config(asset, [str(f) for f in files], content_hashes)


def materialize_project(config: ProjectConfig, data_dir: Path, raise_on_error: bool = True) -> dg.ExecuteInProcessResult:
    """Run every asset and check of a project in-process against real DuckDB and MLflow stores."""
    defs = dg.Definitions.merge(
        project_definitions(config), dg.Definitions(resources=build_resources(data_dir), executor=dg.in_process_executor)
    )
    job = defs.resolve_job_def(f"{config.name}_pipeline")
    return job.execute_in_process(instance=dg.DagsterInstance.ephemeral(), raise_on_error=raise_on_error)
