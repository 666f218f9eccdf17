from leadscore_assets.lib.config import PromotionSpec
from leadscore_assets.lib.promotion import decide

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
