"""The blend: chosen greedily on held-out rows, one sklearn pipeline, margins that add up."""

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from leadscore_assets.lib.modelling.blend import (
    LogitBlend,
    blend_pipeline,
    describe,
    fitted_blend_pipeline,
    greedy_weights,
    log_odds,
)


def two_signals(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    y = (rng.random(n) < 1 / (1 + np.exp(-(1.5 * x.a + 1.5 * x.b)))).astype(int).to_numpy()
    return x, y


def test_two_models_that_each_see_half_the_signal_are_blended_and_beat_either():
    x, y = two_signals(4000, 0)
    rng = np.random.default_rng(1)
    sees_a = 1 / (1 + np.exp(-(1.5 * x.a + rng.normal(scale=0.3, size=len(x)))))
    sees_b = 1 / (1 + np.exp(-(1.5 * x.b + rng.normal(scale=0.3, size=len(x)))))
    noise = rng.random(len(x))
    weights, auc = greedy_weights(y, {"lightgbm": sees_a.to_numpy(), "xgboost": sees_b.to_numpy(), "dummy": noise})
    assert set(weights) == {"lightgbm", "xgboost"} and abs(sum(weights.values()) - 1) < 1e-12
    assert auc > max(roc_auc_score(y, sees_a), roc_auc_score(y, sees_b)) + 0.05
    assert "lightgbm 0.5" in describe(weights)


def test_one_clearly_better_model_is_not_blended():
    x, y = two_signals(4000, 2)
    good = 1 / (1 + np.exp(-(1.5 * x.a + 1.5 * x.b)))
    weights, _ = greedy_weights(y, {"logistic_regression": good.to_numpy(), "xgboost": np.random.default_rng(3).random(len(y))})
    assert weights == {"logistic_regression": 1.0}


def test_a_blend_pipeline_predicts_the_weighted_log_odds_of_its_refitted_members():
    """Members keep their own preprocessing (here: scaled vs raw inputs, as the spline model's differs)."""
    x, y = two_signals(2000, 4)
    members = {
        "logistic_regression": Pipeline([("preprocess", ColumnTransformer([("num", StandardScaler(), ["a", "b"])])),
                                         ("model", LogisticRegression(C=1.0))]).fit(x, y),
        "spline_logistic": Pipeline([("preprocess", ColumnTransformer([("num", "passthrough", ["a"])])),
                                     ("model", LogisticRegression(C=0.01))]).fit(x, y),
    }
    blend = blend_pipeline(members, {"logistic_regression": 0.25, "spline_logistic": 0.75}, ["a", "b"]).fit(x, y)
    assert isinstance(blend.named_steps["model"], LogitBlend)
    expected = 0.25 * members["logistic_regression"].decision_function(x) \
        + 0.75 * members["spline_logistic"].decision_function(x)
    np.testing.assert_allclose(log_odds(blend.predict_proba(x)[:, 1]), expected, atol=1e-9)
    assert clone(blend).fit(x, y).predict_proba(x).shape == (len(x), 2)  # clonable: CV refits it
    # the members as fitted, not fitted again: the same answers (and the same objects)
    reused = fitted_blend_pipeline(members, {"logistic_regression": 0.25, "spline_logistic": 0.75}, ["a", "b"], x)
    assert reused.named_steps["model"].members_[0] is members["logistic_regression"]
    np.testing.assert_array_equal(reused.predict_proba(x), blend.predict_proba(x))
    assert clone(reused).fit(x, y).predict_proba(x).shape == (len(x), 2)


def scaled_logistic(columns: list[str], c: float = 1.0) -> Pipeline:
    return Pipeline([("preprocess", ColumnTransformer([("num", StandardScaler(), columns)])),
                     ("model", LogisticRegression(C=c))])


def test_a_fold_bag_is_the_cross_validation_models_and_knows_their_out_of_fold_scores():
    """What CV fits to judge a candidate is kept as the model: its held-out margins are exactly
    what cross_val_predict gives, its answer the average of the fold models' log-odds."""
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    from leadscore_assets.lib.modelling.blend import FoldBag, bag_pipeline, fold_bag_of, margin

    x, y = two_signals(1500, 5)
    folds = StratifiedKFold(5, shuffle=True, random_state=3)
    bag = bag_pipeline(scaled_logistic(["a", "b"]), ["a", "b"], folds).fit(x, y)
    fitted = fold_bag_of(bag)
    assert isinstance(fitted, FoldBag) and isinstance(fitted, LogitBlend) and len(fitted.members_) == 5
    expected_oof = cross_val_predict(scaled_logistic(["a", "b"]), x, y, cv=folds, method="decision_function")
    np.testing.assert_allclose(fitted.held_out_margins(x, y), expected_oof, atol=1e-12)
    mean_margin = np.mean([margin(m, x) for m in fitted.members_], axis=0)
    np.testing.assert_allclose(bag.decision_function(x), mean_margin, atol=1e-12)
    try:
        fitted.held_out_margins(x, y[::-1])
        raise AssertionError("other rows were accepted")
    except ValueError as err:
        assert "rows the FoldBag was fitted on" in str(err)
    assert clone(bag).fit(x, y).predict_proba(x).shape == (len(x), 2)


def test_a_blend_of_fold_bags_is_one_bag_of_the_folds_blends():
    """Blending bags fold by fold gives the weighted blend of the bags' answers and, out of fold,
    the weighted blend of their held-out margins: the scores the weights were chosen on."""
    from sklearn.model_selection import StratifiedKFold

    from leadscore_assets.lib.modelling.blend import bag_pipeline, fitted_blend_of_bags, fold_bag_of

    x, y = two_signals(1500, 6)
    folds = StratifiedKFold(5, shuffle=True, random_state=4)
    bags = {"logistic_regression": bag_pipeline(scaled_logistic(["a", "b"]), ["a", "b"], folds).fit(x, y),
            "spline_logistic": bag_pipeline(scaled_logistic(["a"], c=0.05), ["a", "b"], folds).fit(x, y)}
    weights = {"logistic_regression": 0.6, "spline_logistic": 0.4}
    blended = fitted_blend_of_bags(bags, weights, ["a", "b"], x, y)
    expected = sum(w * bags[n].decision_function(x) for n, w in weights.items())
    np.testing.assert_allclose(blended.decision_function(x), expected, atol=1e-9)
    expected_oof = sum(w * fold_bag_of(bags[n]).held_out_margins(x, y) for n, w in weights.items())
    np.testing.assert_allclose(fold_bag_of(blended).held_out_margins(x, y), expected_oof, atol=1e-9)
