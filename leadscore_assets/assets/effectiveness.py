"""score_effectiveness: what a sales lead opens to decide whether to trust the scores.

Every CRM outcome that landed (`feedback_labels`, one per lead) is matched to the score its lead
had when it was scored: the latest row of `score_history` before the outcome's time (see
lib/monitoring/effectiveness.py). The asset shows conversion by grade and by decile, per month of scoring,
with 95% intervals, and the calibration seen in production next to the one measured on the test
split when each scoring version was trained (its `evaluation/lift_by_decile.csv` in MLflow). A
table (`<project>.score_effectiveness`), a picture under data/reports/<project>/effectiveness/
<run id>/ and CSVs of every figure, including the outcomes no score matched.

`score_history` is written by `lead_scores` (assets/scoring.py, through `record_score_history`
here): a lead gets a row when its score changed, so nightly rescoring of unchanged leads adds
nothing, and rows older than SCORE_HISTORY_DAYS go except each lead's newest.

It writes the run's staged warehouse like every asset before `published`; it never fails on the
figures themselves (no outcomes yet: zero counts and a sentence saying so), and the parts that
reach outside the warehouse (MLflow's training figures, the picture) are best effort, said in
its metadata, so a report never blocks publishing the scores.
"""


import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import duckdb
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from leadscore_assets.assets.common import figure_png, png_markdown, table_value, warehouse_connection
from leadscore_assets.assets.inputs import Reads, StagedTable
from leadscore_assets.assets.specs import asset_kwargs, step_tags
from leadscore_assets.assets.tables import FEEDBACK_LABELS, SCORE_EFFECTIVENESS, SCORE_HISTORY
from leadscore_assets.lib.features.frame import ID
from leadscore_assets.lib.project.config import ProjectConfig
from leadscore_assets.lib.monitoring.effectiveness import (
    ALL_MONTHS,
    HISTORY_COLUMNS,
    MATCHED,
    NO_OUTCOMES,
    Effectiveness,
    figure,
    headline_text,
    summarise,
)
from leadscore_assets.resources.mlflow_store import MlflowStore
from leadscore_assets.resources.storage import LeadscoreStorage, write_spreadsheet_csv
from leadscore_assets.resources.warehouse import Warehouse

SCORE_HISTORY_DAYS = 400  # a year of months to compare, and the month before
TRAINING_FIGURES = "evaluation/lift_by_decile.csv"  # artifact of the evaluation run a version was registered from


def record_score_history(conn: duckdb.DuckDBPyConnection, config: ProjectConfig, scores: str,
                         run_id: str) -> dict[str, int]:
    """Append this run's changed scores (`scores`: the lead_scores table, in its row order) to
    `score_history` (a retried step appends once) and drop rows older than SCORE_HISTORY_DAYS that a
    newer row of the same lead supersedes. All in DuckDB: what `history_rows` decides (a lead gets a
    row when it has none yet or its version, grade, decile or probability to 3 dp moved, rounded as
    numpy rounds), without reading the leads into memory."""
    table = SCORE_HISTORY.of(config)
    run = "'" + run_id.replace("'", "''") + "'"
    rows = (f"SELECT CAST(s.{ID} AS VARCHAR) AS {ID}, s.probability, CAST(s.decile AS BIGINT) AS decile, s.grade, "
            f"CAST(s.model_version AS VARCHAR) AS model_version, s.scored_at, {run} AS dagster_run_id, s.rowid AS _at "
            f"FROM {scores} AS s")
    if not SCORE_HISTORY.exists(conn, config):
        SCORE_HISTORY.write_select(conn, config, f"SELECT * EXCLUDE (_at) FROM ({rows}) ORDER BY _at")
        appended = conn.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
    else:
        conn.execute(f"DELETE FROM {table} WHERE dagster_run_id = ?", [run_id])
        have = {r[0] for r in conn.execute(f"DESCRIBE {table}").fetchall()}
        for column, kind in conn.execute(f"SELECT column_name, column_type FROM (DESCRIBE {rows})").fetchall():
            if column not in have and column != "_at":  # a column a newer release writes: NULL for older rows
                conn.execute(f'ALTER TABLE {table} ADD COLUMN "{column}" {kind}')
        p3 = "round_even({}.probability * 1000, 0)"  # numpy's round(p, 3): scale, round half to even
        appended = conn.execute(f"""INSERT INTO {table} BY NAME
            WITH now AS ({rows}),
            latest AS (SELECT * FROM {table} QUALIFY row_number() OVER (PARTITION BY {ID} ORDER BY scored_at DESC) = 1),
            same AS (SELECT DISTINCT n.{ID} FROM now AS n JOIN latest AS l ON CAST(l.{ID} AS VARCHAR) = n.{ID}
                     AND CAST(l.model_version AS VARCHAR) = n.model_version AND l.grade = n.grade
                     AND CAST(l.decile AS BIGINT) = n.decile AND {p3.format("l")} = {p3.format("n")})
            SELECT * EXCLUDE (_at) FROM now WHERE NOT EXISTS (SELECT 1 FROM same WHERE same.{ID} = now.{ID})
            ORDER BY _at""").fetchall()[0][0]
    cutoff = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(days=SCORE_HISTORY_DAYS)
    pruned = conn.execute(f"""DELETE FROM {table} AS h WHERE h.scored_at < ? AND EXISTS
        (SELECT 1 FROM {table} AS n WHERE n.lead_id = h.lead_id AND n.scored_at > h.scored_at)""", [cutoff]).fetchall()
    total = conn.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
    return {"appended": int(appended), "pruned": int(pruned[0][0]) if pruned else 0, "rows": int(total)}


def training_figures(mlflow_store: MlflowStore, config: ProjectConfig, versions: list[str]) -> tuple[pd.DataFrame | None, str]:
    """Each version's test-split figures by decile at training, and what could not be found."""
    frames, missing = [], []
    for version in versions:
        try:
            mv = mlflow_store.client.get_model_version(config.registered_model_name, version)
            with tempfile.TemporaryDirectory() as tmp:
                path = mlflow_store.client.download_artifacts(mv.tags["leadscore.run_id"], TRAINING_FIGURES, tmp)
                frames.append(pd.read_csv(path).assign(model_version=str(version)))
        except Exception as err:  # a version from before these figures, or a store that is gone
            missing.append(f"v{version} ({type(err).__name__})")
    note = f"training figures not found for {', '.join(missing)}" if missing else "found for every version"
    return (pd.concat(frames, ignore_index=True) if frames else None), note


def _md(frame: pd.DataFrame, empty: str) -> dg.MetadataValue:
    return dg.MetadataValue.md(frame.round(4).to_markdown(index=False) if len(frame) else f"_{empty}_")


def write_reports(e: Effectiveness, out: Path) -> dict[str, Path]:
    files = {"by_grade": out / "conversion_by_grade.csv", "by_decile": out / "conversion_by_decile.csv",
             "calibration": out / "calibration.csv", "unmatched": out / "unmatched_outcomes.csv"}
    write_spreadsheet_csv(e.by_grade, files["by_grade"])
    write_spreadsheet_csv(e.by_decile, files["by_decile"])
    write_spreadsheet_csv(e.calibration, files["calibration"])
    unmatched = e.joined.loc[e.joined.match != MATCHED, ["lead_id", "outcome_at", "label", "match"]]
    write_spreadsheet_csv(unmatched, files["unmatched"])
    return files


def draw_picture(context, e: Effectiveness, config: ProjectConfig, out: Path) -> tuple[Path | None, str | None]:
    """The conversion picture as a PNG in `out` and as inline markdown; (None, None) when it cannot
    be drawn (the figures stand without it)."""
    picture = out / "score_effectiveness.png"
    try:
        fig = figure(e, f"Score effectiveness - {config.name}")
        png = figure_png(fig)  # rendered once: the file and the inline picture
        picture.write_bytes(png)
        picture_md = png_markdown({"score_effectiveness": png})
        plt.close(fig)
    except Exception as err:
        context.log.warning(f"score effectiveness picture not drawn: {err!r}")
        return None, None
    return picture, picture_md


def effectiveness_page(e: Effectiveness, headline: str, training_note: str, history_rows_count: int) -> dict:
    """What the score_effectiveness page shows: conversion by grade first (what the page is for),
    the headline, then the per-month tables."""
    h = e.headline
    overall = e.by_grade[e.by_grade.scored_month == ALL_MONTHS].drop(columns="scored_month") \
        if len(e.by_grade) else pd.DataFrame(columns=["grade", "outcomes", "converted", "conversion_rate"])
    return {
        "conversion_by_grade": table_value(overall.reset_index(drop=True)),
        "headline": dg.MetadataValue.text(headline),
        "outcomes": h["outcomes"],
        "outcomes_matched": h["matched"],
        "unmatched_never_scored": h["unmatched_never_scored"],
        "unmatched_scored_after_outcome": h["unmatched_scored_after_outcome"],
        **({"top_grade": h["top_grade"],
            "top_grade_conversion": round(h["top_grade_conversion"], 4),
            "other_grades_conversion": round(h["rest_conversion"], 4) if np.isfinite(h["rest_conversion"]) else "-",
            "top_grade_lift": round(h["top_grade_lift"], 3) if np.isfinite(h["top_grade_lift"]) else "-"}
           if h["matched"] else {"status": NO_OUTCOMES if not h["outcomes"] else "no outcome matched a score"}),
        "conversion_by_grade_per_month": _md(e.by_grade, "no matched outcomes"),
        "conversion_by_decile_per_month": _md(e.by_decile, "no matched outcomes"),
        "calibration_production_vs_training": _md(e.calibration, "no matched outcomes"),
        "training_figures": training_note,
        "score_history_rows": history_rows_count,
        "dagster/row_count": len(e.by_grade) + len(e.by_decile),
    }


def build(config: ProjectConfig) -> list:
    """Nothing for a project without `feedback:`: no CRM outcome can land there."""
    if config.feedback is None:
        return []

    reads = Reads(config, feedback_labels=FEEDBACK_LABELS, score_history=SCORE_HISTORY)

    @dg.asset(
        op_tags=step_tags(config),
        ins=reads.ins,
        **asset_kwargs(
            config, SCORE_EFFECTIVENESS.name, "monitoring",
            "Do the scores work? Every CRM outcome matched to the grade, decile and probability its lead had "
            "when it was scored (before the outcome): conversion by grade and decile per month of scoring with "
            "95% intervals, and the calibration seen in production next to the one measured at training.",
            {"duckdb", "pandas"},
        ),
    )
    def score_effectiveness(context: dg.AssetExecutionContext, warehouse: Warehouse, mlflow_store: MlflowStore,
                            storage: LeadscoreStorage, feedback_labels: StagedTable,
                            score_history: StagedTable) -> dg.MaterializeResult:
        outcomes = feedback_labels.read_if_exists("lead_id, label, outcome_at")  # ids, outcome and time: nothing personal
        history = score_history.read_if_exists(", ".join(HISTORY_COLUMNS))
        e = summarise(outcomes, history)
        versions = sorted(e.matched.model_version.astype(str).unique(), key=lambda v: (len(v), v))
        training, training_note = training_figures(mlflow_store, config, versions) if versions else (None, "-")
        e = summarise(outcomes, history, training)
        with warehouse_connection(warehouse, config) as conn:
            SCORE_EFFECTIVENESS.write(conn, config, e.long_table())
        out = storage.report_dir(config.name, "effectiveness", context.run_id)
        files = write_reports(e, out)
        picture, picture_md = draw_picture(context, e, config, out)
        headline = headline_text(e)
        context.log.info(headline)
        return dg.MaterializeResult(metadata={
            **effectiveness_page(e, headline, training_note, 0 if history is None else len(history)),
            "report_dir": dg.MetadataValue.path(str(out)),
            "unmatched_outcomes_csv": dg.MetadataValue.path(str(files["unmatched"])),
            **({"picture": dg.MetadataValue.path(str(picture))} if picture else {}),
            **({"plot": dg.MetadataValue.md(picture_md)} if picture_md else {}),
        })

    return [score_effectiveness]
