"""The second stage of a two-stage value model: E[revenue | order].

Fitted on converting training rows only, on log1p(revenue) because order values are long-tailed,
and mapped back with Duan's smearing factor so the back-transformed mean is not biased low.
Expected revenue of a lead = P(order) x E[revenue | order].
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from lightgbm import LGBMRegressor
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.metrics import mean_absolute_error, mean_absolute_percentage_error, mean_squared_error, r2_score
from sklearn.pipeline import Pipeline


class LogRevenueRegressor(RegressorMixin, BaseEstimator):
    """Regress log1p(revenue); predict revenue in currency units with smearing."""

    def __init__(self, preprocess=None, seed: int = 0):
        self.preprocess = preprocess
        self.seed = seed

    def fit(self, x: pd.DataFrame, y: np.ndarray):
        self.pipeline_ = Pipeline([
            ("preprocess", self.preprocess),
            ("model", LGBMRegressor(n_estimators=300, learning_rate=0.05, num_leaves=15, min_child_samples=30,
                                    subsample=0.8, subsample_freq=1, random_state=self.seed, n_jobs=2, verbose=-1)),
        ])
        log_y = np.log1p(np.asarray(y, dtype=float))
        self.pipeline_.fit(x, log_y)
        residuals = log_y - self.pipeline_.predict(x)
        self.smearing_ = float(np.mean(np.exp(residuals)))
        return self

    def predict(self, x: pd.DataFrame) -> np.ndarray:
        return np.expm1(self.pipeline_.predict(x)) * self.smearing_


def regression_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    y = np.asarray(y, dtype=float)
    return {
        "rmse": float(np.sqrt(mean_squared_error(y, pred))),
        "mae": float(mean_absolute_error(y, pred)),
        "r2": float(r2_score(y, pred)),
        "mape": float(mean_absolute_percentage_error(y, pred)),
        "rows": float(len(y)),
    }
