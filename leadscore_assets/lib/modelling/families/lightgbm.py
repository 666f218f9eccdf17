"""LightGBM: small-leaved boosted trees, class-balanced, tuned by Optuna."""

from __future__ import annotations

import numpy as np

from leadscore_assets.lib.modelling.families import ModelFamily


def make(y_train, seed: int, threads: int):
    from lightgbm import LGBMClassifier

    return LGBMClassifier(
        n_estimators=300, learning_rate=0.03, num_leaves=8, min_child_samples=30, subsample=0.8,
        subsample_freq=1, colsample_bytree=0.8, class_weight="balanced", n_jobs=threads, random_state=seed, verbose=-1,
    )


def search_space(trial) -> dict:
    return {
        "n_estimators": trial.suggest_int("n_estimators", 100, 600, step=50),
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.2, log=True),
        "num_leaves": trial.suggest_int("num_leaves", 4, 64, log=True),
        "min_child_samples": trial.suggest_int("min_child_samples", 5, 100, log=True),
        "subsample": trial.suggest_float("subsample", 0.6, 1.0),  # subsample_freq=1 is fixed
        "colsample_bytree": trial.suggest_float("colsample_bytree", 0.5, 1.0),
        "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 10.0, log=True),
        "reg_alpha": trial.suggest_float("reg_alpha", 1e-3, 10.0, log=True),
    }


# make's defaults in the search space (regularisation at its floor where the estimator's default is 0)
FIRST_TRIAL = {"n_estimators": 300, "learning_rate": 0.03, "num_leaves": 8, "min_child_samples": 30,
               "subsample": 0.8, "colsample_bytree": 0.8, "reg_lambda": 1e-3, "reg_alpha": 1e-3}



def margin(model, x) -> np.ndarray:
    return np.asarray(model.predict(x, raw_score=True), dtype=float)


FAMILY = ModelFamily(
    name="lightgbm", make=make, estimator_class="lightgbm.LGBMClassifier", simplicity=30,
    explainer="tree", blendable=True, margin=margin,
    search_space=search_space, first_trial=FIRST_TRIAL,
    unweighted={"class_weight": None}, threads_param="n_jobs",
    package="lightgbm", requires=("lightgbm",), kinds=("lightgbm",),
)
