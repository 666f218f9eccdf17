"""CatBoost: symmetric (oblivious) boosted trees, ordered boosting, positives weighted by
negatives/positives, tuned by Optuna. An optional dependency (`pip install 'leadscore[catboost]'`):
a project naming it without the package fails config loading saying so.

It reads the same encoded matrix as the other boosted families (the preprocessor one-hot and
target encodes categoricals; no raw categorical reaches a model), so its own categorical
handling is not used. It writes no `catboost_info` folder and prints nothing.
"""

from __future__ import annotations

import numpy as np

from leadscore_assets.lib.modelling.families import ModelFamily, positive_weight


def make(y_train, seed: int, threads: int):
    from catboost import CatBoostClassifier

    return CatBoostClassifier(
        iterations=500, learning_rate=0.05, depth=6, l2_leaf_reg=3.0, random_strength=1.0,
        scale_pos_weight=positive_weight(y_train), random_seed=seed, thread_count=threads,
        allow_writing_files=False, verbose=False,
    )


def search_space(trial) -> dict:
    """A modest space around CatBoost's own defaults (depth 6, l2 3): fewer, deeper rounds cost more."""
    return {
        "iterations": trial.suggest_int("iterations", 100, 1000, step=50),
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.2, log=True),
        "depth": trial.suggest_int("depth", 3, 8),
        "l2_leaf_reg": trial.suggest_float("l2_leaf_reg", 0.5, 30.0, log=True),
        "random_strength": trial.suggest_float("random_strength", 0.1, 10.0, log=True),
    }


FIRST_TRIAL = {"iterations": 500, "learning_rate": 0.05, "depth": 6, "l2_leaf_reg": 3.0, "random_strength": 1.0}


def margin(model, x) -> np.ndarray:
    return np.asarray(model.predict(x, prediction_type="RawFormulaVal"), dtype=float)


FAMILY = ModelFamily(
    name="catboost", make=make, estimator_class="catboost.CatBoostClassifier", simplicity=45,
    explainer="tree", blendable=True, margin=margin,  # TreeExplainer explains the raw log-odds
    search_space=search_space, first_trial=FIRST_TRIAL,
    unweighted={"scale_pos_weight": 1.0}, threads_param="thread_count",
    package="catboost", requires=("catboost",), extra="catboost", kinds=("catboost",),
)
