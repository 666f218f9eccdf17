"""TreeSHAP by branch pattern gives what native TreeSHAP (SHAP's TreeExplainer, i.e. XGBoost's and
LightGBM's own `pred_contribs`) gives, on real fitted models, missing values included."""

import json

import numpy as np
import pytest
import shap
from lightgbm import LGBMClassifier
from sklearn.ensemble import RandomForestClassifier
from xgboost import XGBClassifier

from leadscore_assets.lib.scoring import tree_shap as tree_shap
from leadscore_assets.lib.scoring.explain import _tree_shap
from leadscore_assets.lib.modelling.families import family
from leadscore_assets.lib.scoring.tree_shap import pattern_shap


def leads(n: int, seed: int, zeros: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Encoded-like rows: two skewed numbers with missing values, a count, one-hot levels."""
    rng = np.random.default_rng(seed)
    size = rng.lognormal(4, 1.5, n)
    size[rng.random(n) < 0.1] = np.nan
    views = rng.poisson(2 if zeros else 3, n).astype(float)  # many exact zeros with `zeros`
    level = rng.integers(0, 5, n)
    onehot = np.eye(5)[level]
    x = np.column_stack([size, views, onehot, rng.normal(size=n)])
    logit = -1 + 2.5 * (level == 0) - 0.8 * (np.log1p(np.nan_to_num(size, nan=50)) - 4) + 0.3 * views
    return x, (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)


def native(model, x: np.ndarray) -> tuple[np.ndarray, float]:
    explainer = shap.TreeExplainer(model)
    values = np.asarray(explainer.shap_values(x, check_additivity=False), dtype=float)
    return values, float(np.atleast_1d(explainer.expected_value)[-1])


MODELS = {
    "xgboost": lambda y: family("xgboost").estimator(y, seed=0, threads=1),  # the production candidate
    "lightgbm": lambda y: family("lightgbm").estimator(y, seed=0, threads=1),
    "xgboost_depth_2": lambda y: XGBClassifier(n_estimators=60, max_depth=2, n_jobs=1, random_state=0),
    "lightgbm_nan_missing": lambda y: LGBMClassifier(n_estimators=60, num_leaves=9, n_jobs=1, verbose=-1, random_state=0),
    "lightgbm_zero_as_missing": lambda y: LGBMClassifier(n_estimators=60, num_leaves=8, zero_as_missing=True, n_jobs=1,
                                                         verbose=-1, random_state=0),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_pattern_shap_equals_native_treeshap(name):
    x, y = leads(3000, 0, zeros="zero" in name)
    model = MODELS[name](y).fit(x, y)
    scoring, _ = leads(2000, 1, zeros="zero" in name)
    scoring[:50, 1] = np.nan  # missing where training had none (LightGBM then reads it as 0)
    got = pattern_shap(model, scoring)
    assert got is not None, "shallow boosted trees are explained by pattern"
    values, base = got
    expected, expected_base = native(model, scoring)
    # XGBoost adds its contributions in float32, leaf by leaf; LightGBM in float64
    atol = 1e-5 if "xgboost" in name else 1e-9
    np.testing.assert_allclose(values, expected, rtol=0, atol=atol)
    assert base == pytest.approx(expected_base, abs=1e-12)
    # and the top three columns each way are those native TreeSHAP gives
    for sign in (1, -1):
        assert (np.argsort(-sign * values, axis=1)[:, :3] == np.argsort(-sign * expected, axis=1)[:, :3]).mean() > 0.99


def test_deep_trees_and_other_models_fall_back_to_native_treeshap():
    x, y = leads(3000, 0)
    deep = XGBClassifier(n_estimators=20, max_depth=5, n_jobs=1, random_state=0).fit(x, y)
    assert pattern_shap(deep, x) is None
    values, base, _ = _tree_shap(deep, x, "log_odds")
    np.testing.assert_allclose(values, native(deep, x)[0], atol=1e-6)
    forest = RandomForestClassifier(n_estimators=5, max_depth=3, random_state=0).fit(np.nan_to_num(x), y)
    assert pattern_shap(forest, np.nan_to_num(x)) is None


def test_a_lead_gets_the_same_figures_alone_or_among_many():
    """The way depends on the model, not the rows: one row explained alone equals it among all."""
    x, y = leads(2000, 0)
    for name in ("xgboost", "lightgbm"):
        model = MODELS[name](y).fit(x, y)
        whole = pattern_shap(model, x)[0]
        alone = np.vstack([pattern_shap(model, x[i:i + 1])[0] for i in range(0, 40)])
        np.testing.assert_array_equal(alone, whole[:40])


def test_a_disagreement_with_the_model_falls_back_to_native(monkeypatch):
    """The per-call checks have teeth: break the branch decisions and the native values come back."""
    x, y = leads(2000, 0)
    model = MODELS["xgboost"](y).fit(x, y)
    monkeypatch.setattr(tree_shap._Model, "goes_left", lambda self, columns, nan, tree, node: ~nan[0])
    tree_shap._READ.clear()
    with pytest.warns(RuntimeWarning, match="native TreeSHAP used instead"):
        assert pattern_shap(model, x) is None
    values, _, _ = _tree_shap(model, x, "log_odds")
    np.testing.assert_allclose(values, native(model, x)[0], atol=1e-6)


def test_empty_rows_give_the_native_path_its_empty_answer():
    x, y = leads(500, 0)
    model = MODELS["lightgbm"](y).fit(x, y)
    assert pattern_shap(model, x[:0]) is None
    values, _, _ = _tree_shap(model, x[:0], "log_odds")
    assert values.shape == (0, x.shape[1])


@pytest.mark.parametrize("make", [
    lambda: XGBClassifier(n_estimators=40, max_depth=7, n_jobs=1, random_state=0),
    lambda: LGBMClassifier(n_estimators=40, num_leaves=60, min_child_samples=5, n_jobs=1, verbose=-1, random_state=0),
], ids=["xgboost_depth_7", "lightgbm_60_leaves"])
def test_deep_trees_get_the_libraries_own_treeshap_on_more_threads_with_the_same_figures(make):
    x, y = leads(3000, 0)
    model = make().fit(x, y)
    scoring, _ = leads(1500, 1)
    assert pattern_shap(model, scoring) is None, "too deep for the pattern tables"
    one, base_one = tree_shap.native_shap(model, scoring, threads=1)
    two, base_two = tree_shap.native_shap(model, scoring, threads=2)
    np.testing.assert_array_equal(one, two)  # threads split the rows, never a row's sum
    assert base_one == base_two
    expected, expected_base = native(model, scoring)  # SHAP's TreeExplainer
    np.testing.assert_array_equal(one, expected)
    assert base_one == pytest.approx(expected_base, abs=1e-12)
    assert model.get_params()["n_jobs"] == 1  # the model itself still predicts on its own threads
    if isinstance(model, XGBClassifier):
        assert json.loads(model.get_booster().save_config())["learner"]["generic_param"]["nthread"] == "1"


def test_few_rows_explain_on_one_thread_and_a_limited_process_on_its_limit():
    from threadpoolctl import threadpool_limits

    from leadscore_assets.lib.scoring.explain import THREADED_FROM_ROWS, explain_threads

    assert explain_threads(1) == 1 and explain_threads(THREADED_FROM_ROWS - 1) == 1
    with threadpool_limits(1):  # a scoring worker
        assert explain_threads(50_000) == 1
