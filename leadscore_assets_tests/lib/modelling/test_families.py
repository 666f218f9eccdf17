"""Model families (lib/model_families): one module per kind of candidate, and what the pipeline
asks of it. CatBoost is the family added on top of the first six: a CatBoost champion is chosen,
calibrated, explained and served like any other."""

import sys
import typing

import duckdb
import mlflow
import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from leadscore_assets.demo_data import linkedin
from leadscore_assets.lib.modelling.blend import margin
from leadscore_assets.lib.project.config import CandidateName, load_project_config
from leadscore_assets.lib.evaluation.metrics import selection_score
from leadscore_assets.lib.scoring.explain import REASON_COLUMNS, explain, reasons
from leadscore_assets.lib.features.frame import build_feature_frame
from leadscore_assets.lib.labels.label_rule import label_select_sql
from leadscore_assets.lib.modelling.families import FAMILIES, family, family_of, families_in
from leadscore_assets.lib.modelling.calibration import uncalibrated
from leadscore_assets.lib.scoring.registry import MODEL_REQUIREMENTS, model_requirements
from leadscore_assets.lib.scoring.serving import (
    SKLEARN_SUBMODEL,
    LeadScorer,
    date_references,
    days_since_columns,
    read_background,
    write_artifacts,
)
from leadscore_assets.lib.modelling.training import choose_candidate, finalise, fit_and_judge, selection_method
from leadscore_assets.lib.modelling.tuning import tune
from leadscore_assets.lib.validation import FILE, LINEAGE, ROW, validate
from leadscore_assets.testing.runs import DEFS_DIR, with_candidates

Y = np.array([0] * 30 + [1] * 10)


def test_every_family_is_a_candidate_name_and_finds_its_own_estimators():
    assert typing.get_args(CandidateName) == tuple(FAMILIES)
    assert len({f.simplicity for f in FAMILIES.values()}) == len(FAMILIES)  # a tie always has one simplest
    for name, fam in FAMILIES.items():
        assert fam.name == name and fam.installed()
        assert (fam.first_trial is not None) == fam.tunable
        found = family_of(fam.estimator(Y, seed=0))
        # logistic regression with or without splines is one estimator type: it explains, blends and logs the same
        assert (found.explainer, found.margin, found.requires) == (fam.explainer, fam.margin, fam.requires)
    assert family_of("not a model") is None


def test_a_familys_estimator_takes_threads_and_switches_its_weighting_off():
    catboost = family("catboost").estimator(Y, seed=7, params={"depth": 4}, threads=1)
    assert catboost.get_params() | {"depth": 4, "thread_count": 1, "random_seed": 7, "scale_pos_weight": 3.0} \
        == catboost.get_params()
    assert catboost.get_params()["allow_writing_files"] is False and catboost.get_params()["verbose"] is False
    assert family("catboost").estimator(Y, seed=7, weighted=False).get_params()["scale_pos_weight"] == 1.0
    assert family("lightgbm").estimator(Y, seed=7, weighted=False).class_weight is None
    assert family("xgboost").estimator(Y, seed=7, threads=1).n_jobs == 1
    assert family("logistic_regression").estimator(Y, seed=7, threads=1).n_jobs is None  # no threads to set


def test_a_candidate_whose_library_is_not_installed_fails_loading_saying_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "catboost", None)  # what Python sees when the package is absent
    yaml_text = (DEFS_DIR / "linkedin" / "defs.yaml").read_text()
    listed = "candidates: [dummy, logistic_regression, spline_logistic, random_forest, xgboost, lightgbm]"
    assert listed in yaml_text
    (tmp_path / "defs.yaml").write_text(yaml_text.replace(listed, "candidates: [dummy, catboost]"))
    with pytest.raises(ValueError, match=r"'catboost' needs the catboost package.*pip install 'leadscore\[catboost\]'"):
        load_project_config(tmp_path / "defs.yaml")


def test_a_catboost_search_starts_from_its_defaults():
    from leadscore_assets.testing.synthetic import X_TRAIN, Y_TRAIN, make_preprocess

    result = tune("catboost", X_TRAIN, Y_TRAIN, make_preprocess, n_trials=2, timeout_s=None, seed=3)
    first = result.trials.iloc[0]
    assert {k: first[f"params_{k}"] for k in family("catboost").first_trial} == family("catboost").first_trial
    assert len(result.trials) == 2 and result.best_value > 0.7


@pytest.fixture(scope="module")
def catboost_run(linkedin_config):
    """The LinkedIn demo with candidates [dummy, catboost] (no search) through the lib path the
    assets take: features as the features table gives them back, candidates judged, the best
    chosen and finalised (calibration, threshold). Judged on the validation split, which fits
    each candidate once (5-fold CV would fit it 11 times)."""
    config = with_candidates(linkedin_config, ["dummy", "catboost"], trials=0)
    config = config.model_copy(update={"models": config.models.model_copy(update={"selection": "holdout"})})
    raw, _ = linkedin.generate(rows=1500, seed=4)
    raw = raw.astype(str).replace({"None": "", "nan": ""})
    raw.insert(0, ROW, range(1, len(raw) + 1))
    raw[FILE] = "export.csv"
    valid = validate(raw, config).valid
    with duckdb.connect() as conn:
        conn.register("valid", valid)
        labels = conn.execute(label_select_sql(config, "valid")).df()
        built, fs = build_feature_frame(valid, labels, config)
        conn.register("built", built)
        frame = conn.execute("SELECT * FROM built").df()  # DuckDB gives a missing text back as None, as in a run
    method = selection_method(frame, config)
    judged = {name: fit_and_judge(name, frame, fs, config, method) for name in config.models.candidates}
    board = pd.DataFrame({"candidate": list(judged), "selection_score": [
        selection_score(j.metrics, config.models.selection_metric) for j in judged.values()]})
    chosen = choose_candidate(board)
    final = finalise(judged[chosen].candidate.pipeline, frame, fs, config, method)
    return config, raw, valid, frame, fs, chosen, final


def test_a_catboost_champion_explains_and_serves_as_its_batch_scores(catboost_run, tmp_path):
    config, raw, valid, frame, fs, chosen, final = catboost_run
    assert chosen == "catboost"
    assert [f.name for f in families_in(final.model)] == ["catboost"]  # found inside the calibration wrapper
    requirements = model_requirements(final.model)
    assert requirements[:len(MODEL_REQUIREMENTS)] == MODEL_REQUIREMENTS
    assert [r for r in requirements if r.startswith("catboost==")]

    # served: logged as the registry logs it (cloudpickle, its requirements), loaded by the served model
    mlflow.sklearn.save_model(final.model, str(tmp_path / "clf"), serialization_format="cloudpickle",
                              pip_requirements=requirements)
    references = date_references(config, {c: valid[c].max() for c in days_since_columns(config)})
    artifacts = write_artifacts(
        tmp_path / "serving", config=config, fs=fs, raw_cols=[c for c in raw.columns if c not in LINEAGE],
        pipeline=final.model, sklearn_model_dir=tmp_path / "clf", frame=frame,
        threshold=final.threshold.threshold, references=references)
    scorer = LeadScorer.load(artifacts["serving"], artifacts["background"], artifacts[SKLEARN_SUBMODEL])

    # the batch, as lead_scores scores it (the served model's background)
    x = frame[fs.columns]
    p = final.model.predict_proba(x)[:, 1]
    explanation = explain(uncalibrated(final.model), x, fs.columns,
                          background=read_background(artifacts["background"]), seed=config.models.seed)
    batch = reasons(explanation, x).assign(lead_id=frame.lead_id.astype(str).to_numpy(), probability=p)
    assert explanation.output == "log_odds"  # TreeSHAP on CatBoost: contributions add up to its margin
    total = explanation.base_value + explanation.contributions.sum(axis=1).to_numpy()
    np.testing.assert_allclose(total, margin(uncalibrated(final.model), x), atol=1e-6)
    assert batch.reason_1_up.notna().any() and batch.reason_1_down.notna().any()

    leads = valid.sample(150, random_state=0)
    records = raw.set_index(ROW).loc[leads[ROW]].reset_index().drop(columns=[ROW, FILE])
    expected = batch.set_index("lead_id").loc[leads[config.id_column].astype(str).to_numpy()]
    for answer in (scorer.score(records), pd.concat([scorer.score(records.iloc[[i]]) for i in range(5)])):
        want = expected.iloc[:len(answer)]
        assert answer.error.isna().all(), answer.error.dropna().head().tolist()
        assert answer.lead_id.astype(str).tolist() == want.index.tolist()
        np.testing.assert_allclose(answer.probability.astype(float), want.probability, rtol=0, atol=1e-9)
        for column in REASON_COLUMNS:
            assert answer[column].fillna("-").tolist() == want[column].fillna("-").tolist(), column


def test_catboost_blends_in_log_odds(catboost_run):
    """Its margin is the log-odds its probabilities come from, so it may join the blend."""
    *_, frame, fs, _, final = catboost_run
    model = uncalibrated(final.model)
    x = frame[fs.columns].head(200)
    np.testing.assert_allclose(expit(margin(model, x)), model.predict_proba(x)[:, 1], atol=1e-12)


def test_logistic_strength_on_many_rows_is_chosen_on_a_stratified_sample(monkeypatch):
    """Above CHOOSE_C_ROWS the L2 strength comes from a stratified sample of that many rows, the
    one an explicit sample gives, while every row still reaches the model's own fit."""
    from sklearn.compose import ColumnTransformer
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    from leadscore_assets.lib.modelling.families import logistic_regression

    rng = np.random.default_rng(5)
    x = pd.DataFrame({"a": rng.normal(size=900), "b": rng.normal(size=900)})
    y = (x.a + 0.3 * x.b + rng.normal(size=900) > 1.2).astype(int).to_numpy()
    scale = lambda: ColumnTransformer([("num", StandardScaler(), ["a", "b"])])  # noqa: E731
    monkeypatch.setattr(logistic_regression, "CHOOSE_C_ROWS", 300)
    keep = np.sort(train_test_split(np.arange(900), train_size=300, stratify=y, random_state=3)[0])
    monkeypatch.setattr(logistic_regression, "CHOOSE_C_ROWS", 10_000)
    on_sample = logistic_regression.choose_c(x.iloc[keep], y[keep], scale(), seed=3)
    on_all = logistic_regression.choose_c(x, y, scale(), seed=3)
    monkeypatch.setattr(logistic_regression, "CHOOSE_C_ROWS", 300)
    assert logistic_regression.choose_c(x, y, scale(), seed=3) == on_sample
    assert y[keep].mean() == pytest.approx(y.mean(), abs=0.01)
    assert on_all != on_sample  # so the first assertion tells the sample from every row
