"""The call list's files: this run's `<run id>.csv` / `.parquet` in the project's call list folder,
and the published `call_list.csv` / `call_list.parquet` they become.

lib/scoring/call_list.py builds the list and writes it into streams; this module opens the files,
names them and swaps a run's list in (atomic renames), dropping older runs' copies.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import pandas as pd

from leadscore_assets.lib.scoring.call_list import write_call_list_batches

LATEST = "call_list"  # call_list.csv / call_list.parquet: the published list


def run_call_list(directory: Path, run_id: str) -> dict[str, Path]:
    """This run's own list files (before `publish_call_list` renames them)."""
    return {"csv": Path(directory) / f"{run_id}.csv", "parquet": Path(directory) / f"{run_id}.parquet"}


def published_call_list(files: dict[str, Path]) -> dict[str, Path]:
    """Where `publish_call_list` puts this run's files (`call_list.csv` / `.parquet` next to them)."""
    return {kind: path.with_name(f"{LATEST}{path.suffix}") for kind, path in files.items()}


def write_call_list_files(batches: Iterable[pd.DataFrame], directory: Path, run_id: str, top: int = 0,
                          timestamps: pd.DataFrame | None = None) -> tuple[dict[str, Path], pd.DataFrame]:
    """This run's list as CSV and Parquet (`<run id>.csv/.parquet` in `directory`), written a batch
    at a time by lib's `write_call_list_batches`; `publish_call_list` makes them the published
    `call_list.*` once the run passed every check. Returns the files and the list's first `top` rows."""
    Path(directory).mkdir(parents=True, exist_ok=True)
    files = run_call_list(directory, run_id)
    with open(files["csv"], "w", newline="", encoding="utf-8") as csv_out, open(files["parquet"], "wb") as parquet_out:
        head = write_call_list_batches(batches, csv_out, parquet_out, top, timestamps)
    return files, head


def publish_call_list(directory: Path, run_id: str, keep: Iterable[str] = ()) -> dict[str, Path]:
    """Swap this run's list in as `call_list.csv` / `call_list.parquet` (atomic renames) and drop
    older runs' lists, and the kept copies (`kept/<run id>.*`, resources/publication.py) of runs
    other than `keep`; nothing is swapped when the run wrote none."""
    directory = Path(directory)
    published = {}
    for suffix in ("csv", "parquet"):
        staged = directory / f"{run_id}.{suffix}"
        if staged.exists():
            target = directory / f"{LATEST}.{suffix}"
            os.replace(staged, target)
            published[suffix] = target
    for old in directory.glob("*.*"):
        if old.stem != LATEST and old.suffix in (".csv", ".parquet"):
            old.unlink(missing_ok=True)
    keep = set(keep)
    for old in (directory / "kept").glob("*.*"):
        if old.stem not in keep:
            old.unlink(missing_ok=True)
    return published
