"""Candidate models: each a whole sklearn Pipeline (preprocessing + estimator) fitted on train.

Tuned by Optuna when the project sets a budget; imbalance handled as configured.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.base import clone
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline

from leadscore_assets.lib.modelling.blend import (
    BLEND, bag_pipeline, describe, fitted_blend_of_bags, fitted_blend_pipeline, fold_bag_of, greedy_weights, log_odds,
)
from leadscore_assets.lib.modelling.calibration import (
    CalibrationResult, calibrate, calibrate_out_of_fold, probability_and_response,
)
from leadscore_assets.lib.project.config import ProjectConfig
from leadscore_assets.lib.evaluation.metrics import classification_metrics, selection_score
from leadscore_assets.lib.features.frame import LABEL, SPLIT, FeatureSet, preprocessor
from leadscore_assets.lib.modelling.families import FAMILIES, THREADED_FROM_ROWS, family
from leadscore_assets.lib.modelling.thresholds import ThresholdDecision, choose_threshold
from leadscore_assets.lib.modelling.tuning import build_model, tune


@dataclass
class TrainedCandidate:
    name: str
    pipeline: Pipeline
    params: dict
    tuning: object | None = None  # tuning.TuningResult when a search ran


def split_xy(frame: pd.DataFrame, fs: FeatureSet, *splits: str) -> tuple[pd.DataFrame, np.ndarray]:
    part = frame[frame[SPLIT].isin(splits)]
    return part[fs.columns], part[LABEL].to_numpy().astype(int)


def selection_method(frame: pd.DataFrame, config: ProjectConfig) -> str:
    """`cv` or `holdout`: a validation split with few positives is too noisy to pick a model on
    (a handful of leads decide the ranking), so candidates are compared by K-fold CV instead."""
    spec = config.models
    if spec.selection != "auto":
        return spec.selection
    positives = int((frame.loc[frame[SPLIT] == "validation", LABEL] == 1).sum())
    return "cv" if positives < spec.cv_below_validation_positives else "holdout"


def fit_splits(method: str) -> tuple[str, ...]:
    """Rows a candidate is fitted on: train (holdout: validation judges it), or train +
    validation (cv: out-of-fold predictions judge it, and the final model learns from all)."""
    return ("train", "validation") if method == "cv" else ("train",)


def cv_folds(config: ProjectConfig, seed: int) -> StratifiedKFold:
    return StratifiedKFold(config.models.cv_folds, shuffle=True, random_state=seed)


def out_of_fold_scores(pipeline, x: pd.DataFrame, y: np.ndarray, config: ProjectConfig) -> tuple[np.ndarray, np.ndarray]:
    """P(positive) and the calibrator's response (calibration.probability_and_response) for every
    row, from a copy of `pipeline` fitted without that row's fold (what cross_val_predict fits):
    for a fold bag, its own fold models, with no fit."""
    if (bag := fold_bag_of(pipeline)) is not None:
        margins = bag.held_out_margins(x, y)
        return expit(margins), margins
    p, response = np.empty(len(y)), np.empty(len(y))
    for rows, held in cv_folds(config, config.models.seed).split(x, y):
        fold = clone(pipeline).fit(x.iloc[rows], y[rows])
        p[held], response[held] = probability_and_response(fold, x.iloc[held])
    return p, response


def fold_scores(p_oof: np.ndarray, x: pd.DataFrame, y: np.ndarray, config: ProjectConfig) -> list[float]:
    """The selection metric on each CV fold's out-of-fold probabilities (same folds as above)."""
    metric = config.models.selection_metric
    return [selection_score(classification_metrics(y[rows], p_oof[rows]), metric)
            for _, rows in cv_folds(config, config.models.seed).split(x, y)]


# Only an exact tie goes to the simpler model. A one-standard-error rule ("the simplest within
# one SE of the best") was measured to throw signal away: on small tables with rare positives one
# SE of a 5-fold AUC is 0.01-0.02, and it kept choosing logistic models over boosted ones that
# scored higher out of fold and on test (0.738 chosen over 0.752; 0.740 over 0.754).
def simplicity(name: str) -> tuple:
    """Sort key of a candidate among exact ties: families by their simplicity rank, then the
    blend, then any other name alphabetically."""
    if name in FAMILIES:
        return (0, FAMILIES[name].simplicity, name)
    return (1, 0, name) if name == BLEND else (2, 0, name)


def choose_candidate(leaderboard: pd.DataFrame) -> str:
    """The candidate to evaluate: the best selection score (out-of-fold under CV, validation
    under holdout); an exact tie goes to the simpler model.

    `leaderboard` has columns candidate and selection_score."""
    best = leaderboard.selection_score.max()
    tied = set(leaderboard.loc[leaderboard.selection_score == best, "candidate"])
    return min(tied, key=simplicity)


def search_seconds_for(config: ProjectConfig, spent_s: float, tunable_left: int) -> float | None:
    """This search's time limit: an even share of what is left of the project's shared
    `models.time_budget_s` among the tuned candidates still to run, capped by `search.timeout_s`.

    One budget for the stage keeps a run's length predictable whatever candidates are listed;
    a share is never below 2 s, so a late candidate still gets its first (default) trial."""
    cap, budget = config.models.search.timeout_s, config.models.time_budget_s
    if budget is None:
        return cap
    share = max(2.0, (budget - spent_s) / max(1, tunable_left))
    return share if cap is None else min(cap, share)


class SearchBudget:
    """The project's `models.time_budget_s`, shared by its tuned candidates whether their searches
    run one after another or at once: a search may go on while it has run less than its even share
    of what the finished searches left (search_seconds_for), asked again after every trial, so a
    search beside one that finished early inherits what that one left, as it would have after it."""

    def __init__(self, config: ProjectConfig, tuned: list[str]):
        self._config, self._unfinished, self._spent = config, list(tuned), 0.0
        self._lock = threading.Lock()

    def share(self) -> float | None:
        """Seconds a search may run now: None when neither a budget nor a cap is set."""
        with self._lock:
            return search_seconds_for(self._config, self._spent, len(self._unfinished))

    def spent_enough(self, seconds: float) -> bool:
        share = self.share()
        return share is not None and seconds >= share

    def finished(self, name: str, seconds: float) -> None:
        with self._lock:
            self._unfinished.remove(name)
            self._spent += seconds


def bagged(name: str, config: ProjectConfig, method: str) -> bool:
    """Whether candidate `name` is registered as its fold models (FoldBag) rather than refitted:
    under CV selection with `models.cv_model: fold_models`, for the families that explain in
    log-odds (a bag averages its folds' log-odds; the random forest's trees hold probabilities)."""
    return method == "cv" and config.models.cv_model == "fold_models" and FAMILIES[name].blendable


class SharedPreprocessing:
    """The training rows encoded once for the candidates judged together: their pipelines differ
    in the estimator only (one preprocessing for all, another with splines), and each fitted the
    same preprocessing on the same rows again; at 283,000 rows that was most of candidate_models
    (the one-hot encoder counts its levels value by value in Python: 0.56 s a fit, before the
    imputers, scaling and target encoding).

    `fit` does what `Pipeline.fit` does for a (preprocess, model) pipeline, the preprocessing's
    `fit_transform` then the model's `fit` on its output, with the preprocessing fitted the first
    time only: the same predictions (the tests hold them equal). The pipelines hold that one
    fitted object, so a blend of them encodes rows once for all its members (blend.margin,
    explain); nothing fits it again in place (out-of-fold scoring and blends fit clones). Safe
    for candidates fitted on threads."""

    def __init__(self):
        self._lock = threading.Lock()
        self._encoded: dict[bool, tuple[object, np.ndarray]] = {}

    @staticmethod
    def applies(pipeline) -> bool:
        """A plain (preprocess, model) Pipeline: not a resampling or fold-bagged one."""
        return type(pipeline) is Pipeline and [n for n, _ in pipeline.steps] == ["preprocess", "model"]

    def fit(self, pipeline: Pipeline, x: pd.DataFrame, y: np.ndarray, splines: bool) -> Pipeline:
        with self._lock:
            if splines not in self._encoded:
                preprocess = pipeline.named_steps["preprocess"]
                self._encoded[splines] = (preprocess, preprocess.fit_transform(x, y))
        preprocess, encoded = self._encoded[splines]
        pipeline.steps = [("preprocess", preprocess), pipeline.steps[1]]
        pipeline.named_steps["model"].fit(encoded, y)
        return pipeline


def train_candidate(
    name: str, frame: pd.DataFrame, fs: FeatureSet, config: ProjectConfig, on_trial=None,
    splits: tuple[str, ...] = ("train",), budget: SearchBudget | None = None, folds: StratifiedKFold | None = None,
    shared: SharedPreprocessing | None = None,
) -> TrainedCandidate:
    """Fit one candidate on `splits`, after an Optuna search on the same rows when the project
    sets a trial budget and the candidate is tunable (limited to the project's `search.timeout_s`
    and to its share of `budget` when given); imbalance handling as configured. With `folds`,
    the candidate is those folds' models (blend.FoldBag), one fitted per fold. With `shared`,
    its preprocessing is the one fitted on these rows for the other candidates judged with it."""
    x_train, y_train = split_xy(frame, fs, *splits)
    if len(np.unique(y_train)) < 2:
        raise ValueError(f"project '{config.name}': the training split has a single class; cannot train")
    spec, seed, fam = config.models, config.models.seed, family(name)
    splines = fam.splines
    tuning = None
    params: dict = {}
    if fam.chosen_params is not None:  # e.g. logistic regression's C by its own inner CV
        params = fam.chosen_params(x_train, y_train, preprocessor(fs, config, splines), seed)
    if spec.search.n_trials > 0 and fam.tunable:
        tuning = tune(
            name, x_train, y_train, lambda: preprocessor(fs, config, splines), n_trials=spec.search.n_trials,
            timeout_s=spec.search.timeout_s, seed=seed, cv_folds=spec.search.cv_folds,
            imbalance=spec.imbalance, on_trial=on_trial, stop_after=None if budget is None else budget.spent_enough,
        )
        params = tuning.best_params
    imbalance = spec.imbalance if fam.class_weighted else "none"
    pipeline = build_model(name, params, preprocessor(fs, config, splines), y_train, seed, imbalance)
    estimator = pipeline.named_steps["model"]
    if folds is not None:
        pipeline = bag_pipeline(pipeline, fs.columns, folds)
    if shared is not None and SharedPreprocessing.applies(pipeline):
        shared.fit(pipeline, x_train, y_train, splines)
    else:
        pipeline.fit(x_train, y_train)
    logged = {f"model.{k}": v for k, v in estimator.get_params().items() if isinstance(v, (int, float, str, bool))}
    logged["imbalance"] = imbalance
    return TrainedCandidate(name=name, pipeline=pipeline, params=logged, tuning=tuning)


@dataclass
class FinalModel:
    """The selected candidate made ready to register: calibrated when that helps, with its threshold."""

    model: object
    calibration: CalibrationResult
    threshold: ThresholdDecision
    fit_rows: pd.DataFrame  # the rows the model learnt from (SHAP background, drift reference)


def finalise(fitted, frame: pd.DataFrame, fs: FeatureSet, config: ProjectConfig, method: str) -> FinalModel:
    """Calibrate and choose the contact threshold on rows the model was not fitted on:
    the validation split (holdout), or out-of-fold probabilities over train + validation (cv)."""
    spec, seed = config.models, config.models.seed
    t = spec.threshold
    policy = dict(capacity_per_week=t.capacity_per_week, leads_per_week=t.leads_per_week,
                  value_per_conversion=t.value_per_conversion, cost_per_contact=t.cost_per_contact)
    x_fit, y_fit = split_xy(frame, fs, *fit_splits(method))
    if method == "cv":
        p_oof, response_oof = out_of_fold_scores(fitted, x_fit, y_fit, config)
        cal, p_judged = calibrate_out_of_fold(fitted, y_fit, p_oof, response_oof, method=spec.calibration, seed=seed)
        decision = choose_threshold(y_fit, p_judged, t.policy, **policy)
    else:
        x_val, y_val = split_xy(frame, fs, "validation")
        cal = calibrate(fitted, x_val, y_val, method=spec.calibration, seed=seed)
        decision = choose_threshold(y_val, cal.calibrated_p, t.policy, **policy)  # cal.pipeline's, predicted once
    return FinalModel(model=cal.pipeline, calibration=cal, threshold=decision, fit_rows=x_fit)


@dataclass
class JudgedCandidate:
    """A fitted candidate and how it scored on rows it was not fitted on."""

    candidate: object  # TrainedCandidate: pipeline, params, tuning
    metrics: dict[str, float]
    fold_scores: list[float]  # per CV fold (cv selection); empty on holdout
    train_seconds: float
    search_seconds: float
    held_out: np.ndarray | None = None  # P(positive) on the judged rows: out of fold (cv) or validation


def fit_and_judge(name: str, frame: pd.DataFrame, fs: FeatureSet, config: ProjectConfig, method: str,
                  budget: SearchBudget | None = None, shared: SharedPreprocessing | None = None) -> JudgedCandidate:
    """Fit candidate `name` (with its search) and judge it the way `method` selects: out-of-fold
    over train + validation (cv) or on the validation split (holdout)."""
    started = time.perf_counter()
    folds = cv_folds(config, config.models.seed) if bagged(name, config, method) else None
    cand = train_candidate(name, frame, fs, config, splits=fit_splits(method), budget=budget, folds=folds,
                           shared=shared)
    if method == "cv":
        x_fit, y_fit = split_xy(frame, fs, *fit_splits(method))
        p_held, _ = out_of_fold_scores(cand.pipeline, x_fit, y_fit, config)
    else:
        x_val, _ = split_xy(frame, fs, "validation")
        p_held = cand.pipeline.predict_proba(x_val)[:, 1]
    metrics, folds = judge_held_out(p_held, frame, fs, config, method)
    search = float(cand.tuning.trials.duration_s.sum()) if cand.tuning is not None else 0.0
    return JudgedCandidate(cand, metrics, folds, time.perf_counter() - started, search, p_held)


def concurrent_fits(fit_rows: int) -> int:
    """Candidates fitted at once: two below THREADED_FROM_ROWS fit rows, where every fit runs on
    one thread and so leaves the second core idle; one above, where each fit uses both cores
    (two 2-thread fits at once on 2 cores were seen to stall in OpenMP spin-waits)."""
    return 2 if fit_rows < THREADED_FROM_ROWS and (os.cpu_count() or 1) >= 2 else 1


def judge_candidates(names: list[str], frame: pd.DataFrame, fs: FeatureSet, config: ProjectConfig, method: str,
                     workers: int | None = None) -> dict[str, JudgedCandidate]:
    """Every candidate in `names` fitted and judged (fit_and_judge), `workers` at a time
    (default: concurrent_fits), returned in `names` order.

    The tuned candidates start first (they take longest) and share the project's search budget
    (SearchBudget), so two searches at once spend what two in a row would. Every fit is seeded and,
    below THREADED_FROM_ROWS rows, single-threaded, so the candidates are the ones fitted one at a
    time whenever no search reaches its time limit (a limited search may finish other trials).
    Threads, not processes: the model libraries release the GIL while they fit, and nothing is
    copied; BLAS is held to one thread meanwhile, so two fits do not oversubscribe the cores."""
    x_fit, _ = split_xy(frame, fs, *fit_splits(method))
    workers = workers or concurrent_fits(len(x_fit))
    tuned = [n for n in names if FAMILIES[n].tunable]
    budget = SearchBudget(config, tuned)
    shared = SharedPreprocessing()  # every candidate here is fitted on the same rows

    def judge(name: str) -> JudgedCandidate:
        judged = fit_and_judge(name, frame, fs, config, method, budget=budget if name in tuned else None,
                               shared=shared)
        if name in tuned:
            budget.finished(name, judged.search_seconds)
        return judged

    order = tuned + [n for n in names if n not in tuned]
    if workers == 1:
        done = {name: judge(name) for name in order}
    else:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(workers, thread_name_prefix="candidate") as pool:
            done = dict(zip(order, pool.map(judge, order)))
    return {name: done[name] for name in names}


def judge_held_out(p_held: np.ndarray, frame: pd.DataFrame, fs: FeatureSet, config: ProjectConfig,
                   method: str) -> tuple[dict[str, float], list[float]]:
    """Metrics (and per-fold scores under cv) of probabilities on the rows `method` judges on."""
    if method == "cv":
        x_fit, y_fit = split_xy(frame, fs, *fit_splits(method))
        return classification_metrics(y_fit, p_held), fold_scores(p_held, x_fit, y_fit, config)
    _, y_val = split_xy(frame, fs, "validation")
    return classification_metrics(y_val, p_held), []


def fit_and_judge_blend(judged: dict[str, JudgedCandidate], frame: pd.DataFrame, fs: FeatureSet,
                        config: ProjectConfig, method: str) -> JudgedCandidate | None:
    """The log-odds blend of the blendable candidates (blend.py), weighted greedily on their
    held-out probabilities and judged on the same rows; None when it would hold one member only
    (or imbalance is SMOTE, whose resampling lives in each candidate's own pipeline)."""
    started = time.perf_counter()
    members = {n: j for n, j in judged.items() if n in FAMILIES and FAMILIES[n].blendable and j.held_out is not None}
    if len(members) < 2 or config.models.imbalance == "smote":
        return None
    x_fit, y_fit = split_xy(frame, fs, *fit_splits(method))
    y_held = y_fit if method == "cv" else split_xy(frame, fs, "validation")[1]
    weights, _ = greedy_weights(y_held, {n: j.held_out for n, j in members.items()})
    if len(weights) < 2:
        return None
    p_held = expit(sum(w * log_odds(members[n].held_out) for n, w in weights.items()))
    pipelines = {n: j.candidate.pipeline for n, j in members.items()}
    if all(fold_bag_of(p) is not None for n, p in pipelines.items() if n in weights):
        pipeline = fitted_blend_of_bags(pipelines, weights, fs.columns, x_fit, y_fit)
    else:
        pipeline = fitted_blend_pipeline(pipelines, weights, fs.columns, x_fit)
    params = {"blend.weights": describe(weights), **{f"blend.weight.{n}": round(w, 4) for n, w in weights.items()}}
    metrics, folds = judge_held_out(p_held, frame, fs, config, method)
    return JudgedCandidate(TrainedCandidate(BLEND, pipeline, params), metrics, folds,
                           time.perf_counter() - started, 0.0, p_held)
