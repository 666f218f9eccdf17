"""The candidate estimators with their fixed defaults, class-weighted for imbalance.

Kept apart from training and tuning so both can build the same models; the dummy is the floor
every model must beat.
"""

from __future__ import annotations

import numpy as np
from lightgbm import LGBMClassifier
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from xgboost import XGBClassifier


# Below this many training rows a second thread gains little and, on a busy 2-core machine, its
# OpenMP spin-waits were seen to make a 4,000-row LightGBM fit 30x slower (13 s instead of 0.4 s).
THREADED_FROM_ROWS = 50_000


def make_estimator(name: str, y_train: np.ndarray, seed: int):
    """The estimator for a candidate name, class-weighted from the training labels."""
    threads = 1 if len(y_train) < THREADED_FROM_ROWS else 2
    pos = max(float(y_train.sum()), 1.0)
    neg = max(float(len(y_train) - y_train.sum()), 1.0)
    if name == "dummy":
        return DummyClassifier(strategy="prior")
    if name in ("logistic_regression", "spline_logistic"):
        # L2-regularised; its C is chosen by CV on the training rows (training.choose_c).
        # spline_logistic differs only in its preprocessing (features.preprocessor). Not
        # class-weighted: re-weighting a logistic model does not help it rank and was measured
        # to cost ROC-AUC on a real table (0.004 on modeldata/attrition); calibration follows.
        return LogisticRegression(C=1.0, max_iter=2000)
    if name == "random_forest":
        # Depth-capped: uncapped forests on tens of thousands of rows make per-lead SHAP minutes slow.
        return RandomForestClassifier(
            n_estimators=200, max_depth=10, min_samples_leaf=10, class_weight="balanced_subsample", n_jobs=threads,
            random_state=seed,
        )
    if name == "xgboost":
        return XGBClassifier(
            n_estimators=300, learning_rate=0.05, max_depth=3, subsample=0.8, colsample_bytree=0.8,
            min_child_weight=5, scale_pos_weight=neg / pos, n_jobs=threads, random_state=seed, eval_metric="logloss",
        )
    if name == "lightgbm":
        return LGBMClassifier(
            n_estimators=300, learning_rate=0.03, num_leaves=8, min_child_samples=30, subsample=0.8,
            subsample_freq=1, colsample_bytree=0.8, class_weight="balanced", n_jobs=threads, random_state=seed, verbose=-1,
        )
    raise ValueError(f"unknown candidate model {name!r}")
