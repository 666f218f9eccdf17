"""Where files live: source exports, reports and plots, all under one data directory.

lib/ returns what a report holds (text, bytes); the functions here put it in files.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import pandas as pd

from leadscore_assets.lib.scoring.spreadsheet import write_spreadsheet_csv as write_csv_into

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


def write_files(directory: Path, files: dict[str, bytes]) -> dict[str, Path]:
    """Each `name -> bytes` of `files` as a file in `directory` (made if missing); returns the paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, content in files.items():
        written[name] = directory / name
        written[name].write_bytes(content)
    return written


def write_spreadsheet_csv(frame: pd.DataFrame, path: Path) -> Path:
    """`frame` as a CSV file a person can open safely (lib/scoring/spreadsheet.py: text neutralised
    and quoted, numbers bare)."""
    with open(path, "w", newline="", encoding="utf-8") as out:
        write_csv_into(frame, out)
    return Path(path)
