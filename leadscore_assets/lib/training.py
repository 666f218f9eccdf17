"""Candidate models: each a whole sklearn Pipeline (preprocessing + estimator) fitted on train.

Tuned by Optuna when the project sets a budget; imbalance handled as configured.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from leadscore_assets.lib.config import ProjectConfig
from leadscore_assets.lib.features import LABEL, SPLIT, FeatureSet, preprocessor
from leadscore_assets.lib.tuning import TUNABLE_MODELS, build_model, tune


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
    x_train, y_train = split_xy(frame, fs, "train")
    if len(np.unique(y_train)) < 2:
        raise ValueError(f"project '{config.name}': the training split has a single class; cannot train")
    spec, seed = config.models, config.models.seed
    splines = name == "logistic_regression"  # a linear model needs curved numeric effects spelled out
    tuning = None
    params: dict = {}
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
