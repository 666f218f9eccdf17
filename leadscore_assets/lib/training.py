"""Candidate models: each a whole sklearn Pipeline (preprocessing + estimator) fitted on train.

Tuned by Optuna when the project sets a budget; imbalance handled as configured.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.linear_model import LogisticRegressionCV
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import Pipeline

from leadscore_assets.lib.calibration import CalibrationResult, calibrate, calibrate_out_of_fold
from leadscore_assets.lib.config import ProjectConfig
from leadscore_assets.lib.evaluation import classification_metrics, selection_score
from leadscore_assets.lib.features import LABEL, SPLIT, FeatureSet, preprocessor
from leadscore_assets.lib.thresholds import ThresholdDecision, choose_threshold
from leadscore_assets.lib.tuning import TUNABLE_MODELS, build_model, tune


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


def out_of_fold_probabilities(pipeline, x: pd.DataFrame, y: np.ndarray, config: ProjectConfig) -> np.ndarray:
    """P(positive) for every row from a copy of `pipeline` fitted without that row's fold."""
    folds = cv_folds(config, config.models.seed)
    return cross_val_predict(clone(pipeline), x, y, cv=folds, method="predict_proba")[:, 1]


def fold_scores(p_oof: np.ndarray, x: pd.DataFrame, y: np.ndarray, config: ProjectConfig) -> list[float]:
    """The selection metric on each CV fold's out-of-fold probabilities (same folds as above)."""
    metric = config.models.selection_metric
    return [selection_score(classification_metrics(y[rows], p_oof[rows]), metric)
            for _, rows in cv_folds(config, config.models.seed).split(x, y)]


# From the simplest model to the most flexible: within noise of the best, the simpler one is
# chosen, since it has less room to have fitted the folds' noise.
SIMPLEST_FIRST = ("logistic_regression", "spline_logistic", "lightgbm", "xgboost", "random_forest")


def choose_candidate(leaderboard: pd.DataFrame) -> str:
    """The candidate to evaluate: the simplest one whose score is within one standard error of
    the best (the one-standard-error rule), when fold scores are known; else the best.

    `leaderboard` has columns candidate, selection_score and fold_scores (a JSON list, may be empty)."""
    ranked = leaderboard.sort_values("selection_score", ascending=False, kind="stable")
    best = ranked.iloc[0]
    folds = json.loads(best.fold_scores or "[]")
    if len(folds) < 2 or best.candidate == "dummy":
        return str(best.candidate)
    standard_error = float(np.std(folds, ddof=1) / np.sqrt(len(folds)))
    close = set(ranked.loc[ranked.selection_score >= best.selection_score - standard_error, "candidate"])
    return next((c for c in SIMPLEST_FIRST if c in close), str(best.candidate))


LOGISTIC = ("logistic_regression", "spline_logistic")
C_GRID = np.logspace(-4, 3, 15)  # half-decade steps: a coarse grid was seen to cost 0.005 AUC


def choose_c(x: pd.DataFrame, y: np.ndarray, preprocess, seed: int) -> float:
    """The L2 strength of a logistic candidate, by 5-fold stratified CV on ROC-AUC over its
    training rows (the same rule as the reference a real table is measured against)."""
    folds = int(min(5, max(2, np.bincount(y, minlength=2).min())))
    search = LogisticRegressionCV(Cs=C_GRID, cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
                                  scoring="roc_auc", max_iter=2000)
    return float(Pipeline([("preprocess", preprocess), ("model", search)]).fit(x, y).named_steps["model"].C_[0])


def train_candidate(
    name: str, frame: pd.DataFrame, fs: FeatureSet, config: ProjectConfig, on_trial=None,
    splits: tuple[str, ...] = ("train",),
) -> TrainedCandidate:
    """Fit one candidate on `splits`, after an Optuna search on the same rows when the project
    sets a trial budget and the candidate is tunable; imbalance handling as configured."""
    x_train, y_train = split_xy(frame, fs, *splits)
    if len(np.unique(y_train)) < 2:
        raise ValueError(f"project '{config.name}': the training split has a single class; cannot train")
    spec, seed = config.models, config.models.seed
    splines = name == "spline_logistic"  # a linear model that follows curved numeric effects
    tuning = None
    params: dict = {}
    if name in LOGISTIC:
        params = {"C": choose_c(x_train, y_train, preprocessor(fs, config, splines), seed)}
    if spec.search.n_trials > 0 and name in TUNABLE_MODELS:
        tuning = tune(
            name, x_train, y_train, lambda: preprocessor(fs, config, splines), n_trials=spec.search.n_trials,
            timeout_s=spec.search.timeout_s, seed=seed, cv_folds=spec.search.cv_folds,
            imbalance=spec.imbalance, on_trial=on_trial,
        )
        params = tuning.best_params
    imbalance = spec.imbalance if name != "dummy" else "none"
    pipeline = build_model(name, params, preprocessor(fs, config, splines), y_train, seed, imbalance)
    pipeline.fit(x_train, y_train)
    estimator = pipeline.named_steps["model"]
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
        p_oof = out_of_fold_probabilities(fitted, x_fit, y_fit, config)
        cal, p_judged = calibrate_out_of_fold(fitted, x_fit, y_fit, p_oof, cv_folds(config, seed),
                                              method=spec.calibration, seed=seed)
        decision = choose_threshold(y_fit, p_judged, t.policy, **policy)
    else:
        x_val, y_val = split_xy(frame, fs, "validation")
        cal = calibrate(fitted, x_val, y_val, method=spec.calibration, seed=seed)
        decision = choose_threshold(y_val, None, t.policy, classifier=cal.pipeline, x_val=x_val, **policy)
    return FinalModel(model=cal.pipeline, calibration=cal, threshold=decision, fit_rows=x_fit)


@dataclass
class JudgedCandidate:
    """A fitted candidate and how it scored on rows it was not fitted on."""

    candidate: object  # TrainedCandidate: pipeline, params, tuning
    metrics: dict[str, float]
    fold_scores: list[float]  # per CV fold (cv selection); empty on holdout
    train_seconds: float
    search_seconds: float


def fit_and_judge(name: str, frame: pd.DataFrame, fs: FeatureSet, config: ProjectConfig, method: str,
                  on_trial=None) -> JudgedCandidate:
    """Fit candidate `name` (with its search) and judge it the way `method` selects: out-of-fold
    over train + validation (cv) or on the validation split (holdout)."""
    started = time.perf_counter()
    cand = train_candidate(name, frame, fs, config, on_trial=on_trial, splits=fit_splits(method))
    folds: list[float] = []
    if method == "cv":
        x_fit, y_fit = split_xy(frame, fs, *fit_splits(method))
        p_oof = out_of_fold_probabilities(cand.pipeline, x_fit, y_fit, config)
        metrics, folds = classification_metrics(y_fit, p_oof), fold_scores(p_oof, x_fit, y_fit, config)
    else:
        x_val, y_val = split_xy(frame, fs, "validation")
        metrics = classification_metrics(y_val, cand.pipeline.predict_proba(x_val)[:, 1])
    search = float(cand.tuning.trials.duration_s.sum()) if cand.tuning is not None else 0.0
    return JudgedCandidate(cand, metrics, folds, time.perf_counter() - started, search)
