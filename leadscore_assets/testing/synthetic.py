"""Small synthetic leads for the tuning and model-family code, through the real preprocessor: ~20%
positives with an interaction and a threshold in the signal (which trees pick up), a train and a
held-out draw."""

from types import SimpleNamespace

import numpy as np
import pandas as pd

from leadscore_assets.lib.features.frame import FeatureSet, preprocessor

FEATURES = FeatureSet(numeric=["engagement", "visits", "noise"], categorical=["job_title"])
CONFIG = SimpleNamespace(features=SimpleNamespace(categorical_min_frequency=5, categorical_max_levels=30))


def make_preprocess():
    return preprocessor(FEATURES, CONFIG)


def synthetic_leads(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """~20% positives; the signal has an interaction and a threshold, which trees pick up."""
    rng = np.random.default_rng(seed)
    engagement, visits, noise = rng.normal(size=(3, n))
    job_title = rng.choice(["ceo", "cto", "developer", "intern", "sales"], size=n)
    logit = -2.0 + 1.3 * engagement + 1.2 * (visits > 0.5) * engagement + 0.9 * np.isin(job_title, ["ceo", "cto"])
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    engagement[rng.random(n) < 0.05] = np.nan
    x = pd.DataFrame({"engagement": engagement, "visits": visits, "noise": noise, "job_title": job_title})
    return x, y


X_TRAIN, Y_TRAIN = synthetic_leads(600, seed=0)
X_HELDOUT, Y_HELDOUT = synthetic_leads(1000, seed=1)
