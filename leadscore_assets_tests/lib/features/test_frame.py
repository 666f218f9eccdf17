import numpy as np
import pandas as pd

import pytest

from leadscore_assets.lib.features.frame import (
    MIN_CLASS_ROWS,
    assign_splits,
    build_feature_frame,
    feature_set,
    preprocessor,
    short_splits,
    split_minimums,
)


def test_feature_set_types_and_expands_dates(linkedin_config):
    fs = feature_set(linkedin_config)
    assert "company_size" in fs.numeric and "created_at_hour" in fs.numeric
    assert {"job_title", "created_at_weekday"} <= set(fs.categorical)
    assert "created_at" not in fs.columns


def test_stratified_split_when_no_time_column(linkedin_config):
    cfg = linkedin_config.model_copy(update={"split": linkedin_config.split.model_copy(update={"time_column": None})})
    label = np.array([1.0, 0.0] * 50 + [np.nan] * 10)
    split = assign_splits(label, None, cfg)
    assert (split[-10:] == "unlabelled").all()
    for part in ("train", "validation", "test"):
        assert label[split == part].mean() == 0.5


def test_encoders_are_fitted_on_what_they_are_given_only(linkedin_config):
    fs = feature_set(linkedin_config)
    frame = pd.DataFrame({c: ["a"] * 10 if c in fs.categorical else np.arange(10.0) for c in fs.columns})
    enc = preprocessor(fs, linkedin_config).fit(frame)
    unseen = frame.head(1).assign(job_title="never seen")
    assert np.isfinite(enc.transform(unseen)).all()


def test_build_feature_frame_drops_personal_data(linkedin_config):
    v = pd.DataFrame({c: [None] for c in linkedin_config.columns}).assign(lead_id="x", created_at=pd.Timestamp("2026-01-01"))
    out, _ = build_feature_frame(v, pd.DataFrame({"lead_id": ["x"], "label": [1]}), linkedin_config)
    assert not set(out.columns) & set(linkedin_config.personal_data)


def test_splines_let_a_linear_model_follow_a_bump(linkedin_config):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import Pipeline

    from leadscore_assets.lib.features.frame import FeatureSet

    rng = np.random.default_rng(0)
    size = 10 ** rng.uniform(0, 4, 6000)
    y = (rng.random(6000) < 1 / (1 + np.exp(-(1 - 1.5 * (np.log10(size) - 2) ** 2)))).astype(int)
    x = pd.DataFrame({"company_size": size, "job_title": "ceo"})
    fs = FeatureSet(numeric=["company_size"], categorical=["job_title"])

    def auc(splines: bool) -> float:
        model = Pipeline([("preprocess", preprocessor(fs, linkedin_config, splines)), ("model", LogisticRegression())])
        model.fit(x[:4000], y[:4000])
        return roc_auc_score(y[4000:], model.predict_proba(x[4000:])[:, 1])

    assert auc(True) > auc(False) + 0.1
    unseen_missing = x[:5].assign(company_size=np.nan)  # no missing value at fit time
    fitted = preprocessor(fs, linkedin_config, True).fit(x[:4000], y[:4000])
    assert np.isfinite(fitted.transform(unseen_missing)).all()


def _tiny_validated(config):
    rows = []
    for i, (title, phone) in enumerate([("CEO", "+33 1"), ("ceo ", None), (" Ceo", "+33 2"), ("cto", None)] * 5):
        rows.append({"lead_id": f"l{i}", "job_title": title, "phone": phone, "company_size": 10.0,
                     "created_at": pd.Timestamp("2026-01-05 08:00") + pd.Timedelta(hours=i)})
    validated = pd.DataFrame(rows)
    for col in config.columns:
        if col not in validated:
            validated[col] = None
    labels = pd.DataFrame({"lead_id": validated.lead_id, "label": [1.0, 0.0] * 10})
    return validated, labels


def test_category_levels_ignore_case_and_spacing(linkedin_config):
    frame, _ = build_feature_frame(*_tiny_validated(linkedin_config), linkedin_config)
    assert set(frame.job_title) == {"ceo", "cto"}


def test_personal_columns_leave_only_a_presence_flag(linkedin_config):
    frame, fs = build_feature_frame(*_tiny_validated(linkedin_config), linkedin_config)
    assert "phone" not in frame.columns and "has_phone" in fs.numeric
    assert frame.has_phone.tolist()[:4] == [1.0, 0.0, 1.0, 0.0]
    off = linkedin_config.model_copy(update={"features": linkedin_config.features.model_copy(update={"presence_flags": False})})
    assert "has_phone" not in build_feature_frame(*_tiny_validated(off), off)[0].columns


def test_feedback_is_learnt_from_and_half_the_newest_batch_is_held_out(linkedin_config):
    label = np.array([1.0, 0.0] * 60 + [np.nan] * 10)
    newest = np.zeros(len(label), bool)
    newest[:40] = True  # the newest CRM file: 40 outcomes
    older = np.zeros(len(label), bool)
    older[40:60] = True  # an earlier file
    split = assign_splits(label, None, linkedin_config, newest, older)
    held = split[:40] == "test"
    assert held.sum() == 20 and label[:40][held].mean() == 0.5  # stratified half, judged on
    assert (split[:40][~held] == "train").all() and (split[40:60] == "train").all()  # the rest learnt from
    assert set(split[60:120]) == {"train", "validation", "test"} and (split[-10:] == "unlabelled").all()


def test_feedback_that_labels_every_lead_leaves_splits_short_and_says_by_how_much(linkedin_config):
    """Every lead has a CRM outcome: all of it is trained on but half the newest batch (here 2
    leads of 4, one of each), so validation is empty and test holds one of each class."""
    label = np.array([1.0, 0.0] * 100)
    newest = np.zeros(200, bool)
    newest[:4] = True
    split = assign_splits(label, None, linkedin_config, newest_feedback=newest, feedback=np.ones(200, bool))
    minimums = split_minimums(linkedin_config)
    assert minimums == {"train": max(MIN_CLASS_ROWS, linkedin_config.models.cv_folds,
                                     linkedin_config.models.search.cv_folds),
                        "validation": MIN_CLASS_ROWS, "test": MIN_CLASS_ROWS}
    short = short_splits(pd.Series(label), pd.Series(split), minimums)
    assert short == [
        f"validation has 0 positives (needs {MIN_CLASS_ROWS}, {MIN_CLASS_ROWS} short)",
        f"validation has 0 negatives (needs {MIN_CLASS_ROWS}, {MIN_CLASS_ROWS} short)",
        f"test has 1 positives (needs {MIN_CLASS_ROWS}, {MIN_CLASS_ROWS - 1} short)",
        f"test has 1 negatives (needs {MIN_CLASS_ROWS}, {MIN_CLASS_ROWS - 1} short)",
    ]


def test_enough_labelled_leads_leave_no_split_short(linkedin_config):
    label = np.array([1.0, 0.0] * 100)
    time = np.arange(200).astype("datetime64[D]")
    split = assign_splits(label, time, linkedin_config)
    assert short_splits(pd.Series(label), pd.Series(split), split_minimums(linkedin_config)) == []


@pytest.mark.parametrize("labels", [[1.0], [1.0, 0.0], [1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 0.0, 0.0]])
def test_a_handful_of_labelled_leads_is_split_and_reported_not_a_crash(linkedin_config, labels):
    """Too few for a stratified split: sklearn would refuse; the features are still written and
    the check names what is short."""
    cfg = linkedin_config.model_copy(update={"split": linkedin_config.split.model_copy(update={"time_column": None})})
    label = np.array(labels)
    split = assign_splits(label, None, cfg)
    assert set(split) <= {"train", "validation", "test"} and len(split) == len(label)
    assert short_splits(pd.Series(label), pd.Series(split), split_minimums(cfg))


def test_feature_building_and_model_choice_raise_no_future_warning(linkedin_config):
    """Issue #24: the demo's log held 165 TargetEncoder and 16 LogisticRegressionCV FutureWarnings
    from our own code. Every encoder (target encoding included), the leakage check's cross-fitted
    encoding and the logistic model's inner CV run here with FutureWarning as an error."""
    import warnings

    from leadscore_assets.lib.features.frame import FeatureSet
    from leadscore_assets.lib.features.leakage import single_feature_separation
    from leadscore_assets.lib.modelling.families import logistic_regression

    rng = np.random.default_rng(0)
    n = 300
    x = pd.DataFrame({"company_size": rng.normal(size=n), "job_title": rng.choice(["ceo", "cto", "intern"], n),
                      "domain": [f"d{i % 40}" for i in range(n)]})
    y = ((x["company_size"] + (x["job_title"] == "ceo")) + rng.normal(size=n) > 0.5).astype(int).to_numpy()
    fs = FeatureSet(numeric=["company_size"], categorical=["job_title"], target_encoded=["domain"])
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        encoded = preprocessor(fs, linkedin_config).fit_transform(x, y)
        separation = single_feature_separation(x, y, fs, seed=1)
        chosen = logistic_regression.choose_c(x, y, preprocessor(fs, linkedin_config), seed=1)
    assert np.isfinite(encoded).all()
    assert set(separation["feature"]) == {"company_size", "job_title", "domain"}
    assert chosen["C"] in logistic_regression.C_GRID
