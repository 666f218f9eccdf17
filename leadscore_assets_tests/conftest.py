"""Shared fixtures: the LinkedIn project config, one real pipeline run on small demo data and a
feedback folder. The helpers they use live in `leadscore_assets.testing`."""

from pathlib import Path

import pytest

from leadscore_assets.demo_data import linkedin
from leadscore_assets.lib.project.config import ProjectConfig, load_project_config
from leadscore_assets.testing.runs import DEFS_DIR, materialize_project, with_candidates


@pytest.fixture(scope="session")
def linkedin_config() -> ProjectConfig:
    return load_project_config(DEFS_DIR / "linkedin" / "defs.yaml")


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


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A project's feedback folder, as `data/feedback/<project>/` (the source falls back to its name)."""
    path = tmp_path / "feedback" / "linkedin"
    path.mkdir(parents=True)
    return path
