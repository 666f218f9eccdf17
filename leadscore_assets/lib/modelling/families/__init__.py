"""Model families: everything the pipeline knows about one kind of candidate model, in one module.

A family owns how its estimator is built for given parameters (its fixed defaults, thread count,
seed and class weighting, and the parameters that switch the weighting off), its Optuna search
space with the first trial that reproduces those defaults (none: it is not tuned), parameters it
chooses for itself from the training rows (logistic regression's C), the preprocessing it wants,
whether it may join the log-odds blend and how its raw margin is read, where it ranks among
exactly tied candidates, how SHAP explains it (trees, linear, or the dummy's prior), and what a
logged model of it needs installed. Config, training, tuning, explain, blend, the registry and
the candidate asset ask the family instead of checking names or types, so adding a family is its
module plus its line in `FAMILIES`. This package imports no model library until a model is built
(config loading stays light) and nothing from Dagster.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any, Literal

import numpy as np

# Below this many training rows a second thread gains little and, on a busy 2-core machine, its
# OpenMP spin-waits were seen to make a 4,000-row LightGBM fit 30x slower (13 s instead of 0.4 s).
THREADED_FROM_ROWS = 50_000

LOG_ODDS, PROBABILITY = "log_odds", "probability"  # what a family's SHAP values (and margin) are in


def threads_for(rows: int) -> int:
    """Threads a family's estimator is built with for `rows` training rows."""
    return 1 if rows < THREADED_FROM_ROWS else 2


def positive_weight(y_train: np.ndarray) -> float:
    """negatives / positives of the training labels (each at least 1): the weight that balances them."""
    pos = max(float(y_train.sum()), 1.0)
    neg = max(float(len(y_train) - y_train.sum()), 1.0)
    return neg / pos


@dataclass(frozen=True)
class ModelFamily:
    """One kind of candidate model (see the module docstring); each family module defines one `FAMILY`.

    make: (training labels, seed, threads) -> the unfitted estimator with its fixed defaults,
        class-weighted from the labels.
    simplicity: rank among exactly tied selection scores; the lowest wins.
    explainer: how SHAP explains a fitted model: "tree" (TreeExplainer), "linear"
        (LinearExplainer against the background rows) or "prior" (no feature moves the score).
    output: what its SHAP values and margin are in: "log_odds" or "probability".
    blendable: its margin is log-odds consistent with its SHAP values, so it may join the blend.
    search_space: trial -> estimator keyword arguments; None when the family is not tuned.
    first_trial: the search's first trial: make's fixed defaults written in the search space
        (regularisation at its floor where the estimator's default is 0), so a search starts from
        a known good model and only improves on it, however few trials its time share allows.
    chosen_params: (x, y, unfitted preprocessor, seed) -> parameters the family picks from its
        training rows before fitting (logistic regression's C by inner CV); None: none.
    splines: numeric columns reach it as B-splines (`features.preprocessor(..., splines=True)`).
    class_weighted: the project's imbalance handling applies (the dummy ignores it).
    unweighted: parameters that switch its class weighting off (imbalance "smote" or "none").
    threads_param: the estimator parameter holding its thread count (None: single-threaded).
    estimator_class: "module.Class" of its estimator, by which explain and the registry find the
        family of a fitted model (without importing a model library that is not in use).
    margin: (fitted estimator, encoded rows) -> raw log-odds; None: decision_function, else the
        log-odds of predict_proba.
    package: the import name of its model library (None: scikit-learn's own).
    requires: pip distributions a logged model of it needs besides scikit-learn.
    extra: the `leadscore[...]` extra that installs it; None when it is a core dependency.
    kinds: Dagster kinds the candidate asset shows when the family is a candidate.
    """

    name: str
    make: Callable[[np.ndarray, int, int], Any]
    simplicity: int
    explainer: Literal["tree", "linear", "prior"]
    estimator_class: str
    output: str = LOG_ODDS
    blendable: bool = False
    search_space: Callable[[Any], dict] | None = None
    first_trial: dict | None = None
    chosen_params: Callable[[Any, np.ndarray, Any, int], dict] | None = None
    splines: bool = False
    class_weighted: bool = True
    unweighted: dict = field(default_factory=dict)
    threads_param: str | None = None
    margin: Callable[[Any, Any], np.ndarray] | None = None
    package: str | None = None
    requires: tuple[str, ...] = ()
    extra: str | None = None
    kinds: tuple[str, ...] = ("scikitlearn",)

    @property
    def tunable(self) -> bool:
        return self.search_space is not None

    def owns(self, model) -> bool:
        """Whether `model` is this family's estimator (its module is loaded if `model` is one)."""
        module, _, cls = self.estimator_class.rpartition(".")
        loaded = sys.modules.get(module)
        return loaded is not None and isinstance(model, getattr(loaded, cls))

    def installed(self) -> bool:
        """Whether its model library can be imported (checked without importing it)."""
        if self.package is None:
            return True
        try:
            return importlib.util.find_spec(self.package) is not None
        except (ImportError, ValueError):  # a broken or half-removed installation
            return False

    def install_hint(self) -> str:
        how = f"pip install 'leadscore[{self.extra}]'" if self.extra else "pip install leadscore"
        return f"candidate {self.name!r} needs the {self.package} package, which is not installed: {how}"

    def estimator(self, y_train: np.ndarray, seed: int, params: dict | None = None, *,
                  threads: int | None = None, weighted: bool = True):
        """The unfitted estimator: the family's defaults for these labels, then `params`, then
        `threads` (when given and the family uses threads), then its weighting switched off
        unless `weighted` (even if `params` set it)."""
        y_train = np.asarray(y_train)
        estimator = self.make(y_train, seed, threads_for(len(y_train)))
        estimator.set_params(**(params or {}))
        if threads is not None and self.threads_param is not None:
            estimator.set_params(**{self.threads_param: threads})
        if not weighted and self.unweighted:
            estimator.set_params(**self.unweighted)
        return estimator


# The families import ModelFamily from here, so they are imported after it is defined.
from leadscore_assets.lib.modelling.families import (  # noqa: E402
    catboost,
    dummy,
    lightgbm,
    logistic_regression,
    random_forest,
    spline_logistic,
    xgboost,
)

# The registry: a family is usable by name (in a project's `models.candidates`) once listed here.
FAMILIES: dict[str, ModelFamily] = {f.name: f for f in (
    dummy.FAMILY,
    logistic_regression.FAMILY,
    spline_logistic.FAMILY,
    random_forest.FAMILY,
    xgboost.FAMILY,
    lightgbm.FAMILY,
    catboost.FAMILY,
)}


def family(name: str) -> ModelFamily:
    """The family of candidate `name`; ValueError for a name no family has."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown candidate model {name!r} (known: {', '.join(FAMILIES)})") from None


def family_of(model) -> ModelFamily | None:
    """The family a fitted (or unfitted) estimator belongs to; None for anything else (a pipeline,
    a blend, a calibration wrapper). Families sharing an estimator type (logistic regression with
    or without splines) share everything this is used for: explainer, margin, requirements."""
    return next((f for f in FAMILIES.values() if f.owns(model)), None)


def families_in(model) -> list[ModelFamily]:
    """The families of every estimator inside `model`: through pipelines, calibration and frozen
    wrappers, and a blend's members (each once, in the order found)."""
    found: list[ModelFamily] = []

    def visit(part) -> None:
        if (fam := family_of(part)) is not None:
            if fam not in found:
                found.append(fam)
            return
        children = [step for _, step in getattr(part, "steps", [])]
        children += [c.estimator for c in getattr(part, "calibrated_classifiers_", [])]
        children += list(getattr(part, "members_", []))  # a fitted LogitBlend
        if (inner := getattr(part, "estimator", None)) is not None and not isinstance(inner, str):
            children.append(inner)  # FrozenEstimator, CalibratedClassifierCV
        for child in children:
            visit(child)

    visit(model)
    return found


def pinned(packages) -> list[str]:
    """`package==installed version` for each distribution."""
    return [f"{p}=={version(p)}" for p in packages]
