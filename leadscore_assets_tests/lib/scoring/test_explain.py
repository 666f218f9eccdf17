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

from leadscore_assets.lib.modelling.blend import blend_pipeline
from leadscore_assets.lib.scoring.explain import (
    Explanation,
    explain,
    global_importance,
    readable_value,
    reasons,
    source_features,
    summary_plot,
)
from leadscore_assets.lib.features.frame import FeatureSet, preprocessor
from leadscore_assets.lib.modelling.families import family

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
    assert up_reasons.eq("Job title is ceo (raises the score)").any(axis=1).all()
    # and for everyone else the job title does not claim to raise it as a ceo would
    assert not table.loc[~ceo, REASON_COLUMNS].isin(["Job title is ceo (raises the score)"]).any().any()


@pytest.mark.parametrize("name", MODELS)
def test_reasons_point_the_way_shap_does_and_name_source_features(explained, data, name):
    _, explanation = explained[name]
    table = reasons(explanation, data[-1])
    assert table.index.equals(explanation.contributions.index)
    for row_id, row in table.iterrows():
        for direction in ("up", "down"):
            items = json.loads(row[f"reasons_{direction}"])
            assert row[f"reasons_{direction}"] == json.dumps(items)  # json.dumps' own text, byte for byte
            assert len(items) <= 3
            for item in items:
                assert item["feature"] in FS.columns and item["direction"] == direction
                assert item["features"] == [item["feature"]]  # no date here: each reason is one feature
                shap_value = explanation.contributions.at[row_id, item["feature"]]
                assert np.sign(item["contribution"]) == np.sign(shap_value) == (1 if direction == "up" else -1)
            magnitudes = [abs(item["contribution"]) for item in items]
            assert magnitudes == sorted(magnitudes, reverse=True)
    texts = table[REASON_COLUMNS].stack().dropna()
    labels = {c.replace("_", " ").capitalize() for c in FS.columns}
    assert texts.str.extract(r"^(.+?) (?:is .+|not given) \((?:raises|lowers) the score\)$")[0].isin(labels).all()
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
    assert f"Company size is {int(x_score.company_size.max())} (lowers the score)" in said
    values = [
        item["value"]
        for cell in table.loc[x_score.company_size.isna(), ["reasons_up", "reasons_down"]].to_numpy().ravel()
        for item in json.loads(cell)
        if item["feature"] == "company_size"
    ]
    assert values and set(values) == {"missing"}
    assert not table[REASON_COLUMNS].stack().str.contains(" is (?:nan|None|<NA>|missing) ").any()
    missing_said = table.loc[x_score.company_size.isna(), REASON_COLUMNS].stack()
    assert missing_said.str.startswith("Company size not given (").any()


def test_reasons_do_not_flip_on_float_noise():
    """Two features with the same contribution up to rounding noise (as another BLAS thread count
    gives) rank in column order both ways, so the reasons a lead gets do not depend on the machine."""
    rows = pd.DataFrame({"a": ["x", "x"], "b": ["y", "y"]}, index=[0, 1])
    tied = pd.DataFrame({"a": [0.3, 0.3], "b": [0.3 + 4e-17, 0.3 - 4e-17]}, index=[0, 1])
    table = reasons(Explanation(tied, base_value=0.0), rows, k=1)
    assert table.reason_1_up.tolist() == ["A is x (raises the score)"] * 2


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
    assert [readable_value(v) for v in (12.0, 3.25, None, np.nan, pd.NA, "ceo", np.int64(4), True, 48213.4)] == [
        "12", "3.25", "missing", "missing", "missing", "ceo", "4", "true", "48213",
    ]


# -- wording for a seller: a date's parts as one reason, the export's own columns kept out -------
DATED = pd.DataFrame({"job_title": ["ceo", "intern"], "created_at_hour": [14.0, np.nan],
                      "created_at_weekday": ["tuesday", "sunday"], "has_phone": [1.0, 0.0], "campaign_name": ["q3 push", "q3 push"]},
                     index=[10, 11])


def _dated_explanation(**contributions) -> Explanation:
    frame = pd.DataFrame({c: [0.0, 0.0] for c in DATED.columns}, index=DATED.index)
    for column, values in contributions.items():
        frame[column] = values
    return Explanation(frame, base_value=0.0)


def test_the_parts_of_one_date_are_one_reason_with_their_contributions_summed():
    explanation = _dated_explanation(job_title=[0.30, -0.2], created_at_weekday=[0.20, -0.25],
                                     created_at_hour=[0.15, 0.05], has_phone=[0.01, -0.4])
    table = reasons(explanation, DATED)
    # 0.20 + 0.15 outweighs the job title's 0.30: the date is the first reason, said once
    assert table.loc[10, ["reason_1_up", "reason_2_up", "reason_3_up"]].tolist() == [
        "Created at: Tuesday, 14:00 (raises the score)", "Job title is ceo (raises the score)",
        "Phone given (raises the score)"]
    [date] = [r for r in json.loads(table.at[10, "reasons_up"]) if r["feature"] == "created_at"]
    # read as a date is read (the weekday first), whatever order the model holds the parts in
    assert date == {"feature": "created_at", "features": ["created_at_hour", "created_at_weekday"],
                    "value": "Tuesday, 14:00", "direction": "up", "contribution": 0.35}
    # a part lowering the score while the date as a whole does too: one reason down, no hour alone;
    # a missing hour is left out of the words
    assert table.loc[11, ["reason_1_down", "reason_2_down", "reason_3_down"]].tolist() == [
        "No phone (lowers the score)", "Job title is intern (lowers the score)",
        "Created at: Sunday (lowers the score)"]
    assert not table[REASON_COLUMNS].stack().str.contains("created_at|_hour|_weekday").any()


def test_columns_the_yaml_keeps_out_of_reasons_are_never_offered_and_others_move_up(linkedin_config):
    """`features.not_reasons` in the project YAML, written as the export names the column."""
    from leadscore_assets.lib.project.config import ProjectConfig
    from leadscore_assets.lib.scoring.explain import ReasonWording

    attrs = linkedin_config.model_dump(mode="json")
    attrs["features"]["not_reasons"] = ["createdAt", "campaign_name"]
    config = ProjectConfig.model_validate(attrs)
    assert config.features.not_reasons == ["created_at", "campaign_name"]
    explanation = _dated_explanation(job_title=[0.30, -0.2], created_at_weekday=[0.20, -0.25],
                                     created_at_hour=[0.15, 0.05], campaign_name=[0.5, 0.5], has_phone=[0.01, -0.4])
    kept_out = reasons(explanation, DATED, wording=ReasonWording.of(config))
    assert kept_out.loc[10, ["reason_1_up", "reason_2_up", "reason_3_up"]].tolist() == [
        "Job title is ceo (raises the score)", "Phone given (raises the score)", None]
    said = kept_out[REASON_COLUMNS].stack()
    assert not said.str.contains("Created at|Campaign name").any()
    assert not any(r["feature"] in ("created_at", "campaign_name")
                   for cell in kept_out[["reasons_up", "reasons_down"]].to_numpy().ravel() for r in json.loads(cell))
    # without the option, the project's own dates group exactly as the feature names say
    plain = ReasonWording.of(linkedin_config)
    assert not plain.not_reasons
    assert plain.date_of == ReasonWording.from_names(list(DATED.columns)).date_of == {
        "created_at_hour": "created_at", "created_at_weekday": "created_at"}
    assert reasons(explanation, DATED, wording=plain).equals(reasons(explanation, DATED))


def test_a_personal_data_column_kept_out_takes_its_presence_flag_with_it(linkedin_config):
    from leadscore_assets.lib.scoring.explain import ReasonWording

    config = linkedin_config.model_copy(update={"features": linkedin_config.features.model_copy(
        update={"not_reasons": ["phone"]})})
    assert "has_phone" in ReasonWording.of(config).not_reasons


@pytest.mark.parametrize("part, value, words", [
    ("weekday", "friday", "Friday"), ("month", "march", "March"), ("quarter", "q2", "Q2"), ("hour", 9.0, "09:00"),
    ("day_of_year", 45.0, "day 45 of the year"), ("weekend", 1.0, "at a weekend"), ("weekend", 0.0, "on a weekday"),
    ("days_since", 0.2, "today"), ("days_since", 1.2, "1 day ago"), ("days_since", 12.4, "12 days ago"),
    ("days_since", -3.0, "in 3 days"), ("days_since", np.nan, None),
])
def test_date_parts_read_as_a_seller_reads_a_date(part, value, words):
    rows = pd.DataFrame({f"signup_{part}": [value]})
    explanation = Explanation(pd.DataFrame({f"signup_{part}": [0.5]}), base_value=0.0)
    said = reasons(explanation, rows, k=1).reason_1_up.iloc[0]
    assert said == (f"Signup: {words} (raises the score)" if words else "Signup not given (raises the score)")
