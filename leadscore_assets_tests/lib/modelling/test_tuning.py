"""Optuna tuning on small synthetic leads through the real preprocessor: real studies, few trials."""

import io
import time

import matplotlib.pyplot as plt
import numpy as np
import optuna
import pandas as pd
import pytest
from imblearn.over_sampling import SMOTE
from imblearn.pipeline import Pipeline as ResamplingPipeline
from matplotlib.figure import Figure
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline

from leadscore_assets.lib.modelling import tuning as tuning
from leadscore_assets.lib.modelling.families import FAMILIES, family
from leadscore_assets.lib.modelling.tuning import TuningResult, build_model, history_plots, tune
from leadscore_assets.testing.synthetic import X_HELDOUT, X_TRAIN, Y_HELDOUT, Y_TRAIN, make_preprocess

SEED = 3


def run(name: str, **kwargs) -> TuningResult:
    options = {"n_trials": 4, "timeout_s": None, "seed": SEED, **kwargs}
    return tune(name, X_TRAIN, Y_TRAIN, make_preprocess, **options)


@pytest.fixture(scope="module")
def xgboost_result() -> TuningResult:
    return run("xgboost")


def test_search_spaces_stay_in_their_ranges():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(30):
        xgb = family("xgboost").search_space(study.ask())
        assert 100 <= xgb["n_estimators"] <= 600 and 0.01 <= xgb["learning_rate"] <= 0.2
        lgbm = family("lightgbm").search_space(study.ask())
        assert 4 <= lgbm["num_leaves"] <= 64 and 5 <= lgbm["min_child_samples"] <= 100
    for untuned in ("random_forest", "dummy", "logistic_regression", "spline_logistic"):  # C comes from inner CV
        assert not family(untuned).tunable and family(untuned).search_space is None
    with pytest.raises(ValueError, match="unknown candidate"):
        family("svm")


@pytest.mark.parametrize("name", [n for n, f in FAMILIES.items() if f.tunable])
def test_the_first_trial_is_the_familys_defaults_inside_its_search_space(name):
    """Every search starts from the fixed defaults: the first trial names each searched parameter,
    inside its range, and builds the estimator the family builds untuned (regularisation that
    defaults to 0 sits at the range's floor)."""
    fam = family(name)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.enqueue_trial(fam.first_trial)
    trial = study.ask()
    assert fam.search_space(trial) == fam.first_trial
    assert all(d.low <= fam.first_trial[k] <= d.high for k, d in trial.distributions.items())
    defaults = fam.estimator(Y_TRAIN, SEED).get_params()
    set_by_make = {k: v for k, v in fam.first_trial.items() if defaults.get(k) not in (None, 0)}
    assert set_by_make == {k: defaults[k] for k in set_by_make}


def test_imbalance_strategies_shape_the_model():
    y = np.array([1] * 20 + [0] * 80)
    weighted = build_model("xgboost", {"max_depth": 4}, make_preprocess(), y, SEED)
    assert isinstance(weighted, Pipeline) and weighted.named_steps["model"].get_params()["scale_pos_weight"] == 4.0
    assert weighted.named_steps["model"].get_params()["max_depth"] == 4
    resampled = build_model("lightgbm", {}, make_preprocess(), y, SEED, "smote")
    assert isinstance(resampled, ResamplingPipeline) and list(resampled.named_steps) == ["preprocess", "smote", "model"]
    assert resampled.named_steps["model"].class_weight is None
    plain = build_model("logistic_regression", {}, make_preprocess(), y, SEED, "none")
    assert isinstance(plain, Pipeline) and plain.named_steps["model"].class_weight is None
    with pytest.raises(ValueError, match="imbalance"):
        build_model("xgboost", {}, make_preprocess(), y, SEED, "undersample")


def test_refuses_untuned_models_and_too_few_positives():
    for untuned in ("random_forest", "logistic_regression"):
        with pytest.raises(ValueError, match="not tuned"):
            run(untuned)
    with pytest.raises(ValueError, match="at least 3 rows each"):
        tune("lightgbm", X_TRAIN, np.r_[1, 1, np.zeros(598, int)], make_preprocess,
             n_trials=1, timeout_s=None, seed=SEED)


def test_same_seed_gives_the_same_search(xgboost_result):
    again = run("xgboost")
    assert again.best_params == xgboost_result.best_params
    assert again.best_value == xgboost_result.best_value
    pd.testing.assert_frame_equal(again.trials.drop(columns="duration_s"), xgboost_result.trials.drop(columns="duration_s"))
    assert list(xgboost_result.trials.columns[:4]) == ["number", "value", "state", "folds_scored"]
    assert xgboost_result.trials.columns[-1] == "duration_s"


def test_tuned_xgboost_beats_bad_parameters_on_heldout_rows(xgboost_result):
    def heldout_auc(params: dict) -> float:
        model = build_model("xgboost", params, make_preprocess(), Y_TRAIN, SEED, n_jobs=1)
        model.fit(X_TRAIN, Y_TRAIN)
        return roc_auc_score(Y_HELDOUT, model.predict_proba(X_HELDOUT)[:, 1])

    overfitting = {  # deep unregularised trees at a high learning rate memorise 400-row folds
        "n_estimators": 600, "learning_rate": 0.5, "max_depth": 12, "min_child_weight": 0.01,
        "subsample": 1.0, "colsample_bytree": 1.0, "reg_lambda": 0.0,
    }
    tuned_auc, bad_auc = heldout_auc(xgboost_result.best_params), heldout_auc(overfitting)
    assert tuned_auc > bad_auc + 0.03, (tuned_auc, bad_auc)  # about 0.79 vs 0.72
    assert abs(tuned_auc - xgboost_result.best_value) < 0.1  # CV estimate is in the right neighbourhood


@pytest.fixture(scope="module")
def pruned_run():
    calls = []
    result = run("lightgbm", n_trials=12, pruner_startup_trials=3,
                 on_trial=lambda number, params, value, state: calls.append((number, params, value, state)))
    return result, calls


def test_poor_trials_are_pruned_before_their_last_fold(pruned_run):
    result, _ = pruned_run
    states = result.trials.state.value_counts()
    assert states.get("PRUNED", 0) >= 1 and states.get("COMPLETE", 0) >= 3, states
    pruned = result.trials[result.trials.state == "PRUNED"]
    assert pruned.value.isna().all() and (pruned.folds_scored < 3).all()
    assert result.best_value == result.trials.value.max()


def test_on_trial_reports_every_trial_once(pruned_run):
    result, calls = pruned_run
    assert [c[0] for c in calls] == list(range(12))
    for number, params, value, state in calls:
        row = result.trials.set_index("number").loc[number]
        assert state == row.state and {"num_leaves", "learning_rate"} <= set(params)
        assert (value is None) == (state == "PRUNED")
        if value is not None:
            assert value == row.value


def test_finished_trials_are_the_searchs_trials_as_plain_values(pruned_run):
    result, calls = pruned_run
    finished = tuning.finished_trials(result)
    assert [(n, p, s, v) for n, p, s, v in finished] == [(n, p, s, v) for n, p, v, s in calls]
    assert {s for _, _, s, _ in finished} == {"COMPLETE", "PRUNED"}


def test_smote_resamples_only_the_training_part_of_each_fold(monkeypatch):
    resampled_sizes = []

    class RecordingSMOTE(SMOTE):
        def fit_resample(self, X, y, **params):
            resampled_sizes.append(len(y))
            return super().fit_resample(X, y, **params)

    monkeypatch.setattr(tuning, "SMOTE", RecordingSMOTE)
    result = run("lightgbm", n_trials=2, imbalance="smote")
    fold_fit_sizes = {len(fit) for fit, _ in StratifiedKFold(3, shuffle=True, random_state=SEED).split(X_TRAIN, Y_TRAIN)}
    assert len(resampled_sizes) == result.trials.folds_scored.sum() == 6  # one resampling per fitted fold
    assert set(resampled_sizes) <= fold_fit_sizes and len(X_TRAIN) not in resampled_sizes
    assert result.trials.value.between(0.6, 1.0).all()


def test_timeout_stops_the_study():
    started = time.perf_counter()
    result = run("lightgbm", n_trials=10_000, timeout_s=1.0)
    assert time.perf_counter() - started < 10
    assert 1 <= len(result.trials) < 10_000


def test_history_plots_are_figures(xgboost_result):
    open_before, style_before = plt.get_fignums(), dict(plt.rcParams)
    figures = history_plots(xgboost_result)
    assert dict(plt.rcParams) == style_before  # optuna's global ggplot style does not leak out
    assert set(figures) == {"optimisation_history", "param_importances"}
    for figure in figures.values():
        assert isinstance(figure, Figure)
        figure.savefig(io.BytesIO(), format="png")
    assert "mean CV roc_auc" in figures["optimisation_history"].axes[0].get_ylabel()
    assert plt.get_fignums() == open_before  # detached from pyplot: nothing piles up


def test_param_importances_fall_back_with_a_single_trial():
    figures = history_plots(run("lightgbm", n_trials=1))
    title = figures["param_importances"].axes[0].get_title()
    assert "complete trial" in title or "single tuned parameter" in title
    figures["param_importances"].savefig(io.BytesIO(), format="png")


@pytest.mark.parametrize("imbalance", ["class_weight", "smote"])
def test_folds_encoded_once_give_the_search_that_encodes_them_every_trial(monkeypatch, imbalance):
    """Encoding each fold once per search (not once per trial) changes nothing a user sees: the
    same trials, scores and best parameters, SMOTE still resampling encoded training folds only;
    and the preprocessor is fitted once per fold, not once per trial and fold."""
    fits = []

    def counted_preprocess():
        pre = make_preprocess()
        original = pre.fit_transform

        def fit_transform(x, y=None, **kw):
            fits.append(len(x))
            return original(x, y, **kw)

        pre.fit_transform = fit_transform
        return pre

    def search():
        return tune("lightgbm", X_TRAIN, Y_TRAIN, counted_preprocess, n_trials=6, timeout_s=None, seed=SEED,
                    imbalance=imbalance)

    once = search()
    fitted_once = len(fits)
    monkeypatch.setattr(tuning, "ENCODE_ONCE_MAX_ROWS", 0)
    fits.clear()
    every = search()
    assert fitted_once == 3 and len(fits) == every.trials.folds_scored.sum() > 3
    pd.testing.assert_frame_equal(once.trials.drop(columns="duration_s"), every.trials.drop(columns="duration_s"))
    assert once.best_params == every.best_params and once.best_value == every.best_value
