"""Reasons a salesperson reads must name real fields, point the right way and add up to the score."""

import io
import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import KFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler, TargetEncoder

from leadscore_assets.lib.blend import blend_pipeline
from leadscore_assets.lib.explain import (
    Explanation,
    explain,
    global_importance,
    readable_value,
    reasons,
    source_features,
    summary_plot,
)
from leadscore_assets.lib.features import FeatureSet, preprocessor
from leadscore_assets.lib.model_families import family

FS = FeatureSet(numeric=["company_size", "page_views"], categorical=["job_title", "industry", "country"])
CONFIG = SimpleNamespace(features=SimpleNamespace(categorical_min_frequency=5, categorical_max_levels=30))
TITLES = ["ceo", "engineer", "analyst", "manager", "intern"]
REASON_COLUMNS = [f"reason_{i}_{d}" for d in ("up", "down") for i in (1, 2, 3)]


def synthetic_leads(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """ceo strongly raises conversion, company size strongly lowers it; industry and country are noise."""
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(
        {
            "company_size": np.round(rng.lognormal(4, 1.5, n)),
            "page_views": rng.poisson(3, n).astype(float),
            "job_title": rng.choice(TITLES, n),
            "industry": rng.choice(["saas", "retail", "finance", "health"], n).astype(object),
            "country": rng.choice(["de", "fr", "us"], n),
        }
    )
    x.loc[rng.random(n) < 0.1, "company_size"] = np.nan
    x.loc[rng.random(n) < 0.1, "industry"] = np.nan
    size = np.log1p(x.company_size.fillna(50))
    logit = -1 + 3.0 * (x.job_title == "ceo") - 1.0 * (size - 4) + 0.2 * x.page_views
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return x, y.to_numpy()


@pytest.fixture(scope="module")
def data():
    x_train, y_train = synthetic_leads(3000, 0)
    x_valid, y_valid = synthetic_leads(1000, 1)
    x_score, _ = synthetic_leads(400, 2)
    return x_train, y_train, x_valid, y_valid, x_score


def estimator(name: str, y_train: np.ndarray):
    """The production candidate, single-threaded: thread pools stall when the test machine is busy."""
    return family(name).estimator(y_train, seed=0, threads=1)


def fitted(name: str, data) -> Pipeline:
    x_train, y_train, x_valid, y_valid, _ = data
    base = "xgboost" if name == "calibrated_xgboost" else name
    if name == "blend":  # whole candidate pipelines, each preprocessing for itself
        members = {n: Pipeline([("preprocess", preprocessor(FS, CONFIG)), ("model", estimator(n, y_train))])
                   for n in ("logistic_regression", "lightgbm")}
        return blend_pipeline(members, {"logistic_regression": 0.4, "lightgbm": 0.6}, FS.columns).fit(x_train, y_train)
    pipeline = Pipeline([("preprocess", preprocessor(FS, CONFIG)), ("model", estimator(base, y_train))])
    pipeline.fit(x_train, y_train)
    if name == "calibrated_xgboost":
        encoder = pipeline.named_steps["preprocess"]
        calibrated = CalibratedClassifierCV(FrozenEstimator(pipeline.named_steps["model"]), method="sigmoid")
        calibrated.fit(encoder.transform(x_valid), y_valid)
        pipeline = Pipeline([("preprocess", encoder), ("model", calibrated)])
    return pipeline


MODELS = ["logistic_regression", "random_forest", "xgboost", "lightgbm", "calibrated_xgboost", "blend"]


@pytest.fixture(scope="module")
def explained(data):
    """Each model fitted once and explained on the scoring rows (random forest on a sample: it is slow)."""
    x_train, *_, x_score = data
    out = {}
    for name in MODELS:
        pipeline = fitted(name, data)
        max_rows = 150 if name == "random_forest" else None
        out[name] = pipeline, explain(pipeline, x_score, FS.columns, background=x_train, max_rows=max_rows)
    return out


def raw_margin(pipeline: Pipeline, x: pd.DataFrame) -> np.ndarray:
    """What the explainer explains: log-odds margin, or the forest's averaged probability."""
    encoded = pipeline.named_steps["preprocess"].transform(x)
    model = pipeline.named_steps["model"]
    if type(model).__name__ == "RandomForestClassifier":
        return model.predict_proba(encoded)[:, 1]
    if type(model).__name__ == "LGBMClassifier":
        return model.predict(encoded, raw_score=True)
    if type(model).__name__ == "XGBClassifier":
        return model.predict(encoded, output_margin=True)
    return model.decision_function(encoded)


@pytest.mark.parametrize("name", ["xgboost", "lightgbm", "logistic_regression", "random_forest", "blend"])
def test_contributions_add_up_to_the_raw_margin(explained, data, name):
    """Summing encoded columns back onto source features loses nothing (and shap reads XGBoost 3 models)."""
    pipeline, explanation = explained[name]
    x_score = data[-1].loc[explanation.contributions.index]
    assert list(explanation.contributions.columns) == FS.columns
    assert explanation.output == ("probability" if name == "random_forest" else "log_odds")
    total = explanation.base_value + explanation.contributions.sum(axis=1).to_numpy()
    np.testing.assert_allclose(total, raw_margin(pipeline, x_score), atol=1e-3)


@pytest.mark.parametrize("name", MODELS)
def test_ceo_rows_say_job_title_raises_the_score(explained, data, name):
    _, explanation = explained[name]
    x_score = data[-1].loc[explanation.contributions.index]
    table = reasons(explanation, x_score)
    ceo = x_score.job_title == "ceo"
    assert ceo.sum() > 10
    up_reasons = table.loc[ceo, ["reason_1_up", "reason_2_up", "reason_3_up"]]
    assert up_reasons.eq("job_title = ceo raises the score").any(axis=1).all()
    # and for everyone else the job title does not claim to raise it as a ceo would
    assert not table.loc[~ceo, REASON_COLUMNS].isin(["job_title = ceo raises the score"]).any().any()


@pytest.mark.parametrize("name", MODELS)
def test_reasons_point_the_way_shap_does_and_name_source_features(explained, data, name):
    _, explanation = explained[name]
    table = reasons(explanation, data[-1])
    assert table.index.equals(explanation.contributions.index)
    for row_id, row in table.iterrows():
        for direction in ("up", "down"):
            items = json.loads(row[f"reasons_{direction}"])
            assert len(items) <= 3
            for item in items:
                assert item["feature"] in FS.columns and item["direction"] == direction
                shap_value = explanation.contributions.at[row_id, item["feature"]]
                assert np.sign(item["contribution"]) == np.sign(shap_value) == (1 if direction == "up" else -1)
            magnitudes = [abs(item["contribution"]) for item in items]
            assert magnitudes == sorted(magnitudes, reverse=True)
    texts = table[REASON_COLUMNS].stack().dropna()
    assert texts.str.split(" = ").str[0].isin(FS.columns).all()
    assert not texts.str.contains("missingindicator|_ceo|infrequent_sklearn").any()


def test_strong_features_lead_the_global_importance(explained):
    for name in MODELS:
        top_two = global_importance(explained[name][1]).feature.head(2)
        assert set(top_two) == {"job_title", "company_size"}, name


def test_company_size_lowers_big_companies_and_missing_reads_missing(explained, data):
    _, explanation = explained["xgboost"]
    x_score = data[-1]
    table = reasons(explanation, x_score)
    biggest = x_score.company_size.idxmax()
    said = table.loc[biggest, REASON_COLUMNS].tolist()
    assert f"company_size = {int(x_score.company_size.max())} lowers the score" in said
    values = [
        item["value"]
        for cell in table.loc[x_score.company_size.isna(), ["reasons_up", "reasons_down"]].to_numpy().ravel()
        for item in json.loads(cell)
        if item["feature"] == "company_size"
    ]
    assert values and set(values) == {"missing"}
    assert not table[REASON_COLUMNS].stack().str.contains(" = (?:nan|None|<NA>) ").any()


def test_reasons_do_not_flip_on_float_noise():
    """Two features with the same contribution up to rounding noise (as another BLAS thread count
    gives) rank in column order both ways, so the reasons a lead gets do not depend on the machine."""
    rows = pd.DataFrame({"a": ["x", "x"], "b": ["y", "y"]}, index=[0, 1])
    tied = pd.DataFrame({"a": [0.3, 0.3], "b": [0.3 + 4e-17, 0.3 - 4e-17]}, index=[0, 1])
    table = reasons(Explanation(tied, base_value=0.0), rows, k=1)
    assert table.reason_1_up.tolist() == ["a = x raises the score"] * 2


def test_dummy_gives_no_reasons(data):
    x_train, y_train, *_, x_score = data
    explanation = explain(fitted("dummy", data), x_score, FS.columns)
    assert (explanation.contributions == 0).all().all()
    assert explanation.base_value == pytest.approx(np.log(y_train.mean() / (1 - y_train.mean())))
    table = reasons(explanation, x_score)
    assert (table.reasons_up == "[]").all() and (table.reasons_down == "[]").all()
    assert table[REASON_COLUMNS].isna().all().all()


def test_max_rows_explains_a_seeded_sample_and_reasons_follow_it(explained, data):
    pipeline, full = explained["xgboost"]
    x_score = data[-1]
    sample = explain(pipeline, x_score, FS.columns, max_rows=50, seed=3)
    again = explain(pipeline, x_score, FS.columns, max_rows=50, seed=3)
    assert len(sample.contributions) == 50 and sample.contributions.index.equals(again.contributions.index)
    assert sample.contributions.index.is_monotonic_increasing
    pd.testing.assert_frame_equal(sample.contributions, full.contributions.loc[sample.contributions.index])
    assert reasons(sample, x_score).index.equals(sample.contributions.index)


def test_chunks_explain_like_the_whole_and_empty_chunks_work(explained, data):
    pipeline, full = explained["lightgbm"]
    x_score = data[-1]
    chunks = [explain(pipeline, x_score.iloc[i : i + 150], FS.columns) for i in range(0, len(x_score), 150)]
    pd.testing.assert_frame_equal(pd.concat([c.contributions for c in chunks]), full.contributions)
    empty = explain(pipeline, x_score.head(0), FS.columns)
    assert empty.contributions.shape == (0, len(FS.columns)) and empty.base_value == pytest.approx(full.base_value)
    assert len(reasons(empty, x_score)) == 0


def test_summary_plot_renders_headless(explained, data):
    fig = summary_plot(explained["lightgbm"][1], data[-1])
    assert isinstance(fig, Figure)
    fig.savefig(io.BytesIO(), format="png")
    dummy_like = explained["lightgbm"][1]
    dummy_like = type(dummy_like)(dummy_like.contributions * 0, dummy_like.base_value)
    summary_plot(dummy_like, data[-1]).savefig(io.BytesIO(), format="png")


def test_mapping_is_read_from_the_transformers_not_guessed_from_names(data):
    """A target encoder, a two-column scaler and a passthrough remainder map back to their inputs."""
    x_train, y_train, *_, x_score = data
    x_train = x_train.assign(domain=[f"d{i % 300}" for i in range(len(x_train))], page_views_2=x_train.page_views * 2)
    x_score = x_score.assign(domain="d1", page_views_2=x_score.page_views * 2)
    features = [*FS.columns, "domain", "page_views_2"]
    preprocess = ColumnTransformer(
        [
            ("onehot", preprocessor(FS, CONFIG).transformers[1][1], ["job_title", "industry", "country"]),
            ("scaled", StandardScaler(), ["page_views", "page_views_2"]),
            ("target", TargetEncoder(cv=KFold(5, shuffle=True, random_state=0)), ["domain"]),
        ],
        remainder="passthrough",
        verbose_feature_names_out=True,
    )
    pipeline = Pipeline([("preprocess", preprocess), ("model", estimator("xgboost", y_train))])
    pipeline.fit(x_train[features], y_train)
    owners = source_features(pipeline.named_steps["preprocess"])
    assert set(owners) == set(features)
    assert owners.count("job_title") == len(TITLES) and owners.count("domain") == 1
    explanation = explain(pipeline, x_score, features)
    total = explanation.base_value + explanation.contributions.sum(axis=1).to_numpy()
    np.testing.assert_allclose(total, raw_margin(pipeline, x_score[features]), atol=1e-3)


def test_readable_values():
    assert [readable_value(v) for v in (12.0, 3.25, None, np.nan, pd.NA, "ceo", np.int64(4), True)] == [
        "12", "3.25", "missing", "missing", "missing", "ceo", "4", "true",
    ]
