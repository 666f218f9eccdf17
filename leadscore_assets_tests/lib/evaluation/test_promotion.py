from types import SimpleNamespace

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from leadscore_assets.lib.project.config import PromotionSpec
from leadscore_assets.lib.evaluation.promotion import (
    GAIN_CONFIDENCE,
    HeldOutScores,
    _roc_auc,
    credible_gain,
    decide,
    paired_gain_interval,
)

POLICY = PromotionSpec(min_gain=0.01, max_prediction_psi=0.2, max_feature_drift_share=0.5,
                       max_champion_age_days=30, near_parity_ratio=0.95)


def test_first_model_is_promoted():
    assert decide(POLICY, 0.7, None, None, None, None).promote


def test_worse_challenger_is_rejected():
    d = decide(POLICY, 0.70, 0.72, 0.01, 0.0, 1)
    assert not d.promote and "min_gain" in d.reason and d.metric_gain < 0


def test_better_challenger_is_promoted():
    d = decide(POLICY, 0.75, 0.72, 0.01, 0.1, 1)
    assert d.promote and abs(d.metric_gain - 0.03) < 1e-12


def test_winner_blocked_by_prediction_drift():
    d = decide(POLICY, 0.80, 0.72, 0.35, 0.1, 1)
    assert not d.promote and "prediction PSI 0.350" in d.reason


def test_winner_blocked_by_feature_drift():
    d = decide(POLICY, 0.80, 0.72, 0.05, 0.8, 1)
    assert not d.promote and "feature drift share" in d.reason


def test_aged_champion_yields_to_a_near_parity_challenger_only():
    assert decide(POLICY, 0.70, 0.72, 0.01, 0.0, 45).promote  # 97% of the champion, champion 45 days old
    assert not decide(POLICY, 0.60, 0.72, 0.01, 0.0, 45).promote  # 83%: not close enough
    assert not decide(POLICY, 0.70, 0.72, 0.01, 0.0, 10).promote  # champion still young


def test_unusable_champion_is_replaced_with_the_reason():
    d = decide(POLICY, 0.60, None, None, None, None, champion_unusable="its input columns ['notes'] are no longer features")
    assert d.promote and "cannot score the current rows" in d.reason and "notes" in d.reason


def test_a_near_perfect_challenger_is_never_promoted_unless_acknowledged():
    d = decide(POLICY, 0.9991, None, None, None, None, challenger_auc=0.9991)
    assert not d.promote and "implausible" in d.reason and "accept_near_perfect" in d.reason
    acknowledged = POLICY.model_copy(update={"accept_near_perfect": True})
    assert decide(acknowledged, 0.9991, None, None, None, None, challenger_auc=0.9991).promote
    assert decide(POLICY, 0.97, None, None, None, None, challenger_auc=0.97).promote


# --------------------------------------------------------------------------------------------
# Credible gain: the paired bootstrap interval of the gain must reach min_gain too
# --------------------------------------------------------------------------------------------


def _held_out(n_rule: int = 300, n_feedback: int = 120, challenger_learnt: float = 0.0, seed: int = 0):
    """Held-out rows as the feedback loop has them: old rule-labelled rows, on which both models
    rank alike (with a little independent noise), then the newest feedback's outcomes, driven by
    a `shift` the champion does not see and the challenger has learnt `challenger_learnt` of."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=n_rule + n_feedback)
    shift = np.r_[np.zeros(n_rule), rng.normal(size=n_feedback)]
    y = (rng.random(len(base)) < 1 / (1 + np.exp(-(base + 2 * shift - 1)))).astype(int)
    champion = base + 0.3 * rng.normal(size=len(base))
    challenger = base + 2 * challenger_learnt * shift + 0.3 * rng.normal(size=len(base))
    newest = np.r_[np.zeros(n_rule, bool), np.ones(n_feedback, bool)]
    return HeldOutScores(y, challenger, champion, newest)


def _decide(held: HeldOutScores, policy=POLICY):
    return decide(policy, _roc_auc(held.y, held.challenger), _roc_auc(held.y, held.champion), 0.01, 0.0, 1,
                  held_out=held)


def test_fast_auc_matches_sklearn_with_ties():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 200)
    p = np.round(rng.random(200), 1)  # many ties
    assert _roc_auc(y, p) == pytest.approx(roc_auc_score(y, p))


def test_paired_interval_is_narrower_than_either_model_alone_and_holds_the_gain():
    held = _held_out(challenger_learnt=0.0, seed=2)
    interval = paired_gain_interval(held.y, held.challenger, held.champion, seed=3)
    gain = _roc_auc(held.y, held.challenger) - _roc_auc(held.y, held.champion)
    assert interval.low <= gain <= interval.high and interval.gain == pytest.approx(gain)
    assert interval.level == GAIN_CONFIDENCE
    assert interval.high - interval.low < 0.05  # the models rank alike: differences cancel out
    assert paired_gain_interval(held.y, held.challenger, held.champion, seed=3) == interval  # deterministic
    assert paired_gain_interval(np.ones(10), np.ones(10), np.ones(10)) is None  # one class: no interval


def _lucky_noise() -> HeldOutScores:
    """A challenger no better than the champion (same information, its own noise) that still
    beats it by min_gain on these rows: the draw the credible-gain rule is for."""
    for seed in range(100):
        held = _held_out(challenger_learnt=0.0, seed=seed)
        if _roc_auc(held.y, held.challenger) - _roc_auc(held.y, held.champion) >= POLICY.min_gain:
            return held
    raise AssertionError("no lucky draw in 100 seeds")


def test_a_lucky_gain_on_noise_is_not_credible():
    held = _lucky_noise()
    gain_only = decide(POLICY, _roc_auc(held.y, held.challenger), _roc_auc(held.y, held.champion), 0.01, 0.0, 1)
    assert gain_only.promote  # on the point gain alone it would replace the champion
    d = _decide(held)
    assert not d.promote
    assert d.reason.startswith(f"rejected: gain {d.metric_gain:+.4f} >= min_gain {POLICY.min_gain} is not credible")
    assert "newest feedback's 120 held-out outcomes" in d.reason and "all 420 held-out rows" in d.reason
    assert d.metric_gain_low < POLICY.min_gain and d.feedback_gain_low < POLICY.min_gain


def test_a_learnt_shift_is_credible_on_the_newest_feedback_even_when_diluted_overall():
    held = _held_out(challenger_learnt=0.8, seed=4)
    d = _decide(held)
    assert d.promote, d.reason
    assert "credible (gain" in d.reason and "the newest feedback's 120 held-out outcomes" in d.reason
    assert d.feedback_gain_low >= POLICY.min_gain
    assert d.feedback_gain > d.metric_gain  # what the old rows dilute


def test_a_broad_gain_is_credible_on_all_held_out_rows_without_feedback():
    rng = np.random.default_rng(5)
    signal = rng.normal(size=600)
    y = (rng.random(600) < 1 / (1 + np.exp(-2 * signal))).astype(int)
    held = HeldOutScores(y, signal + 0.2 * rng.normal(size=600), signal + 1.5 * rng.normal(size=600))
    d = _decide(held)
    assert d.promote and "all 600 held-out rows" in d.reason
    assert np.isnan(d.as_row()["feedback_gain_low"]) and d.as_row()["metric_gain_low"] >= POLICY.min_gain


def test_credible_gain_rule_leaves_other_paths_alone():
    held = _held_out(challenger_learnt=0.0, seed=6)
    worse = HeldOutScores(held.y, held.champion - 0.5 * held.challenger, held.champion, held.newest_feedback)
    d = _decide(worse)
    assert not d.promote and d.reason.startswith(f"rejected: gain {d.metric_gain:+.4f} < min_gain")
    # an aged champion still yields to a near-parity challenger, credible or not
    assert decide(POLICY, 0.70, 0.72, 0.01, 0.0, 45, held_out=held).promote
    # no champion: nothing to compare, no interval
    first = decide(POLICY, 0.7, None, None, None, None, held_out=held)
    assert first.promote and np.isnan(first.as_row()["metric_gain_low"])
    # a credible winner is still stopped by the drift guardrails
    learnt = _held_out(challenger_learnt=0.8, seed=4)
    blocked = decide(POLICY, _roc_auc(learnt.y, learnt.challenger), _roc_auc(learnt.y, learnt.champion), 0.35, 0.0,
                     1, held_out=learnt)
    assert not blocked.promote and "prediction PSI" in blocked.reason


def test_gain_confidence_zero_judges_on_the_point_gain_alone():
    d = _decide(_lucky_noise(), POLICY.model_copy(update={"gain_confidence": 0.0}))
    assert d.promote and np.isnan(d.as_row()["metric_gain_low"])


def test_gain_confidence_is_read_from_the_policy_and_checked():
    held = _held_out(seed=8)
    assert credible_gain(SimpleNamespace(gain_confidence=0.5), held).overall.level == 0.5
    with pytest.raises(ValueError, match="gain_confidence must be in"):
        credible_gain(SimpleNamespace(gain_confidence=1.5), held)


def test_decision_row_has_float_interval_columns():
    row = decide(POLICY, 0.7, None, None, None, None).as_row()
    assert {k: type(row[k]) for k in ("metric_gain_low", "feedback_gain_high")} == {
        "metric_gain_low": float, "feedback_gain_high": float}
    assert "promote" in row
