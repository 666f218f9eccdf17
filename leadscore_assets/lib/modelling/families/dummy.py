"""The dummy: the class prior for every lead, the floor every model must beat (config requires it)."""

from __future__ import annotations

from leadscore_assets.lib.modelling.families import ModelFamily


def make(y_train, seed: int, threads: int):
    from sklearn.dummy import DummyClassifier

    return DummyClassifier(strategy="prior")



FAMILY = ModelFamily(
    name="dummy", make=make, estimator_class="sklearn.dummy.DummyClassifier", simplicity=0,
    explainer="prior",  # no feature moves the score: zero contributions, base value the prior's log-odds
    class_weighted=False,  # a prior is not re-weighted, nor fitted on resampled rows
)
