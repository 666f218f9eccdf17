"""Where files live: source exports, reports and plots, all under one data directory."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def default_data_dir() -> Path:
    """$LEADSCORE_DATA_DIR, else `data/` of the project checkout, else `./data`."""
    if os.getenv("LEADSCORE_DATA_DIR"):
        return Path(os.environ["LEADSCORE_DATA_DIR"])
    if (PROJECT_ROOT / "pyproject.toml").exists():
        return PROJECT_ROOT / "data"
    return Path.cwd() / "data"


class LeadscoreStorage(dg.ConfigurableResource):
    """The data directory: source paths in project YAML files are relative to it."""

    data_dir: str

    def path(self, relative: str) -> Path:
        return Path(self.data_dir) / relative

    def report_dir(self, project: str, *parts: str) -> Path:
        d = Path(self.data_dir).joinpath("reports", project, *parts)
        d.mkdir(parents=True, exist_ok=True)
        return d
