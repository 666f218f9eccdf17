import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from leadscore_assets.lib.project.config import TargetSpec, load_project_config
from leadscore_assets.lib.evaluation.metrics import classification_metrics
from leadscore_assets.lib.modelling.revenue import regression_metrics
from leadscore_assets.lib.evaluation.targets import (
    COLUMNS,
    compare_targets,
    measured_figures,
    target_text,
    targets_markdown,
    targets_met,
)

DEFS = Path(__file__).resolve().parents[3] / "leadscore_assets" / "defs"

TARGETS = {
    "f1": TargetSpec(min=0.40, note="at the max_f1 threshold"),
    "roc_auc": TargetSpec(min=0.75),
    "revenue_rmse": TargetSpec(max=20),
    "revenue_mape": TargetSpec(max=0.30),
    "brier": TargetSpec(min=0.01, max=0.1),
}


def _scored() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    p = rng.random(200)
    return (rng.random(200) < p).astype(int), p


def test_target_text():
    assert target_text(TargetSpec(min=0.4)) == ">= 0.40"
    assert target_text(TargetSpec(max=20)) == "<= 20"
    assert target_text(TargetSpec(min=0.755)) == ">= 0.755"
    assert target_text(TargetSpec(min=0.5, max=0.9)) == ">= 0.50 and <= 0.90"
    assert target_text(TargetSpec()) == "no bound"


def test_compare_targets_met_missed_and_unmeasured():
    measured = {"f1": 0.41234567, "roc_auc": 0.70, "revenue_rmse": 12.3456, "brier": float("nan"), "recall": 0.9}
    df = compare_targets(TARGETS, measured)
    assert list(df.columns) == COLUMNS == ["metric", "target", "measured", "met"]
    assert df.metric.tolist() == list(TARGETS)  # configured order; unconfigured figures (recall) left out
    rows = df.set_index("metric")
    assert rows.loc["f1", "target"] == ">= 0.40" and rows.loc["f1", "measured"] == 0.4123 and rows.loc["f1", "met"] is True
    assert rows.loc["roc_auc", "met"] is False
    assert rows.loc["revenue_rmse", "target"] == "<= 20" and rows.loc["revenue_rmse", "measured"] == 12.35
    assert rows.loc["revenue_rmse", "met"] is True
    # not measured (absent or NaN): None in both columns, never NaN or False
    assert rows.loc["revenue_mape", "measured"] is None and rows.loc["revenue_mape", "met"] is None
    assert rows.loc["brier", "measured"] is None and rows.loc["brier", "met"] is None
    assert targets_met(df) == 2


def test_bounds_are_inclusive_and_decided_before_rounding():
    df = compare_targets({"f1": TargetSpec(min=0.4), "revenue_rmse": TargetSpec(max=20)}, {"f1": 0.4, "revenue_rmse": 20.0})
    assert df.met.tolist() == [True, True]
    df = compare_targets({"f1": TargetSpec(min=0.4)}, {"f1": 0.39999})  # shown as 0.4 but missed
    assert df.measured.iloc[0] == 0.4 and df.met.iloc[0] is False
    both = {"brier": TargetSpec(min=0.01, max=0.1)}
    assert [compare_targets(both, {"brier": v}).met.iloc[0] for v in (0.005, 0.05, 0.2)] == [False, True, False]


def test_targets_accept_plain_dicts_and_empty_config():
    df = compare_targets({"revenue_r2": {"min": 0.5}}, {"revenue_r2": 0.61})
    assert df.target.iloc[0] == ">= 0.50" and df.met.iloc[0] is True
    empty = compare_targets({}, {"f1": 0.5})
    assert list(empty.columns) == COLUMNS and len(empty) == 0 and targets_met(empty) == 0
    assert targets_markdown(empty) == "_no targets configured_"


def test_measured_figures_names_match_the_metric_functions():
    y, p = _scored()
    classification = {f"test_{k}": v for k, v in classification_metrics(y, p).items()} | {"dummy_test_roc_auc": 0.5}
    revenue = regression_metrics(np.array([50.0, 60, 70]), np.array([52.0, 61, 66]))
    figures = measured_figures(classification, revenue, classification_prefix="test_")
    assert {"roc_auc", "f1", "precision", "recall", "revenue_rmse", "revenue_mae", "revenue_r2", "revenue_mape"} <= set(figures)
    assert "dummy_test_roc_auc" not in figures and "test_f1" not in figures
    assert figures["revenue_mape"] < 1  # a fraction: targets use the same unit
    assert measured_figures({"f1": 0.5}) == {"f1": 0.5}


def test_markdown_shows_met_states_summary_and_notes():
    df = compare_targets(TARGETS, {"f1": 0.5, "roc_auc": 0.7, "revenue_rmse": 30.0})
    md = targets_markdown(df, TARGETS)
    lines = md.splitlines()
    assert lines[0].replace(" ", "") == "|metric|target|measured|met|"
    f1_row = next(line for line in lines if line.startswith("| f1"))
    assert ">= 0.40" in f1_row and "0.5" in f1_row and "yes" in f1_row
    assert "no" in next(line for line in lines if line.startswith("| roc_auc"))
    assert "not measured" in next(line for line in lines if line.startswith("| revenue_mape"))
    assert "1 of 5 targets met (3 measured)." in md
    assert "- f1: at the max_f1 threshold" in md
    assert "- f1" not in targets_markdown(df)  # notes only when the targets are given


def test_web_sessions_targets_name_real_metrics():
    config = load_project_config(DEFS / "web_sessions" / "defs.yaml")
    y, p = _scored()
    known = set(classification_metrics(y, p)) | {f"revenue_{k}" for k in regression_metrics(np.ones(3), np.ones(3))}
    assert set(config.targets) == {"roc_auc", "f1", "recall", "precision",
                                   "revenue_rmse", "revenue_mae", "revenue_r2", "revenue_mape"}
    assert set(config.targets) <= known
    assert config.targets["revenue_mape"].max == pytest.approx(0.30)  # a fraction, like regression_metrics
    assert config.targets["f1"].min == pytest.approx(0.40) and config.targets["revenue_rmse"].max == 20
    df = compare_targets(config.targets, {})
    assert df.met.tolist() == [None] * 8 and not any(isinstance(v, float) and math.isnan(v) for v in df.measured)
    assert isinstance(df, pd.DataFrame)
