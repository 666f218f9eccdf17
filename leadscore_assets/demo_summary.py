"""What the demo produced, one line per project, read from the published warehouse files.

    python -m leadscore_assets.demo_summary --data-dir data

Every figure comes from `data/warehouse/<project>/warehouse.duckdb` (opened read-only, so it can
run beside `dagster dev`): raw rows, quarantined rows (exact duplicates collapsed into an earlier
row are counted apart), the champion (model version and candidate), its test ROC-AUC and top-20%
capture (share of the test positives among the top fifth of test leads by score), and where to
look: the asset in the Dagster UI and the call list (`reports/<project>/call_list/call_list.csv`
once a run has published one, else the `lead_scores` table in the warehouse file).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
from tabulate import tabulate

from leadscore_assets.assets.tables import (
    EVALUATION_REPORT, FEATURES, LEAD_SCORES, MODEL_DECISIONS, QUARANTINED_CONTACTS, RAW_CONTACTS, Table,
)


COLUMNS = ["project", "rows", "quarantined", "duplicates", "champion", "decision", "test_roc_auc",
           "top20_capture", "asset", "call_list"]


def published_file(directory: str | Path, project: str) -> Path:
    """What readers open: `resources.warehouse.published_file`, repeated here so that this
    script does not import the resources (and MLflow with them) just to find a file."""
    return Path(directory) / project / "warehouse.duckdb"


def _one(conn: duckdb.DuckDBPyConnection, sql: str) -> pd.DataFrame:
    return conn.execute(sql).df()


def _has(conn: duckdb.DuckDBPyConnection, project: str, table: Table) -> bool:
    return bool(conn.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
                             [project, table.name]).fetchall()[0][0])


def _version(value) -> str | None:
    """A model version as written in model_decisions (number, text or missing)."""
    if value is None or pd.isna(value):
        return None
    return str(int(value)) if isinstance(value, (int, float, np.integer, np.floating)) else str(value)


def _capture_and_auc(conn: duckdb.DuckDBPyConnection, project: str, share: float = 0.2) -> tuple[float, float]:
    """Test ROC-AUC and top-`share` capture of the scores in lead_scores (the champion that scored
    them) on the test split's labelled leads: used when the last evaluated model is not the champion."""
    frame = _one(conn, f"""SELECT s.probability, f.label FROM {LEAD_SCORES.at(project)} s
                          JOIN {FEATURES.at(project)} f ON CAST(f.lead_id AS VARCHAR) = s.lead_id
                          WHERE f.split = 'test' AND f.label IS NOT NULL""")
    if frame.empty or frame.label.nunique() < 2:
        return float("nan"), float("nan")
    from sklearn.metrics import roc_auc_score

    frame = frame.sort_values("probability", ascending=False, kind="stable")
    top = frame.head(int(np.ceil(share * len(frame))))
    return float(roc_auc_score(frame.label, frame.probability)), float(top.label.sum() / frame.label.sum())


def call_list_file(data_dir: str | Path, project: str) -> Path:
    """The published call list (`published` moves a passing run's list here)."""
    return Path(data_dir) / "reports" / project / "call_list" / "call_list.csv"


def project_summary(path: Path, project: str, data_dir: str | Path | None = None) -> dict:
    """One project's line, from its published warehouse file."""
    calls = call_list_file(data_dir, project) if data_dir is not None else None
    where = str(calls) if calls is not None and calls.exists() else f"{path} : {LEAD_SCORES.at(project)}"
    row: dict = {"project": project, "asset": f"{project}/lead_scores", "call_list": where}
    with duckdb.connect(str(path), read_only=True) as conn:
        row["rows"] = int(conn.execute(f"SELECT count(*) FROM {RAW_CONTACTS.at(project)}").fetchall()[0][0])
        q = _one(conn, f"SELECT count(*) FILTER (WHERE NOT coalesce(_collapsed_duplicate, false)) AS quarantined, "
                       f"count(*) FILTER (WHERE coalesce(_collapsed_duplicate, false)) AS duplicates "
                       f"FROM {QUARANTINED_CONTACTS.at(project)}")
        row["quarantined"], row["duplicates"] = int(q.quarantined[0]), int(q.duplicates[0])
        report = _one(conn, f"SELECT * FROM {EVALUATION_REPORT.at(project)}") if _has(conn, project, EVALUATION_REPORT) \
            else pd.DataFrame()
        decisions = _one(conn, f"SELECT * FROM {MODEL_DECISIONS.at(project)} ORDER BY decided_at") \
            if _has(conn, project, MODEL_DECISIONS) else pd.DataFrame()
        scored = _one(conn, f"SELECT DISTINCT model_version FROM {LEAD_SCORES.at(project)}") \
            if _has(conn, project, LEAD_SCORES) else pd.DataFrame()
        last = decisions.iloc[-1] if len(decisions) else None
        candidate = str(report.candidate[0]) if len(report) else "?"
        if last is not None and last.decision == "promoted":
            row["champion"] = f"v{_version(last.challenger_version)} {candidate}"
            row["decision"] = "promoted"
            row["test_roc_auc"] = float(report.test_roc_auc[0]) if len(report) else float("nan")
            row["top20_capture"] = float(report.test_top20_capture[0]) if len(report) else float("nan")
        else:
            kept = _version(last.champion_version) if last is not None else None
            kept = kept or (str(scored.model_version[0]) if len(scored) == 1 else None)
            row["champion"] = f"v{kept}" if kept else "none"
            row["decision"] = (f"kept (v{_version(last.challenger_version)} {candidate} rejected)"
                               if last is not None else "no decision yet")
            row["test_roc_auc"], row["top20_capture"] = (_capture_and_auc(conn, project) if len(scored)
                                                         else (float("nan"), float("nan")))
    return row


def summarise(data_dir: str | Path) -> pd.DataFrame:
    """One row per project with a published warehouse under `<data_dir>/warehouse/`, sorted by name."""
    root = Path(data_dir) / "warehouse"
    projects = sorted(p.name for p in root.iterdir() if published_file(root, p.name).exists()) if root.is_dir() else []
    rows = [project_summary(published_file(root, p), p, data_dir) for p in projects]
    return pd.DataFrame(rows, columns=COLUMNS)


def render(table: pd.DataFrame) -> str:
    """The figures as a plain-text table, then where to look, one line per project."""
    if table.empty:
        return "no published warehouse found (run scripts/demo.sh first)"
    figures = [[r.project, f"{r.rows:,}", f"{r.quarantined:,}", f"{r.duplicates:,}", r.champion, r.decision,
                "-" if pd.isna(r.test_roc_auc) else f"{r.test_roc_auc:.3f}",
                "-" if pd.isna(r.top20_capture) else f"{r.top20_capture:.1%}"] for r in table.itertuples()]
    where = [[r.project, r.asset, r.call_list] for r in table.itertuples()]
    return "\n".join([
        tabulate(figures, headers=["project", "rows (raw)", "quarantined", "dup. collapsed", "champion", "decision",
                                   "test ROC-AUC", "top-20% capture"], colalign=("left", "right", "right", "right", "left", "left", "right", "right"),
                 disable_numparse=True),
        "",
        tabulate(where, headers=["project", "asset in the Dagster UI", "call list (CSV, or DuckDB file : table)"], disable_numparse=True),
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="data", help="the data directory (default: data)")
    args = parser.parse_args(argv)
    table = summarise(args.data_dir)
    print(render(table))
    return 0 if not table.empty else 1


if __name__ == "__main__":
    sys.exit(main())
