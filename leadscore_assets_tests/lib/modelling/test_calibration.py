import pickle

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss
from sklearn.pipeline import Pipeline

from leadscore_assets.lib.modelling.calibration import calibrate, raw_and_calibrated, reliability_plot
from leadscore_assets.lib.features.frame import FeatureSet, preprocessor

FEATURES = FeatureSet(numeric=["seniority", "visits"], categorical=["industry"])


def leads(n: int, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
    """Readable lead rows with about 10% conversions, from a known logistic model."""
    x = pd.DataFrame(
        {
            "seniority": rng.normal(size=n),
            "visits": rng.poisson(3, size=n).astype(float),
            "industry": rng.choice(["software", "retail", "finance"], size=n),
        }
    )
    logit = -3.4 + 1.1 * x.seniority + 0.25 * x.visits + np.where(x.industry == "software", 0.6, 0.0)
    return x, (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)


def fitted_pipeline(config, x, y, class_weight=None) -> Pipeline:
    model = LogisticRegression(class_weight=class_weight, max_iter=1000)
    return Pipeline([("preprocess", preprocessor(FEATURES, config)), ("model", model)]).fit(x, y)


def brier(classifier, x, y) -> float:
    return brier_score_loss(y, classifier.predict_proba(x)[:, 1])


@pytest.fixture(scope="module")
def splits():
    rng = np.random.default_rng(7)
    return {name: leads(n, rng) for name, n in [("train", 3000), ("validation", 1600), ("test", 5000)]}


def test_inflated_probabilities_are_calibrated_and_brier_improves_on_independent_rows(linkedin_config, splits):
    pipeline = fitted_pipeline(linkedin_config, *splits["train"], class_weight="balanced")
    result = calibrate(pipeline, *splits["validation"])
    assert result.method in {"sigmoid", "isotonic"}
    assert result.calibration_rows == 1600
    assert result.brier_after < result.brier_before
    assert result.method in result.reason
    x_test, y_test = splits["test"]
    assert brier(result.pipeline, x_test, y_test) < 0.8 * brier(pipeline, x_test, y_test)
    assert abs(result.pipeline.predict_proba(x_test)[:, 1].mean() - y_test.mean()) < 0.02


def test_pipeline_is_frozen_not_refitted(linkedin_config, splits):
    pipeline = fitted_pipeline(linkedin_config, *splits["train"], class_weight="balanced")
    coef = pipeline.named_steps["model"].coef_.copy()
    calibrate(pipeline, *splits["validation"])
    np.testing.assert_array_equal(pipeline.named_steps["model"].coef_, coef)


def test_calibration_never_worsens_held_out_brier_and_none_keeps_the_original(linkedin_config):
    methods = set()
    for seed in range(6):
        rng = np.random.default_rng(seed)
        pipeline = fitted_pipeline(linkedin_config, *leads(20000, rng))  # unweighted: already calibrated
        result = calibrate(pipeline, *leads(600, rng), seed=seed)
        methods.add(result.method)
        assert result.brier_after <= result.brier_before
        if result.method == "none":
            assert result.pipeline is pipeline and result.brier_after == result.brier_before
    assert "none" in methods


def test_isotonic_is_never_used_below_min_isotonic_rows(linkedin_config, splits):
    pipeline = fitted_pipeline(linkedin_config, *splits["train"], class_weight="balanced")
    x_val, y_val = splits["validation"]
    small = calibrate(pipeline, x_val, y_val, min_isotonic_rows=len(y_val) + 1)
    assert small.method == "sigmoid" and "isotonic" not in small.brier_by_method
    forced = calibrate(pipeline, x_val, y_val, method="isotonic", min_isotonic_rows=len(y_val) + 1)
    assert forced.method != "isotonic" and "falling back to sigmoid" in forced.reason
    large = calibrate(pipeline, x_val, y_val, min_isotonic_rows=len(y_val))
    assert set(large.brier_by_method) == {"none", "sigmoid", "isotonic"}


def test_calibrated_pipeline_is_a_picklable_drop_in_on_readable_rows(linkedin_config, splits):
    pipeline = fitted_pipeline(linkedin_config, *splits["train"], class_weight="balanced")
    calibrated = calibrate(pipeline, *splits["validation"]).pipeline
    unseen = pd.DataFrame(
        {"seniority": [0.5, np.nan, -1.0], "visits": [2.0, 5.0, np.nan], "industry": ["software", "mining", np.nan]}
    )
    proba = calibrated.predict_proba(unseen)
    assert proba.shape == (3, 2) and np.allclose(proba.sum(axis=1), 1) and ((proba >= 0) & (proba <= 1)).all()
    restored = pickle.loads(pickle.dumps(calibrated))
    np.testing.assert_allclose(restored.predict_proba(unseen), proba)


@pytest.mark.parametrize("method", ["sigmoid", "isotonic", "none"])
def test_raw_and_calibrated_probabilities_from_one_prediction_are_the_models_own(linkedin_config, splits, method):
    """What evaluation reports for the uncalibrated and the calibrated model on the test rows,
    predicted once, is bit for bit what each model's predict_proba says."""
    pipeline = fitted_pipeline(linkedin_config, *splits["train"], class_weight="balanced")
    calibrated = calibrate(pipeline, *splits["validation"], method=method).pipeline
    x_test, _ = splits["test"]
    p_raw, p = raw_and_calibrated(calibrated, x_test)
    np.testing.assert_array_equal(p_raw, pipeline.predict_proba(x_test)[:, 1])
    np.testing.assert_array_equal(p, calibrated.predict_proba(x_test)[:, 1])
    assert (method == "none") == np.array_equal(p, p_raw)


def test_too_few_positives_or_no_calibration_requested_returns_the_original(linkedin_config, splits):
    pipeline = fitted_pipeline(linkedin_config, *splits["train"])
    x_val, y_val = splits["validation"]
    few = np.flatnonzero(y_val == 0)[:200].tolist() + np.flatnonzero(y_val == 1)[:3].tolist()
    tiny = calibrate(pipeline, x_val.iloc[few], y_val[few])
    assert tiny.method == "none" and tiny.pipeline is pipeline and "3 positive" in tiny.reason
    skipped = calibrate(pipeline, x_val, y_val, method="none")
    assert skipped.method == "none" and skipped.pipeline is pipeline
    with pytest.raises(ValueError, match="unknown calibration method"):
        calibrate(pipeline, x_val, y_val, method="platt")


def test_reliability_plot_draws_one_line_per_curve_and_the_diagonal(splits):
    x_test, y_test = splits["test"]
    p = np.clip(x_test.visits.to_numpy() / 20, 0, 1)
    fig = reliability_plot(y_test, {"before": p, "after": np.full(len(p), y_test.mean())}, "linkedin")
    assert isinstance(fig, Figure)
    (ax,) = fig.axes
    assert len(ax.lines) == 3 and ax.get_title() == "linkedin"


def test_a_calibrator_on_given_out_of_fold_margins_is_the_one_cross_validation_fits():
    """calibrated_on_scores builds, from margins already at hand, the very model
    CalibratedClassifierCV(ensemble=False) fits (calibrator on cross-validated margins, around
    the estimator fitted on all rows) without fitting anything again."""
    import numpy as np
    import pandas as pd
    from sklearn.base import clone
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from leadscore_assets.lib.modelling.calibration import calibrated_on_scores, uncalibrated

    rng = np.random.default_rng(0)
    x = pd.DataFrame({"a": rng.normal(size=2000), "b": rng.normal(size=2000)})
    y = (rng.random(2000) < 1 / (1 + np.exp(-(3 * x.a - 2)))).astype(int).to_numpy()
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, class_weight="balanced"))
    folds = StratifiedKFold(5, shuffle=True, random_state=1)
    for method in ("sigmoid", "isotonic"):
        reference = CalibratedClassifierCV(clone(model), method=method, cv=folds, ensemble=False).fit(x, y)
        margins = cross_val_predict(clone(model), x, y, cv=folds, method="decision_function")
        fitted = clone(model).fit(x, y)
        built, p_built = calibrated_on_scores(fitted, margins, y, method)
        np.testing.assert_allclose(built.predict_proba(x), reference.predict_proba(x), atol=1e-9)
        assert uncalibrated(built) is fitted
        assert p_built.shape == (len(x),) and ((p_built >= 0) & (p_built <= 1)).all()
        assert list(built.feature_names_in_) == ["a", "b"]


@pytest.mark.parametrize("family", ["logistic (decision function)", "boosted trees (probabilities)"])
def test_calibrating_on_one_prediction_of_the_rows_gives_the_calibrator_sklearn_fits_around_the_model(
        linkedin_config, splits, family):
    """The pipeline predicts the calibration rows once; the calibrator chosen and fitted on those
    numbers is the one CalibratedClassifierCV fits around the frozen pipeline, and the calibrated
    probabilities returned with it are the returned pipeline's own on those rows."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.frozen import FrozenEstimator

    x_train, y_train = splits["train"]
    if family.startswith("logistic"):
        pipeline = fitted_pipeline(linkedin_config, x_train, y_train, class_weight="balanced")
    else:
        model = HistGradientBoostingClassifier(max_iter=30, class_weight="balanced", random_state=0)
        pipeline = Pipeline([("preprocess", preprocessor(FEATURES, linkedin_config)), ("model", model)]).fit(x_train, y_train)
    x_val, y_val = splits["validation"]
    result = calibrate(pipeline, x_val, y_val, method="sigmoid")
    assert result.method == "sigmoid"
    reference = CalibratedClassifierCV(FrozenEstimator(pipeline), method="sigmoid", cv=2).fit(x_val, y_val)
    x_test, _ = splits["test"]
    np.testing.assert_allclose(result.pipeline.predict_proba(x_test), reference.predict_proba(x_test), atol=1e-9)
    np.testing.assert_allclose(result.calibrated_p, result.pipeline.predict_proba(x_val)[:, 1], atol=1e-12)
    assert pickle.loads(pickle.dumps(result.pipeline)).predict_proba(x_test).shape == (len(x_test), 2)
