import numpy as np
import pandas as pd
import pytest
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, make_scorer
from sklearn.model_selection import TunedThresholdClassifierCV

from leadscore_assets.lib.modelling.calibration import ProbabilityPassthrough
from leadscore_assets.lib.modelling.thresholds import candidate_thresholds, choose_threshold, expected_value_per_lead, grades


@pytest.fixture(scope="module")
def validation():
    """Calibrated validation scores: each label is drawn with its own probability (~12% convert)."""
    rng = np.random.default_rng(3)
    p = rng.beta(1.2, 8, size=4000)
    return (rng.random(len(p)) < p).astype(int), p


def brute_force_best_f1(y: np.ndarray, p: np.ndarray) -> float:
    """F1 of contacting the k best-scored leads, for every k that does not split tied scores."""
    order = np.argsort(-p, kind="stable")
    true_positives = np.cumsum(y[order])
    f1 = 2 * true_positives / (np.arange(1, len(p) + 1) + y.sum())
    ends_a_tie_group = np.r_[p[order][1:] != p[order][:-1], True]
    return float(f1[ends_a_tie_group].max())


def test_max_f1_beats_the_default_cut_and_is_close_to_brute_force(validation):
    y, p = validation
    decision = choose_threshold(y, p, "max_f1")
    brute_force_best = brute_force_best_f1(y, p)
    assert decision.f1 >= f1_score(y, p >= 0.5)
    assert brute_force_best - 0.01 <= decision.f1 <= brute_force_best
    assert decision.f1 == pytest.approx(decision.details["tuned_score"])
    assert decision.expected_value is None
    assert decision.contacted_share == pytest.approx((p >= decision.threshold).mean())


def sklearn_tuned(y: np.ndarray, p: np.ndarray, scoring) -> TunedThresholdClassifierCV:
    """scikit-learn's own tuner on the same rows and candidates: the reference the counts must equal."""
    x = p.reshape(-1, 1)
    return TunedThresholdClassifierCV(FrozenEstimator(ProbabilityPassthrough().fit(x, y)), scoring=scoring,
                                      response_method="predict_proba", thresholds=candidate_thresholds(p), cv="prefit",
                                      refit=False).fit(x, y)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("policy", ["max_f1", "expected_value"])
def test_the_threshold_is_the_one_scikit_learns_tuner_chooses(policy, seed):
    """Scores with many ties (rounded, as a calibrated step function gives them) and without,
    rare and common positives: the counted search keeps exactly the threshold and score that
    TunedThresholdClassifierCV finds scoring each candidate with the metric itself."""
    rng = np.random.default_rng(seed)
    p = rng.beta(1.0 + seed, 6, size=3000)
    p = np.round(p, 2) if seed == 1 else p
    y = (rng.random(len(p)) < p).astype(int)
    gains = {"value_per_conversion": 90.0 + seed, "cost_per_contact": 12.0}
    scoring = "f1" if policy == "max_f1" else make_scorer(expected_value_per_lead, **gains)
    reference = sklearn_tuned(y, p, scoring)
    decision = choose_threshold(y, p, policy, **(gains if policy == "expected_value" else {}))
    assert decision.threshold == reference.best_threshold_
    assert decision.details["tuned_score"] == pytest.approx(reference.best_score_, rel=1e-12)


def test_capacity_contacts_the_share_the_team_can_handle(validation):
    y, p = validation
    decision = choose_threshold(y, p, "capacity", capacity_per_week=60, leads_per_week=400)
    assert decision.contacted_share == pytest.approx(60 / 400, abs=1 / len(p))
    assert decision.details["contacts_per_week"] == pytest.approx(60, abs=1)
    everyone = choose_threshold(y, p, "capacity", capacity_per_week=500, leads_per_week=400)
    assert everyone.contacted_share == 1.0 and everyone.recall == 1.0
    with pytest.raises(ValueError, match="capacity"):
        choose_threshold(y, p, "capacity", capacity_per_week=60)


def test_expected_value_follows_the_economics(validation):
    y, p = validation
    generous = choose_threshold(y, p, "expected_value", value_per_conversion=1e6, cost_per_contact=0.01)
    assert generous.contacted_share > 0.95
    stingy = choose_threshold(y, p, "expected_value", value_per_conversion=0.01, cost_per_contact=1e6)
    assert stingy.contacted_share < 0.01 and stingy.expected_value >= 0
    # For calibrated probabilities the best cut is cost / value.
    balanced = choose_threshold(y, p, "expected_value", value_per_conversion=100, cost_per_contact=20)
    assert balanced.threshold == pytest.approx(0.2, abs=0.05)
    assert balanced.expected_value > max(0.0, balanced.details["expected_value_contact_all"])
    with pytest.raises(ValueError, match="value_per_conversion"):
        choose_threshold(y, p, "expected_value", value_per_conversion=100)


@pytest.mark.parametrize("policy", ["max_f1", "capacity", "expected_value"])
def test_reported_expected_value_matches_the_confusion_matrix_by_hand(validation, policy):
    y, p = validation
    value, cost = 250.0, 30.0
    decision = choose_threshold(
        y, p, policy, capacity_per_week=50, leads_per_week=500, value_per_conversion=value, cost_per_contact=cost
    )
    contacted = p >= decision.threshold
    tp, fp = int((contacted & (y == 1)).sum()), int((contacted & (y == 0)).sum())
    assert decision.expected_value == pytest.approx((tp * (value - cost) - fp * cost) / len(y))
    assert (decision.details["tp"], decision.details["fp"]) == (tp, fp)
    assert decision.precision == pytest.approx(tp / max(tp + fp, 1))
    assert decision.recall == pytest.approx(tp / y.sum())


def test_fitted_classifier_is_tuned_on_validation_rows_without_refitting():
    rng = np.random.default_rng(5)
    x = pd.DataFrame({"seniority": rng.normal(size=3000), "visits": rng.poisson(3, size=3000).astype(float)})
    y = (rng.random(3000) < 1 / (1 + np.exp(-(-2.5 + x.seniority + 0.2 * x.visits)))).astype(int)
    model = LogisticRegression().fit(x[:2000], y[:2000])
    coef = model.coef_.copy()
    x_val, y_val = x[2000:], y[2000:]
    p_val = model.predict_proba(x_val)[:, 1]
    from_model = choose_threshold(y_val, None, "max_f1", classifier=model, x_val=x_val)
    from_scores = choose_threshold(y_val, p_val, "max_f1")
    assert from_model.threshold == from_scores.threshold and from_model.f1 == from_scores.f1
    np.testing.assert_array_equal(model.coef_, coef)
    with pytest.raises(ValueError, match="differs"):
        choose_threshold(y_val, p_val[::-1], "max_f1", classifier=model, x_val=x_val)


def test_grades_are_monotone_and_a_b_are_exactly_the_contacted(validation):
    _, p = validation
    for threshold in [0.05, 0.2, 0.8]:
        g = grades(p, threshold)
        assert set(g) <= set("ABCD") and len(g) == len(p)
        ranks = np.array(["DCBA".index(letter) for letter in g[np.argsort(p)]])
        assert (np.diff(ranks) >= 0).all()
        np.testing.assert_array_equal(np.isin(g, ["A", "B"]), p >= threshold)
    assert list(grades(np.array([0.0, 0.06, 0.1, 0.2, 0.19, 1.0]), 0.1)) == ["D", "C", "B", "A", "B", "A"]
    assert list(grades(np.array([0.85, 0.95]), 0.8)) == ["B", "A"]
    with pytest.raises(ValueError, match="NaN"):
        grades(np.array([0.3, np.nan]), 0.2)
