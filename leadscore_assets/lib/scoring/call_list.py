"""The call list: every scored lead, best first, with the context a salesperson reads.

Built from `lead_scores` and the validated rows: the lead id, the non-personal context columns
the project names under `call_list.columns` (company, job title, ...), grade, probability,
contact flag and every reason. Personal data never enters it (the config refuses to name it).
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from leadscore_assets.lib.project.config import ProjectConfig
from leadscore_assets.lib.scoring.explain import REASON_COLUMNS
from leadscore_assets.lib.features.frame import ID
from leadscore_assets.lib.scoring.spreadsheet import write_spreadsheet_csv

LATEST = "call_list"  # call_list.csv / call_list.parquet: the published list


def call_list(scores: pd.DataFrame, validated: pd.DataFrame, config: ProjectConfig) -> pd.DataFrame:
    """Ranked leads (scores' order) with their context columns joined by id."""
    context = [c for c in config.call_list.columns if c in validated.columns]
    ranked = scores.reset_index(drop=True)
    if context:
        ctx = validated[[config.id_column, *context]].drop_duplicates(config.id_column)
        ctx = ctx.rename(columns={config.id_column: ID}).astype({ID: str})
        ranked = ranked.merge(ctx, on=ID, how="left", validate="one_to_one")
    ranked.insert(0, "rank", range(1, len(ranked) + 1))
    value = [c for c in ("expected_order_value", "expected_revenue") if c in ranked.columns]
    shown = ["rank", ID, *context, "grade", "probability", "decile", "contact", *value, *REASON_COLUMNS]
    return ranked[[c for c in shown if c in ranked.columns]]


def top_of_call_list(calls: pd.DataFrame, top: int) -> pd.DataFrame:
    """The top leads as shown on the asset page: probability rounded, a dash where a lead has no
    such reason."""
    shown = calls.head(top).copy()
    shown["probability"] = shown.probability.round(4)
    for c in REASON_COLUMNS:
        if c in shown:
            shown[c] = shown[c].fillna("").replace("", "-")
    return shown


def published_call_list(files: dict[str, Path]) -> dict[str, Path]:
    """Where `publish_call_list` puts this run's files (`call_list.csv` / `.parquet` next to them)."""
    return {kind: path.with_name(f"{LATEST}{path.suffix}") for kind, path in files.items()}


def write_call_list(calls: pd.DataFrame, directory: Path, run_id: str) -> dict[str, Path]:
    """This run's list as CSV and Parquet (`<run id>.csv/.parquet`); `publish_call_list` makes
    them the published `call_list.*` once the run passed every check.

    The CSV is for people: opened in a spreadsheet, so its text cells are neutralised (`'=...`,
    see lib/scoring/spreadsheet.py) and quoted. The Parquet copy is for machines and keeps the raw values."""
    directory.mkdir(parents=True, exist_ok=True)
    files = {"csv": directory / f"{run_id}.csv", "parquet": directory / f"{run_id}.parquet"}
    write_spreadsheet_csv(calls, files["csv"])
    calls.to_parquet(files["parquet"], index=False)
    return files


def publish_call_list(directory: Path, run_id: str) -> dict[str, Path]:
    """Swap this run's list in as `call_list.csv` / `call_list.parquet` (atomic renames) and drop
    older runs' lists; nothing when the run wrote none."""
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
    return published
