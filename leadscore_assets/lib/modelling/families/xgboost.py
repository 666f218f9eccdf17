"""XGBoost: shallow boosted trees, positives weighted by negatives/positives, tuned by Optuna."""

from __future__ import annotations

import numpy as np

from leadscore_assets.lib.modelling.families import ModelFamily, positive_weight


def make(y_train, seed: int, threads: int):
    from xgboost import XGBClassifier

    return XGBClassifier(
        n_estimators=300, learning_rate=0.05, max_depth=3, subsample=0.8, colsample_bytree=0.8,
        min_child_weight=5, scale_pos_weight=positive_weight(y_train), n_jobs=threads, random_state=seed,
        eval_metric="logloss",
    )


def search_space(trial) -> dict:
    """Shallow-to-moderate trees, a few hundred rounds: ranges for small-to-medium tabular data."""
    return {
        "n_estimators": trial.suggest_int("n_estimators", 100, 600, step=50),
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.2, log=True),
        "max_depth": trial.suggest_int("max_depth", 2, 8),
        "min_child_weight": trial.suggest_float("min_child_weight", 1.0, 20.0, log=True),
        "subsample": trial.suggest_float("subsample", 0.6, 1.0),
        "colsample_bytree": trial.suggest_float("colsample_bytree", 0.5, 1.0),
        "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 10.0, log=True),
        "reg_alpha": trial.suggest_float("reg_alpha", 1e-3, 10.0, log=True),
    }


# make's defaults in the search space (reg_alpha at its floor where the estimator's default is 0)
FIRST_TRIAL = {"n_estimators": 300, "learning_rate": 0.05, "max_depth": 3, "min_child_weight": 5.0,
               "subsample": 0.8, "colsample_bytree": 0.8, "reg_lambda": 1.0, "reg_alpha": 1e-3}



def margin(model, x) -> np.ndarray:
    return np.asarray(model.predict(x, output_margin=True), dtype=float)


FAMILY = ModelFamily(
    name="xgboost", make=make, estimator_class="xgboost.XGBClassifier", simplicity=40,
    explainer="tree", blendable=True, margin=margin,
    search_space=search_space, first_trial=FIRST_TRIAL,
    unweighted={"scale_pos_weight": 1.0}, threads_param="n_jobs",
    package="xgboost", requires=("xgboost",), kinds=("xgboost",),
)
