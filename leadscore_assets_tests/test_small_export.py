"""benchmarks/small_export.py: its pure helpers (no pipeline run, no recipe run, no timing)."""

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "small_export.py"
_spec = importlib.util.spec_from_file_location("small_export", SCRIPT)
se = importlib.util.module_from_spec(_spec)
sys.modules["small_export"] = se
_spec.loader.exec_module(se)


def test_sides_alternate_which_goes_first():
    assert se.run_order(1) == ["pipeline", "recipe"]
    assert se.run_order(3) == ["pipeline", "recipe", "recipe", "pipeline", "pipeline", "recipe"]


def test_the_recipe_drops_what_the_yaml_declares_personal_by_its_export_names():
    from leadscore_assets.lib.project.config import load_project_config

    config = load_project_config(se.SHIPPED_YAML)
    export = ["_id", "email", "emailStatus", "firstName", "lastName", "phone", "picture", "linkedinUrl",
              "companyName", "jobTitle", "industry", "companySize", "location", "campaignName", "createdAt",
              "status", "lastState", "lastStateAt", "stepsCompleted"]
    why = se.dropped_columns(export, config.naming, config.personal_data, config.features.exclude,
                             config.label_columns(), config.id_column)
    assert {c for c, w in why.items() if w == "personal"} == {"email", "firstName", "lastName", "phone", "picture",
                                                             "linkedinUrl"}
    assert why["_id"] == "id"
    assert {"status", "lastState", "lastStateAt", "stepsCompleted", "companyName"} <= {c for c, w in why.items()
                                                                                      if w == "excluded"}
    assert not {"emailStatus", "jobTitle", "industry", "companySize", "location", "campaignName", "createdAt"} & set(why)


def test_out_of_time_split_puts_the_newest_rows_in_test():
    times = [5, 1, 9, 3, 7, 2, 8, 4, 6, 10]
    split = se.out_of_time_split(times, test_share=0.2, validation_share=0.2)
    by_time = dict(zip(times, split))
    assert [by_time[t] for t in sorted(times)] == ["train"] * 6 + ["validation"] * 2 + ["test"] * 2


def test_common_rows_scores_both_sides_on_the_ids_in_both_test_splits():
    pipeline = [{"id": "a", "label": 1, "score": 0.9}, {"id": "b", "label": 0, "score": 0.1},
                {"id": "c", "label": 0, "score": 0.8}, {"id": "q", "label": 1, "score": 0.5}]  # q and z: in one test split only
    recipe = [{"id": "a", "label": 1, "score": 0.2}, {"id": "b", "label": 0, "score": 0.4},
              {"id": "c", "label": 1, "score": 0.1}, {"id": "z", "label": 0, "score": 0.3}]
    out = se.common_rows(pipeline, recipe)
    assert out["rows"] == 3 and out["label_disagreements"] == 1  # c: the pipeline's label (0) is kept
    assert out["pipeline_auc"] == pytest.approx(1.0)  # a (1) above b and c (0)
    assert out["recipe_auc"] == pytest.approx(0.5)  # a (1) between b and c
    assert se.common_rows(pipeline[:1], recipe[:1])["pipeline_auc"] is None  # one class: no AUC


def test_table_gives_medians_and_the_pipeline_over_recipe_ratio():
    runs = [
        {"side": "pipeline", "success": True, "run_seconds": 40.0, "process_seconds": 48.0, "own_test_auc": 0.72,
         "own_test_rows": 2948, "model": "blend"},
        {"side": "recipe", "success": True, "run_seconds": 20.0, "process_seconds": 24.0, "own_test_auc": 0.71,
         "own_test_rows": 3003, "model": "xgboost"},
        {"side": "pipeline", "success": True, "run_seconds": 60.0, "process_seconds": 68.0, "own_test_auc": 0.73,
         "own_test_rows": 2948, "model": "blend"},
        {"side": "recipe", "success": False},
    ]
    rows = se.summary_rows(runs)
    assert rows[0]["run_seconds"] == 50.0 and rows[0]["runs"] == 2 and rows[0]["own_test_auc"] == 0.72
    table = se.comparison_table(rows, {"rows": 2900, "pipeline_auc": 0.725, "recipe_auc": 0.715})
    last = table.splitlines()[-1]
    assert last.startswith("pipeline / recipe") and "2.50x" in last and "2.42x" in last and "+0.0100" in last
    assert "0.7200 (2,948)" in table and "(2,900)" in table
