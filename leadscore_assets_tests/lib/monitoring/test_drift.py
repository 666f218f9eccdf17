import numpy as np
import pandas as pd
import pytest

from leadscore_assets.lib.monitoring.drift import (
    _drifted_columns_share,
    _value_drift_table,
    feature_drift,
    label_drift,
    score_drift,
)

NUMERIC = ["employees", "engagement", "constant_flag"]
CATEGORICAL = ["industry", "weekday"]


def _leads(n: int, seed: int, employees_mean: float = 4.0, industry_mix=(0.5, 0.3, 0.2)) -> pd.DataFrame:
    """Leads with NaN numerics, None categoricals, a constant column and an integer weekday."""
    rng = np.random.default_rng(seed)
    engagement = rng.normal(50, 10, n)
    engagement[rng.random(n) < 0.1] = np.nan
    industry = rng.choice(np.array(["software", "retail", "finance"], dtype=object), n, p=industry_mix)
    industry[rng.random(n) < 0.05] = None
    return pd.DataFrame(
        {
            "employees": rng.lognormal(employees_mean, 0.5, n),
            "engagement": engagement,
            "constant_flag": np.ones(n),
            "industry": industry,
            "weekday": rng.integers(1, 8, n),
        }
    )


def _decile_psi(reference: np.ndarray, current: np.ndarray, floor: float = 1e-4) -> float:
    edges = np.quantile(reference, np.linspace(0, 1, 11))
    edges[0], edges[-1] = -np.inf, np.inf
    ref_share = np.clip(np.histogram(reference, edges)[0] / len(reference), floor, None)
    cur_share = np.clip(np.histogram(current, edges)[0] / len(current), floor, None)
    return float(np.sum((ref_share - cur_share) * np.log(ref_share / cur_share)))


def _assert_html_report(report, *mentions: str) -> None:
    """The report's HTML is a full Evidently page stating this comparison's findings; lib writes no
    file (the caller writes `html` to `html_path`)."""
    assert not report.html_path.exists()
    html = report.html
    assert len(html) > 50_000  # the page embeds Evidently's UI bundle
    for mention in mentions:
        assert mention in html


def test_same_distribution_reports_no_drift(tmp_path):
    report = feature_drift(_leads(3000, seed=1), _leads(3000, seed=2), NUMERIC, CATEGORICAL, tmp_path / "a" / "f.html")
    assert report.kind == "features" and report.psi is None
    assert report.drift_share == 0.0 and report.drifted_columns == []
    assert report.per_column.column.tolist() == NUMERIC + CATEGORICAL
    assert list(report.per_column.columns) == ["column", "method", "score", "threshold", "drifted"]
    _assert_html_report(report, "Drift is detected for 0.0% of columns (0 out of 5).")


def test_shifted_numeric_and_new_industry_mix_drift_while_the_rest_does_not(tmp_path):
    reference = _leads(3000, seed=1)
    current = _leads(3000, seed=2, employees_mean=5.0, industry_mix=(0.1, 0.2, 0.7))
    current["weekday"] = current.weekday.astype(float)  # an int column that gained NaN arrives as float
    current.loc[current.index[:10], "weekday"] = np.nan
    report = feature_drift(reference, current, NUMERIC, CATEGORICAL, tmp_path / "f.html")

    assert sorted(report.drifted_columns) == ["employees", "industry"]
    assert report.drift_share == pytest.approx(2 / 5)
    by_column = report.per_column.set_index("column")
    assert not by_column.loc[["engagement", "constant_flag", "weekday"], "drifted"].any()
    assert by_column.loc["employees", "score"] > by_column.loc["employees", "threshold"]
    _assert_html_report(report, "Drift is detected for 40.0% of columns (2 out of 5).")


def test_constant_column_on_small_data_is_not_drifted(tmp_path):
    """Below 1,000 rows Evidently switches to p-value tests; a constant column must still pass."""
    reference, current = _leads(300, seed=1), _leads(300, seed=2)
    reference["plan"] = current["plan"] = "free"
    report = feature_drift(reference, current, ["constant_flag"], ["plan"], tmp_path / "f.html")
    assert report.drifted_columns == [] and report.drift_share == 0.0


def test_empty_current_data_is_rejected(tmp_path):
    reference = _leads(100, seed=1)
    with pytest.raises(ValueError, match="current data has no feature rows"):
        feature_drift(reference, reference.iloc[:0], NUMERIC, CATEGORICAL, tmp_path / "f.html")
    with pytest.raises(ValueError, match="current data has no score rows"):
        score_drift(np.random.default_rng(0).random(100), np.array([np.nan]), tmp_path / "s.html")
    with pytest.raises(ValueError, match="current data has no labelled rows"):
        label_drift(np.array([0, 1, 1]), np.array([], dtype=float), tmp_path / "l.html")


def test_numeric_column_without_values_is_named(tmp_path):
    reference, current = _leads(100, seed=1), _leads(100, seed=2)
    current["engagement"] = None
    with pytest.raises(ValueError, match=r"\['engagement'\] have no values in the current data"):
        feature_drift(reference, current, NUMERIC, CATEGORICAL, tmp_path / "f.html")


def test_score_psi_is_near_zero_when_stable_and_large_when_shifted(tmp_path):
    rng = np.random.default_rng(3)
    reference = rng.beta(2, 5, 5000)

    stable = score_drift(reference, rng.beta(2, 5, 5000), tmp_path / "stable.html")
    assert stable.psi < 0.05 and stable.drifted_columns == [] and stable.drift_share == 0.0

    current = rng.beta(3, 4, 5000)
    shifted = score_drift(reference, current, tmp_path / "shifted.html")
    assert shifted.psi > 0.2 and shifted.drifted_columns == ["score"] and shifted.drift_share == 1.0
    assert shifted.per_column.loc[0, ["method", "threshold"]].tolist() == ["psi", 0.2]
    # Evidently bins PSI with Sturges' rule on both samples, not on reference deciles: close, not equal.
    assert shifted.psi == pytest.approx(_decile_psi(reference, current), rel=0.15)
    _assert_html_report(shifted, "Drift in column 'score'", "Drift detection method: PSI")


def test_label_drift_detects_positive_rate_rising_from_10_to_40_percent(tmp_path):
    rng = np.random.default_rng(4)
    reference = (rng.random(3000) < 0.1).astype(int)
    same_rate = (rng.random(3000) < 0.1).astype(float)
    same_rate[:300] = np.nan  # unlabelled leads are dropped, and 1.0 counts as the same label as 1
    assert label_drift(reference, same_rate, tmp_path / "same.html").drifted_columns == []

    report = label_drift(reference, (rng.random(3000) < 0.4).astype(int), tmp_path / "labels.html")
    assert report.kind == "labels" and report.drifted_columns == ["label"] and report.drift_share == 1.0
    assert report.per_column.loc[0, "score"] > report.per_column.loc[0, "threshold"]
    _assert_html_report(report, "Drift in column 'label'")


def _snapshot(value_drift_status: str | None) -> dict:
    """The shape of `snapshot.dict()` for one DriftedColumnsCount and one ValueDrift (with its test, if any)."""
    metric_id = "m1"
    drift_test = {
        "id": "drift",
        "metric_config": {"metric_id": metric_id, "params": {"type": "evidently:metric_v2:ValueDrift"}},
        "status": value_drift_status,
    }
    tests = [] if value_drift_status is None else [drift_test]
    return {
        "metrics": [
            {"id": "m0", "config": {"type": "evidently:metric_v2:DriftedColumnsCount"}, "value": {"count": 1.0, "share": 0.5}},
            {
                "id": metric_id,
                "config": {"type": "evidently:metric_v2:ValueDrift", "column": "x", "method": "psi", "threshold": 0.2},
                "value": np.float64(0.31),
            },
        ],
        "tests": tests,
    }


def test_snapshot_reader_takes_score_from_value_and_verdict_from_bound_test():
    table = _value_drift_table(_snapshot("FAIL"))
    assert table.to_dict("records") == [{"column": "x", "method": "psi", "score": 0.31, "threshold": 0.2, "drifted": True}]
    assert _drifted_columns_share(_snapshot("FAIL")) == 0.5
    with pytest.raises(RuntimeError, match="no drift verdict for column 'x'"):
        _value_drift_table(_snapshot(None))


def test_a_sample_of_each_large_side_gives_the_drift_of_every_row(tmp_path):
    """Above COMPARED_ROWS a side is compared through a seeded sample in its order: the same
    columns drift and each column's distance is close to the one over every row (10,000 rows here:
    within 10% or 0.01; the shipped 50,000 are closer)."""
    from leadscore_assets.lib.monitoring.drift import compared_rows

    reference, current = _leads(60_000, seed=1), _leads(60_000, seed=2, employees_mean=4.3)
    sample = compared_rows(reference, at_most=10_000, seed=7)
    assert len(sample) == 10_000 and sample.index.is_monotonic_increasing
    assert sample.index.equals(compared_rows(reference, at_most=10_000, seed=7).index)
    assert compared_rows(reference.head(500), at_most=10_000).equals(reference.head(500))
    whole = feature_drift(reference, current, NUMERIC, CATEGORICAL, tmp_path / "whole.html")
    sampled = feature_drift(sample, compared_rows(current, at_most=10_000, seed=7), NUMERIC, CATEGORICAL,
                            tmp_path / "sampled.html")
    assert sampled.drifted_columns == whole.drifted_columns == ["employees"]
    assert np.allclose(sampled.per_column.score, whole.per_column.score, rtol=0.1, atol=0.01)


def test_rows_after_training_are_the_rows_a_training_reference_does_not_hold():
    """With no champion the current rows are the other splits, as `current_rows` against a
    reference of the training split gives them, without scoring every training row."""
    from leadscore_assets.lib.features.frame import ID, SPLIT
    from leadscore_assets.lib.monitoring.drift import current_rows, drift_reference, rows_after_training

    frame = _leads(200, seed=3).assign(**{ID: [f"l{i}" for i in range(200)],
                                           SPLIT: ["train"] * 120 + ["validation"] * 40 + ["test"] * 40, "label": 0.0})
    train = frame[frame[SPLIT] == "train"]
    reference = drift_reference(train, NUMERIC, "label", np.zeros(len(train)), train[ID])
    assert rows_after_training(frame).equals(current_rows(frame, reference))
    small = frame.iloc[:130]  # 10 rows after training: fewer than MIN_ROWS, so the test split (none here)
    assert rows_after_training(small).equals(current_rows(small, reference)) and rows_after_training(small).empty
