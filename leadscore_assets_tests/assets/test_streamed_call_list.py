"""The call list, score history and page figures computed in DuckDB and written batch by batch are
what the whole-frame pandas path gave: same rows, same order, same CSV bytes (hostile cells too)."""

import shutil

import duckdb
import numpy as np
import pandas as pd

from leadscore_assets.assets import scoring as scoring_asset
from leadscore_assets.assets.effectiveness import record_score_history
from leadscore_assets.assets.inputs import StagedTable
from leadscore_assets.assets.tables import LEAD_SCORES, SCORE_HISTORY, VALIDATED_CONTACTS
from leadscore_assets.lib.features.frame import ID
from leadscore_assets.lib.monitoring.effectiveness import history_rows
from leadscore_assets.lib.scoring.call_list import call_list, top_of_call_list
from leadscore_assets.lib.scoring.explain import REASON_COLUMNS
from leadscore_assets.lib.scoring.scorer import REVENUE_COLUMNS
from leadscore_assets.resources.storage import write_spreadsheet_csv
from leadscore_assets.testing.runs import warehouse_file

HOSTILE = ['=HYPERLINK("http://evil.example","Click")', "-5", "@x", "+cmd|' /C calc'!A0", "\t=2+2", " =1+1"]
RANKED = (ID, "probability", "decile", "grade", "contact", *REVENUE_COLUMNS, *REASON_COLUMNS, "model_version", "scored_at")


def _copy(linkedin_run, tmp_path):
    _, data_dir = linkedin_run
    source = warehouse_file(data_dir, "linkedin")
    target = tmp_path / source.name
    shutil.copy(source, target)
    if source.with_name(source.name + ".wal").exists():
        shutil.copy(source.with_name(source.name + ".wal"), target.with_name(target.name + ".wal"))
    return target


def _whole_frame(conn, config, validated_sql):
    """The call list as lead_scores built it before streaming (all in pandas)."""
    have = {r[0] for r in conn.execute(f"DESCRIBE {LEAD_SCORES.of(config)}").fetchall()}
    ranked = conn.execute(f"SELECT {', '.join(c for c in RANKED if c in have)} FROM {LEAD_SCORES.of(config)} "
                          "ORDER BY rowid").df()
    vhave = {r[0] for r in conn.execute(f"DESCRIBE {validated_sql}").fetchall()}
    columns = [config.id_column, *(c for c in config.call_list.columns if c in vhave and c != config.id_column)]
    validated = conn.execute(f"SELECT {', '.join(columns)} FROM {validated_sql}").df()
    return ranked, call_list(ranked, validated, config)


def _both(conn, config, tmp_path):
    validated = StagedTable(config.name, VALIDATED_CONTACTS.name, warehouse=None)
    ranked, calls = _whole_frame(conn, config, validated.sql)
    old = tmp_path / "old"
    old.mkdir()
    write_spreadsheet_csv(calls, old / "run.csv")
    calls.to_parquet(old / "run.parquet", index=False)
    files, top = scoring_asset.stream_call_list(conn, config, validated, tmp_path / "new", "run")
    return ranked, calls, old, files, top


def _assert_same(calls, old, files, top, config):
    assert files["csv"].read_bytes() == (old / "run.csv").read_bytes()
    pd.testing.assert_frame_equal(pd.read_parquet(files["parquet"]), pd.read_parquet(old / "run.parquet"))
    pd.testing.assert_frame_equal(top, top_of_call_list(calls, config.call_list.top))


def test_streamed_call_list_is_the_whole_frame_one_with_hostile_cells(linkedin_run, linkedin_config, tmp_path,
                                                                      monkeypatch):
    monkeypatch.setattr(scoring_asset, "CALL_LIST_ROWS", 2048)  # batches of 2,048 leads
    with duckdb.connect(str(_copy(linkedin_run, tmp_path))) as conn:
        table, ids = VALIDATED_CONTACTS.of(linkedin_config), LEAD_SCORES.of(linkedin_config)
        top_ids = [r[0] for r in conn.execute(f"SELECT {ID} FROM {ids} ORDER BY rowid LIMIT 2400").fetchall()]
        for i, value in enumerate(HOSTILE * 3):  # hostile text in the top leads and beyond the first batch
            lead = top_ids[[0, 1, 2, 5, 7, 11, 2048, 2049, 2050, 2100, 2200, 2300, 40, 41, 42, 43, 44, 45][i]]
            column = ("company_name", "job_title", "location")[i // len(HOSTILE)]
            conn.execute(f"UPDATE {table} SET {column} = ? WHERE CAST({linkedin_config.id_column} AS VARCHAR) = ?",
                         [value, lead])
        ranked, calls, old, files, top = _both(conn, linkedin_config, tmp_path)
        assert len(calls) > 2048 and (calls.company_name == HOSTILE[0]).any()
        _assert_same(calls, old, files, top, linkedin_config)
        text = files["csv"].read_text()
        assert '"\'=HYPERLINK(' in text and ',"\'-5",' in text and ',"\'@x",' in text

        # a lead without a validated row (its company_size becomes float in the whole frame) and
        # NULLs in a text and an integer column
        conn.execute(f"DELETE FROM {table} WHERE CAST({linkedin_config.id_column} AS VARCHAR) = ?", [top_ids[2390]])
        conn.execute(f"UPDATE {table} SET job_title = NULL WHERE CAST({linkedin_config.id_column} AS VARCHAR) = ?",
                     [top_ids[3]])
        shutil.rmtree(tmp_path / "old"), shutil.rmtree(tmp_path / "new")
        ranked, calls, old, files, top = _both(conn, linkedin_config, tmp_path)
        _assert_same(calls, old, files, top, linkedin_config)
        conn.execute(f"UPDATE {table} SET company_size = NULL WHERE CAST({linkedin_config.id_column} AS VARCHAR) = ?",
                     [top_ids[4]])
        shutil.rmtree(tmp_path / "old"), shutil.rmtree(tmp_path / "new")
        ranked, calls, old, files, top = _both(conn, linkedin_config, tmp_path)
        _assert_same(calls, old, files, top, linkedin_config)

        # the page's figures, from SQL, are the whole frame's
        page = scoring_asset.scores_page(conn, linkedin_config, top)
        by_grade = ranked.groupby("grade").probability.agg(["size", "min", "max"]).round(4).reset_index()
        assert page["contacted"] == int(ranked.contact.sum())
        assert page["mean_probability"] == round(float(np.mean(ranked.probability)), 4)
        assert page["by_grade"].value == by_grade.to_markdown(index=False)


def test_score_history_in_sql_appends_what_history_rows_picks(linkedin_run, linkedin_config, tmp_path):
    with duckdb.connect(str(_copy(linkedin_run, tmp_path))) as conn:
        scores, config = LEAD_SCORES.of(linkedin_config), linkedin_config
        conn.execute(f"DROP TABLE IF EXISTS {SCORE_HISTORY.of(config)}")
        first = record_score_history(conn, config, scores, "r1")
        stored = SCORE_HISTORY.read(conn, config)
        ranked = conn.execute(f"SELECT * FROM {scores} ORDER BY rowid").df()
        expected = history_rows(ranked, None, "r1")
        pd.testing.assert_frame_equal(stored[expected.columns.tolist()], expected, check_dtype=False)
        assert first["appended"] == len(ranked) == first["rows"]
        # a rescoring: some probabilities move (one only below 3 dp), a grade changes
        conn.execute(f"UPDATE {scores} SET probability = probability + 0.01 WHERE rowid % 7 = 0")
        conn.execute(f"UPDATE {scores} SET probability = probability + 0.00001 WHERE rowid % 7 = 1")
        conn.execute(f"UPDATE {scores} SET grade = 'Z' WHERE rowid % 11 = 0")
        conn.execute(f"UPDATE {scores} SET scored_at = scored_at + INTERVAL 1 DAY")
        latest = conn.execute(f"SELECT * FROM {SCORE_HISTORY.of(config)} QUALIFY row_number() OVER "
                              "(PARTITION BY lead_id ORDER BY scored_at DESC) = 1").df()
        ranked = conn.execute(f"SELECT * FROM {scores} ORDER BY rowid").df()
        expected = history_rows(ranked, latest, "r2")
        second = record_score_history(conn, config, scores, "r2")
        again = record_score_history(conn, config, scores, "r2")  # a retried step appends once
        got = SCORE_HISTORY.read(conn, config, "WHERE dagster_run_id = 'r2' ORDER BY rowid")
        assert second["appended"] == again["appended"] == len(expected) > 0 and again["rows"] == len(ranked) + len(expected)
        pd.testing.assert_frame_equal(got[expected.columns.tolist()], expected, check_dtype=False)
