"""The demo's closing summary: one line per project from the published warehouse files."""

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from leadscore_assets import demo_summary
from leadscore_assets.testing.runs import warehouse_file


def _warehouse(data_dir: Path, project: str, decisions: list[dict], scored_version: str) -> Path:
    """A published file holding the tables the summary reads, with known figures."""
    path = warehouse_file(data_dir, project)
    path.parent.mkdir(parents=True)
    n = 100
    label = np.array([1] * 20 + [0] * 80, dtype=float)
    probability = np.linspace(0.99, 0.01, n)  # the 20 positives score highest: capture 1.0, AUC 1.0
    with duckdb.connect(str(path)) as conn:
        conn.execute(f"CREATE SCHEMA {project}")
        conn.register("raw", pd.DataFrame({"_row_number": range(130)}))
        conn.execute(f"CREATE TABLE {project}.raw_contacts AS SELECT * FROM raw")
        conn.register("q", pd.DataFrame({"_row_number": range(7), "_collapsed_duplicate": [True, True] + [False] * 5,
                                         "_quarantine_reason": ["x"] * 7}))
        conn.execute(f"CREATE TABLE {project}.quarantined_contacts AS SELECT * FROM q")
        conn.register("rep", pd.DataFrame({"candidate": ["xgboost"], "test_roc_auc": [0.8123],
                                           "test_top20_capture": [0.4567]}))
        conn.execute(f"CREATE TABLE {project}.evaluation_report AS SELECT * FROM rep")
        conn.register("dec", pd.DataFrame(decisions))
        conn.execute(f"CREATE TABLE {project}.model_decisions AS SELECT * FROM dec")
        ids = [f"lead_{i}" for i in range(n)]
        conn.register("s", pd.DataFrame({"lead_id": ids, "probability": probability,
                                         "model_version": scored_version}))
        conn.execute(f"CREATE TABLE {project}.lead_scores AS SELECT * FROM s")
        conn.register("f", pd.DataFrame({"lead_id": ids, "label": label, "split": "test"}))
        conn.execute(f"CREATE TABLE {project}.features AS SELECT * FROM f")
    return path


def test_a_promoted_champion_is_shown_with_its_evaluation_report(tmp_path):
    _warehouse(tmp_path, "alpha", [{"decided_at": pd.Timestamp("2026-01-01"), "challenger_version": 1,
                                    "champion_version": None, "decision": "promoted"}], "1")
    table = demo_summary.summarise(tmp_path)
    row = table.set_index("project").loc["alpha"]
    assert (row["rows"], row["quarantined"], row["duplicates"]) == (130, 5, 2)
    assert row["champion"] == "v1 xgboost" and row["decision"] == "promoted"
    assert row["test_roc_auc"] == pytest.approx(0.8123) and row["top20_capture"] == pytest.approx(0.4567)
    assert row["asset"] == "alpha/lead_scores" and "alpha.lead_scores" in row["call_list"]  # no CSV published


def test_the_published_call_list_file_is_where_to_look(tmp_path):
    _warehouse(tmp_path, "gamma", [{"decided_at": pd.Timestamp("2026-01-01"), "challenger_version": 1,
                                    "champion_version": None, "decision": "promoted"}], "1")
    calls = demo_summary.call_list_file(tmp_path, "gamma")
    calls.parent.mkdir(parents=True)
    calls.write_text("rank,lead_id\n1,lead_0\n")
    assert demo_summary.summarise(tmp_path).call_list[0] == str(calls)


def test_a_rejected_challenger_leaves_the_champion_and_its_own_figures(tmp_path):
    _warehouse(tmp_path, "beta", [
        {"decided_at": pd.Timestamp("2026-01-01"), "challenger_version": 1, "champion_version": None, "decision": "promoted"},
        {"decided_at": pd.Timestamp("2026-01-02"), "challenger_version": 2, "champion_version": 1, "decision": "rejected"},
    ], "1")
    row = demo_summary.summarise(tmp_path).set_index("project").loc["beta"]
    assert row["champion"] == "v1" and row["decision"] == "kept (v2 xgboost rejected)"
    # figures of the scores the champion wrote, on the test split: the positives rank first
    assert row["test_roc_auc"] == pytest.approx(1.0) and row["top20_capture"] == pytest.approx(1.0)


def test_the_summary_reads_the_file_the_warehouse_publishes(tmp_path):
    assert demo_summary.published_file(tmp_path / "warehouse", "x") == warehouse_file(tmp_path, "x")


def test_no_warehouse_means_an_empty_table_and_a_hint(tmp_path, capsys):
    assert demo_summary.summarise(tmp_path).empty
    assert demo_summary.main(["--data-dir", str(tmp_path)]) == 1
    assert "run scripts/demo.sh" in capsys.readouterr().out


def test_summary_of_a_real_run_matches_its_tables(linkedin_run, capsys):
    _, data_dir = linkedin_run
    row = demo_summary.summarise(data_dir).set_index("project").loc["linkedin"]
    with duckdb.connect(str(warehouse_file(data_dir, "linkedin")), read_only=True) as conn:
        raw = conn.execute("SELECT count(*) FROM linkedin.raw_contacts").fetchall()[0][0]
        report = conn.execute("SELECT candidate, test_roc_auc, test_top20_capture FROM linkedin.evaluation_report").df()
    assert row["rows"] == raw and row["decision"] == "promoted"
    assert row["champion"] == f"v1 {report.candidate[0]}"
    assert row["test_roc_auc"] == pytest.approx(report.test_roc_auc[0])
    assert 0 < row["top20_capture"] <= 1
    calls = demo_summary.call_list_file(data_dir, "linkedin")  # the published list, once a run wrote one
    assert row["call_list"] == (str(calls) if calls.exists() else f"{warehouse_file(data_dir, 'linkedin')} : linkedin.lead_scores")
    assert demo_summary.main(["--data-dir", str(data_dir)]) == 0
    out = capsys.readouterr().out
    assert "linkedin/lead_scores" in out and "top-20% capture" in out
