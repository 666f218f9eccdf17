import numpy as np

from leadscore_assets.lib.evaluation.metrics import classification_metrics, deciles, lift_table, selection_score


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
