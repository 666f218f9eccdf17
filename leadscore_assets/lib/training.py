"""Candidate models: each a whole sklearn Pipeline (preprocessing + estimator) fitted on train.

Every candidate weights classes for imbalance; the dummy is the floor every model must beat.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from lightgbm import LGBMClassifier
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from xgboost import XGBClassifier

from leadscore_assets.lib.config import ProjectConfig
from leadscore_assets.lib.features import LABEL, SPLIT, FeatureSet, preprocessor


def make_estimator(name: str, y_train: np.ndarray, seed: int):
    """The estimator for a candidate name, class-weighted from the training labels."""
    pos = max(float(y_train.sum()), 1.0)
    neg = max(float(len(y_train) - y_train.sum()), 1.0)
    if name == "dummy":
        return DummyClassifier(strategy="prior")
    if name == "logistic_regression":
        return LogisticRegression(C=0.5, class_weight="balanced", max_iter=2000)
    if name == "random_forest":
        # Depth-capped: uncapped forests on tens of thousands of rows make per-lead SHAP minutes slow.
        return RandomForestClassifier(
            n_estimators=200, max_depth=10, min_samples_leaf=10, class_weight="balanced_subsample", n_jobs=2,
            random_state=seed,
        )
    if name == "xgboost":
        return XGBClassifier(
            n_estimators=300, learning_rate=0.05, max_depth=3, subsample=0.8, colsample_bytree=0.8,
            min_child_weight=5, scale_pos_weight=neg / pos, n_jobs=2, random_state=seed, eval_metric="logloss",
        )
    if name == "lightgbm":
        return LGBMClassifier(
            n_estimators=300, learning_rate=0.03, num_leaves=8, min_child_samples=30, subsample=0.8,
            subsample_freq=1, colsample_bytree=0.8, class_weight="balanced", n_jobs=2, random_state=seed, verbose=-1,
        )
    raise ValueError(f"unknown candidate model {name!r}")


@dataclass
class TrainedCandidate:
    name: str
    pipeline: Pipeline
    params: dict
    tuning: object | None = None  # tuning.TuningResult when a search ran


def split_xy(frame: pd.DataFrame, fs: FeatureSet, split: str) -> tuple[pd.DataFrame, np.ndarray]:
    part = frame[frame[SPLIT] == split]
    return part[fs.columns], part[LABEL].to_numpy().astype(int)


def train_candidate(
    name: str, frame: pd.DataFrame, fs: FeatureSet, config: ProjectConfig, on_trial=None
) -> TrainedCandidate:
    """Fit one candidate on the training split only, after an Optuna search when the project
    sets a trial budget and the candidate is tunable; imbalance handling as configured."""
    from leadscore_assets.lib.tuning import TUNABLE_MODELS, build_model, tune

    x_train, y_train = split_xy(frame, fs, "train")
    if len(np.unique(y_train)) < 2:
        raise ValueError(f"project '{config.name}': the training split has a single class; cannot train")
    spec, seed = config.models, config.models.seed
    tuning = None
    params: dict = {}
    if spec.search.n_trials > 0 and name in TUNABLE_MODELS:
        tuning = tune(
            name, x_train, y_train, lambda: preprocessor(fs, config), n_trials=spec.search.n_trials,
            timeout_s=spec.search.timeout_s, seed=seed, cv_folds=spec.search.cv_folds,
            imbalance=spec.imbalance, on_trial=on_trial,
        )
        params = tuning.best_params
    imbalance = spec.imbalance if name != "dummy" else "none"
    pipeline = build_model(name, params, preprocessor(fs, config), y_train, seed, imbalance)
    pipeline.fit(x_train, y_train)
    estimator = pipeline.named_steps["model"]
    logged = {f"model.{k}": v for k, v in estimator.get_params().items() if isinstance(v, (int, float, str, bool))}
    logged["imbalance"] = imbalance
    return TrainedCandidate(name=name, pipeline=pipeline, params=logged, tuning=tuning)
