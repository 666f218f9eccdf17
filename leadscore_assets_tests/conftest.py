"""Shared fixtures: the LinkedIn project config and one real pipeline run on small demo data."""

from pathlib import Path

import dagster as dg
import pytest

from leadscore_assets.assets.feedback import landing_run_config
from leadscore_assets.components.lead_scoring_project import project_definitions
from leadscore_assets.demo_data import linkedin
from leadscore_assets.lib.config import ProjectConfig, load_project_config
from leadscore_assets.resources import build_resources
from leadscore_assets.resources.warehouse import published_file, staged_file

pytest_plugins = ["leadscore_assets_tests.feedback_files"]  # the `folder` fixture of the feedback tests

DEFS_DIR = Path(__file__).resolve().parents[1] / "leadscore_assets" / "defs"


@pytest.fixture(scope="session")
def linkedin_config() -> ProjectConfig:
    return load_project_config(DEFS_DIR / "linkedin" / "defs.yaml")


def with_candidates(config: ProjectConfig, candidates: list[str], trials: int | None = None) -> ProjectConfig:
    """The project's config with another candidate list (and Optuna budget, when given)."""
    models = config.models.model_copy(update={"candidates": candidates})
    if trials is not None:
        models = models.model_copy(update={"search": models.search.model_copy(update={"n_trials": trials})})
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


LINKEDIN_RUN_CANDIDATES = ["dummy", "logistic_regression", "lightgbm"]


@pytest.fixture(scope="session")
def linkedin_run(tmp_path_factory, linkedin_config):
    """One full run on 2,500 demo contacts; tests assert on its tables, MLflow store and events.
    Sized to what they look at: a baseline, a linear and a boosted candidate with a 3-trial search
    (every candidate kind and the nested trial runs exist; the full default search is exercised
    by the slow set and the benchmarks)."""
    data_dir = tmp_path_factory.mktemp("linkedin_data")
    linkedin.write(data_dir, rows=2500, seed=11)
    result = materialize_project(with_candidates(linkedin_config, LINKEDIN_RUN_CANDIDATES, trials=3), data_dir)
    return result, data_dir
