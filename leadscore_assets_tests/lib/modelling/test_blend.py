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
