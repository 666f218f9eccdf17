import numpy as np
import pytest

import leadscore_assets.lib.evaluation.metrics as metrics_module
from leadscore_assets.lib.evaluation.metrics import (
    bootstrap_ci,
    bootstrap_draws,
    classification_metrics,
    deciles,
    lift_table,
    selection_score,
)


def test_deciles_are_even_and_best_first():
    p = np.linspace(0, 1, 100)
    d = deciles(p)
    assert (np.bincount(d)[1:] == 10).all()
    assert d[np.argmax(p)] == 1 and d[np.argmin(p)] == 10


def test_perfect_ranking_captures_all_positives_in_top_decile():
    y = np.array([1] * 10 + [0] * 90)
    p = np.r_[np.full(10, 0.9), np.full(90, 0.1)]
    m = classification_metrics(y, p)
    assert m["roc_auc"] == 1.0 and m["top10_capture"] == 1.0
    assert lift_table(y, p).lift.iloc[0] == 10.0


def test_loss_metrics_are_negated_for_selection():
    assert selection_score({"brier": 0.2}, "neg_brier") == -0.2
    assert selection_score({"roc_auc": 0.7}, "roc_auc") == 0.7


def _sklearn_bootstrap(y, p, metrics, n_boot, alpha, seed):
    """The loop `bootstrap_ci` ran before it was vectorised: one sklearn call per resample and metric."""
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

    fns = {"roc_auc": roc_auc_score, "pr_auc": average_precision_score, "brier": brier_score_loss}
    y = np.asarray(y).astype(int)
    rng = np.random.default_rng(seed)
    draws = {m: [] for m in metrics}
    for _ in range(n_boot):
        idx = rng.integers(0, len(y), len(y))
        if len(np.unique(y[idx])) < 2:
            continue
        for m in metrics:
            draws[m].append(fns[m](y[idx], p[idx]))
    ci = {m: (float(np.quantile(v, alpha / 2)), float(np.quantile(v, 1 - alpha / 2))) for m, v in draws.items() if v}
    return {m: np.array(v) for m, v in draws.items()}, ci


@pytest.mark.parametrize("n, rounding, rate, block", [
    (3001, 2, 0.1, None),  # heavy ties (101 distinct scores), odd row count
    (2000, None, 0.3, None),  # no ties
    (1000, 1, 0.02, 7),  # 11 distinct scores, rare positives, resamples in blocks of 7
    (15, 1, 0.2, None),  # tiny: some resamples hold one class and are skipped
])
def test_bootstrap_matches_sklearn_per_resample(monkeypatch, n, rounding, rate, block):
    rng = np.random.default_rng(n)
    y = (rng.random(n) < rate).astype(int)
    p = np.clip(rng.beta(2, 5, n) + 0.3 * y, 0, 1)
    p = np.round(p, rounding) if rounding is not None else p
    if block is not None:
        monkeypatch.setattr(metrics_module, "BOOTSTRAP_BLOCK_CELLS", block * n)
    expected_draws, expected_ci = _sklearn_bootstrap(y, p, ("roc_auc", "pr_auc", "brier"), 200, 0.05, seed=7)
    draws = bootstrap_draws(y, p, n_boot=200, seed=7)
    for m, v in expected_draws.items():
        assert len(draws[m]) == len(v)
        np.testing.assert_allclose(draws[m], v, rtol=0, atol=1e-12)
    ci = bootstrap_ci(y, p, seed=7)
    assert ci.keys() == expected_ci.keys()
    for m, (lo, hi) in expected_ci.items():
        assert abs(ci[m][0] - lo) <= 1e-12 and abs(ci[m][1] - hi) <= 1e-12
    assert bootstrap_ci(y, p, ("roc_auc",), seed=7) == {"roc_auc": ci["roc_auc"]}


def test_bootstrap_without_both_classes_gives_no_interval():
    assert bootstrap_ci(np.zeros(50, dtype=int), np.linspace(0, 1, 50)) == {}
