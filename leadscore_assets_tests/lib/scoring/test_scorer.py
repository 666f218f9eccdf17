"""The one scorer: what `lead_scores` and the served model answer for a feature frame, whole or in
batches, and the batched write of the ranking."""

from types import SimpleNamespace

import duckdb
import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import Pipeline

from leadscore_assets.assets.tables import Table, TableContractError
from leadscore_assets.lib.evaluation.metrics import deciles
from leadscore_assets.lib.scoring.explain import REASON_COLUMNS, ReasonWording, explain, reasons
from leadscore_assets.lib.features.frame import FeatureSet, preprocessor
from leadscore_assets.lib.modelling.families import family
from leadscore_assets.lib.scoring.scorer import Scorer, decile_cut_points, deciles_from_cut_points
from leadscore_assets.lib.modelling.thresholds import grades

FS = FeatureSet(numeric=["company_size", "page_views"], categorical=["job_title", "country"])
CONFIG = SimpleNamespace(features=SimpleNamespace(categorical_min_frequency=5, categorical_max_levels=30))


def leads(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame({
        "company_size": np.round(rng.lognormal(4, 1.5, n)),
        "page_views": rng.poisson(3, n).astype(float),
        "job_title": rng.choice(["ceo", "engineer", "analyst", "intern"], n).astype(object),
        "country": rng.choice(["de", "fr", "us"], n).astype(object),
    })
    x.loc[rng.random(n) < 0.1, "company_size"] = np.nan
    x.loc[rng.random(n) < 0.1, "country"] = None
    logit = -1 + 2.5 * (x.job_title == "ceo") - 0.8 * (np.log1p(x.company_size.fillna(50)) - 4) + 0.2 * x.page_views
    return x, (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int).to_numpy()


@pytest.fixture(scope="module")
def champion():
    """A calibrated XGBoost pipeline as registered (calibration around the whole pipeline), with a
    revenue model, and the rows to score (an index that is not 0..n-1)."""
    x, y = leads(3000, 0)
    x_cal, y_cal = leads(800, 1)
    pipeline = Pipeline([("preprocess", preprocessor(FS, CONFIG)),
                         ("model", family("xgboost").estimator(y, seed=0, threads=1))]).fit(x, y)
    calibrated = CalibratedClassifierCV(FrozenEstimator(pipeline), method="sigmoid").fit(x_cal, y_cal)
    encoded = pipeline.named_steps["preprocess"]
    revenue = Pipeline([("preprocess", encoded), ("model", LinearRegression())]).fit(x, 100 + 10 * x.page_views)
    score, _ = leads(700, 2)
    score.index = np.arange(1000, 1700)[::-1]
    p_all = calibrated.predict_proba(score)[:, 1]
    return SimpleNamespace(pipeline=pipeline, calibrated=calibrated, revenue=revenue, x=score, background=x,
                           cut_points=decile_cut_points(p_all))


def scorer(champion, revenue=True) -> Scorer:
    return Scorer(pipeline=champion.calibrated, features=FS.columns, threshold=0.3, cut_points=champion.cut_points,
                  background=champion.background, seed=7, wording=ReasonWording(),
                  revenue_model=champion.revenue if revenue else None)


def test_the_answer_is_the_champions_probability_decile_grade_contact_revenue_and_reasons(champion):
    answers = scorer(champion).score(champion.x)
    assert answers.index.equals(champion.x.index)
    assert list(answers.columns) == ["probability", "decile", "grade", "contact", "expected_order_value",
                                     "expected_revenue", *REASON_COLUMNS, "reasons_up", "reasons_down"]
    p = champion.calibrated.predict_proba(champion.x)[:, 1]
    np.testing.assert_array_equal(answers.probability, p)
    # cut points of this very population: the population's own deciles
    assert (answers.decile.to_numpy() == deciles(p)).mean() > 0.99
    assert answers.decile.tolist() == deciles_from_cut_points(p, champion.cut_points).tolist()
    assert answers.grade.tolist() == list(grades(p, 0.3)) and answers.contact.tolist() == list(p >= 0.3)
    value = champion.revenue.predict(champion.x)
    np.testing.assert_allclose(answers.expected_order_value, value)
    np.testing.assert_allclose(answers.expected_revenue, p * value)
    # reasons explain the uncalibrated pipeline inside the calibration
    why = reasons(explain(champion.pipeline, champion.x.reset_index(drop=True), FS.columns,
                          background=champion.background, seed=7), champion.x.reset_index(drop=True),
                  wording=ReasonWording())
    for column in [*REASON_COLUMNS, "reasons_up", "reasons_down"]:
        assert answers[column].tolist() == why[column].tolist(), column
    assert answers.reason_1_up.notna().any() and answers.reason_1_down.notna().any()


def test_batches_answer_as_the_whole_and_without_reasons_only_the_reasons_are_left_out(champion):
    s = scorer(champion, revenue=False)
    whole = s.score(champion.x)
    frames = [champion.x.iloc[:333].assign(lead_id="a"), champion.x.iloc[333:].assign(lead_id="b")]
    batched = pd.concat(list(s.score_batches(frames, rows=100)))
    assert list(batched.columns) == ["lead_id", *whole.columns]
    pd.testing.assert_frame_equal(batched.drop(columns="lead_id"), whole)
    assert "expected_order_value" not in whole
    bare = s.score(champion.x.iloc[:50], with_reasons=False)
    pd.testing.assert_frame_equal(bare.drop(columns=[*REASON_COLUMNS, "reasons_up", "reasons_down"]),
                                  whole.iloc[:50].drop(columns=[*REASON_COLUMNS, "reasons_up", "reasons_down"]))
    assert bare[REASON_COLUMNS].isna().all(axis=None)


def test_batches_scored_in_two_processes_answer_as_in_one_in_the_same_order(champion, tmp_path, monkeypatch):
    """Spread over worker processes (the many-leads path of lead_scores), the pieces come back in
    the order they went in, each answered exactly as the calling process answers it; the file
    the workers read the scorer from is gone afterwards."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    s = scorer(champion)
    frames = [champion.x.iloc[:333].assign(lead_id="a"), champion.x.iloc[333:].assign(lead_id="b")]
    here = pd.concat(list(s.score_batches(frames, rows=100)))
    spread = list(s.score_batches(frames, rows=100, workers=2))
    assert [len(piece) for piece in spread] == [100, 100, 100, 33, 100, 100, 100, 67]
    pd.testing.assert_frame_equal(pd.concat(spread), here)
    assert list(tmp_path.iterdir()) == []


def test_many_leads_are_scored_in_two_processes_few_in_one(monkeypatch):
    from leadscore_assets.lib.scoring import workers

    monkeypatch.setattr(workers.os, "cpu_count", lambda: 2)
    assert workers.scoring_workers(workers.PARALLEL_FROM_LEADS - 1) == 1
    assert workers.scoring_workers(workers.PARALLEL_FROM_LEADS) == 2
    monkeypatch.setattr(workers.os, "cpu_count", lambda: 1)
    assert workers.scoring_workers(10 * workers.PARALLEL_FROM_LEADS) == 1


def test_no_leads_give_no_answers_with_every_column(champion):
    s = scorer(champion)
    empty = s.score(champion.x.iloc[:0])
    assert len(empty) == 0 and list(empty.columns) == s.columns
    [batch] = list(s.score_batches([champion.x.iloc[:0].assign(lead_id="")]))
    assert len(batch) == 0 and list(batch.columns) == ["lead_id", *s.columns]


def test_of_takes_the_seed_and_reason_wording_from_the_project(champion, linkedin_config):
    s = Scorer.of(linkedin_config, FS.columns, champion.calibrated, 0.4, champion.cut_points, None)
    assert s.seed == linkedin_config.models.seed and s.wording == ReasonWording.of(linkedin_config)
    assert s.threshold == 0.4 and s.revenue_model is None


def test_written_in_batches_the_table_is_ranked_with_ties_in_arrival_order():
    table = Table("ranked", "test", ("lead_id", "probability"))
    config = SimpleNamespace(name="p")
    conn = duckdb.connect()
    frames = [pd.DataFrame({"lead_id": ["a", "b", "c"], "probability": [0.2, 0.9, 0.5], "note": [None, None, None]}),
              pd.DataFrame({"lead_id": ["d", "e"], "probability": [0.5, 0.9], "note": ["x", None]})]
    assert table.write_batches(conn, config, iter(frames), order_by="probability DESC") == 5
    assert conn.execute("SELECT lead_id FROM p.ranked").fetchall() == [("b",), ("e",), ("c",), ("d",), ("a",)]
    assert conn.execute("SELECT note FROM p.ranked WHERE lead_id = 'd'").fetchall() == [("x",)]
    with pytest.raises(TableContractError):
        table.write_batches(conn, config, iter([frames[0], frames[1].drop(columns="probability")]))
    with pytest.raises(ValueError, match="no frame"):
        table.write_batches(conn, config, iter([]))


def test_a_blend_champion_encodes_and_predicts_each_row_once_for_its_probability_and_reasons(champion):
    """A blend's members (sharing one fitted preprocessing, as candidates judged together do)
    encode the rows once and each boosted member predicts its margin once for the whole answer,
    the reasons' additivity check included; the answer is, bit for bit, the probability and the
    reasons computed apart."""
    from leadscore_assets.lib.modelling.blend import fitted_blend_pipeline
    from leadscore_assets.lib.scoring import tree_shap

    x, y = leads(3000, 0)
    x_cal, y_cal = leads(800, 1)
    shared = preprocessor(FS, CONFIG).fit(x, y)
    members = {name: Pipeline([("preprocess", shared), ("model", family(name).estimator(y, seed=0, threads=1).fit(
        shared.transform(x), y))]) for name in ("logistic_regression", "xgboost", "lightgbm")}
    blend = fitted_blend_pipeline(members, {"logistic_regression": 0.2, "xgboost": 0.5, "lightgbm": 0.3}, FS.columns, x)
    calibrated = CalibratedClassifierCV(FrozenEstimator(blend), method="sigmoid").fit(x_cal, y_cal)
    s = Scorer(pipeline=calibrated, features=FS.columns, threshold=0.3, cut_points=champion.cut_points,
               background=champion.background, seed=7, wording=ReasonWording())
    rows = champion.x.reset_index(drop=True)
    p = calibrated.predict_proba(rows)[:, 1]
    why = reasons(explain(blend, rows, FS.columns, background=champion.background, seed=7), rows,
                  wording=ReasonWording())

    encodings, margins = [], []
    transform, margin = shared.transform, tree_shap._Model.margin
    shared.transform = lambda frame: encodings.append(len(frame)) or transform(frame)
    tree_shap._Model.margin = lambda read, encoded: margins.append(read.kind) or margin(read, encoded)
    try:
        answers = s.score(champion.x)
    finally:
        del shared.transform
        tree_shap._Model.margin = margin
    assert encodings.count(len(rows)) == 1  # (the logistic member's explainer also encodes its background)
    assert margins == []  # both boosters' checks took the margin their probability already gave
    np.testing.assert_array_equal(answers.probability, p)
    for column in [*REASON_COLUMNS, "reasons_up", "reasons_down"]:
        assert answers[column].tolist() == why[column].tolist(), column
    assert answers.reason_1_up.notna().any()
    # outside Scorer.score, nothing is kept between calls
    again = []
    shared.transform = lambda frame: again.append(len(frame)) or transform(frame)
    try:
        calibrated.predict_proba(rows)
        calibrated.predict_proba(rows)
    finally:
        del shared.transform
    assert again == [len(rows)] * 2
