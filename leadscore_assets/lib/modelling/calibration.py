"""Probability calibration on held-out rows, applied only when it measurably helps.

Class-weighted candidates (see training.py) rank leads well but inflate probabilities, and
sales teams read scores as chances of converting. A calibrator maps the trained pipeline's
scores to observed rates. It is fitted on validation rows (never training rows, whose
scores are optimistic) around a frozen pipeline, so the model itself is not retrained.

The choice is made honestly: the calibration rows are split in two, calibrators are fitted
on one half and judged by Brier score on the other, and a calibrator is kept only if it
beats the uncalibrated pipeline there. The winner is then refitted on all calibration rows.
Isotonic regression is only considered on large calibration sets, as it overfits small ones.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV, calibration_curve
from sklearn.frozen import FrozenEstimator
from sklearn.metrics import brier_score_loss
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import train_test_split

if TYPE_CHECKING:  # drawn only by the evaluation: a scoring process never imports matplotlib
    from matplotlib.figure import Figure


METHODS = ("auto", "sigmoid", "isotonic", "none")
# Isotonic regression is a step function: it ties leads the model ranked apart, which costs
# ranking (ROC-AUC, lift) on small calibration sets even where it wins on Brier. Below this many
# calibration rows only the monotone-and-smooth sigmoid is considered.
MIN_ISOTONIC_ROWS = 5000
# Fewer conversions (or non-conversions) than this and a calibrator can neither be fitted
# nor judged reliably on half of the rows.
MIN_ROWS_PER_CLASS = 10
# With a frozen estimator the folds only decide which rows each no-op "fit" sees: every row
# is predicted by the same pipeline and the calibrator is fitted on all of them. Two folds
# is the smallest valid split.
_FROZEN_FOLDS = 2


@dataclass
class CalibrationResult:
    pipeline: object  # the pipeline to register: calibrated if calibration improved Brier, else the original
    method: str  # "isotonic" | "sigmoid" | "none"
    brier_before: float  # uncalibrated, on the evaluation half of the calibration rows
    brier_after: float  # chosen method, on the same evaluation half (fitted on the other half)
    calibration_rows: int
    reason: str
    brier_by_method: dict[str, float] = field(default_factory=dict)  # every method compared, incl. "none"
    calibrated_p: np.ndarray | None = None  # `pipeline`'s P(positive) on the calibration rows


def positive_probability(classifier, x: pd.DataFrame) -> np.ndarray:
    return np.asarray(classifier.predict_proba(x))[:, 1]


def candidate_methods(method: str, rows: int, min_isotonic_rows: int) -> tuple[list[str], str]:
    """Calibration methods worth comparing for a requested method and calibration set size."""
    if method == "none":
        return [], "calibration not requested"
    isotonic_allowed = rows >= min_isotonic_rows
    too_small = f"isotonic not considered: {rows} calibration rows < min_isotonic_rows={min_isotonic_rows}"
    if method == "sigmoid":
        return ["sigmoid"], "sigmoid requested"
    if method == "isotonic":
        if isotonic_allowed:
            return ["isotonic"], "isotonic requested"
        return ["sigmoid"], f"isotonic requested but {too_small}; falling back to sigmoid"
    if isotonic_allowed:
        return ["sigmoid", "isotonic"], "auto: sigmoid and isotonic compared"
    return ["sigmoid"], f"auto: {too_small}"


def probability_and_response(pipeline, x: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """`pipeline`'s P(positive) on `x` and its response, what a calibrator reads from it as
    CalibratedClassifierCV reads it: its decision function when it has one (logistic models,
    blends), else that same P(positive), predicted once."""
    p = positive_probability(pipeline, x)
    if hasattr(pipeline, "decision_function"):
        return p, np.asarray(pipeline.decision_function(x), dtype=float)
    return p, p


def calibrate(
    pipeline,
    x_cal: pd.DataFrame,
    y_cal: np.ndarray,
    method: str = "auto",
    min_isotonic_rows: int = MIN_ISOTONIC_ROWS,
    seed: int = 0,
) -> CalibrationResult:
    """Calibrate a fitted pipeline on held-out rows if, and only if, that improves Brier.

    `x_cal`/`y_cal` must be rows the pipeline was not trained on (the validation split).
    They are split (stratified, seeded) into a fitting half and an evaluation half; each
    candidate method is fitted on the first and scored on the second against the
    uncalibrated pipeline. The best candidate is kept only if its Brier is strictly lower,
    and is then refitted on all calibration rows. The returned pipeline is either the
    original one or a `CalibratedClassifierCV` wrapping it (predict_proba on readable rows,
    picklable). The pipeline predicts the calibration rows once (its response and its
    probabilities); every calibrator is fitted and judged on those numbers.
    """
    if method not in METHODS:
        raise ValueError(f"unknown calibration method {method!r}; expected one of {METHODS}")
    y_cal = np.asarray(y_cal).astype(int)
    if len(x_cal) != len(y_cal):
        raise ValueError(f"x_cal has {len(x_cal)} rows but y_cal has {len(y_cal)}")
    if not len(y_cal):
        return calibrate_scores(pipeline, np.zeros(0), np.zeros(0), y_cal, method, min_isotonic_rows, seed)
    p, response = probability_and_response(pipeline, x_cal)
    return calibrate_scores(pipeline, response, p, y_cal, method, min_isotonic_rows, seed)


def _calibrator_on(scores: np.ndarray, y: np.ndarray, method: str) -> CalibratedClassifierCV:
    """A `method` calibrator fitted on `scores` (a model's response): predict_proba(scores)."""
    scores = np.asarray(scores, dtype=float).reshape(-1, 1)
    return CalibratedClassifierCV(FrozenEstimator(_ScoreColumn().fit(scores, y)), method=method,
                                  cv=_FROZEN_FOLDS).fit(scores, y)


def calibrate_scores(
    pipeline, response: np.ndarray, p: np.ndarray, y_cal: np.ndarray, method: str = "auto",
    min_isotonic_rows: int = MIN_ISOTONIC_ROWS, seed: int = 0,
) -> CalibrationResult:
    """`calibrate` from the pipeline's response and P(positive) (`probability_and_response`) `p` on the
    calibration rows `y_cal` labels: nothing is predicted here."""
    y_cal = np.asarray(y_cal).astype(int)
    rows = len(y_cal)
    class_counts = np.bincount(y_cal, minlength=2)
    if len(class_counts) > 2:
        raise ValueError("calibration labels must be binary 0/1")

    if class_counts.min() < MIN_ROWS_PER_CLASS:
        brier = float(brier_score_loss(y_cal, p, labels=[0, 1])) if rows else float("nan")
        return CalibrationResult(
            pipeline=pipeline, method="none", brier_before=brier, brier_after=brier, calibration_rows=rows,
            reason=(
                f"not calibrated: {class_counts[1]} positive and {class_counts[0]} negative calibration rows; "
                f"at least {MIN_ROWS_PER_CLASS} of each are needed to fit and judge a calibrator "
                "(Brier measured on all calibration rows)"
            ),
            brier_by_method={"none": brier}, calibrated_p=np.asarray(p, dtype=float),
        )

    candidates, considered = candidate_methods(method, rows, min_isotonic_rows)
    fit_idx, eval_idx = train_test_split(np.arange(rows), test_size=0.5, stratify=y_cal, random_state=seed)
    brier_by_method = {"none": float(brier_score_loss(y_cal[eval_idx], p[eval_idx]))}
    for name in candidates:
        calibrator = _calibrator_on(response[fit_idx], y_cal[fit_idx], name)
        p_eval = calibrator.predict_proba(response[eval_idx].reshape(-1, 1))[:, 1]
        brier_by_method[name] = float(brier_score_loss(y_cal[eval_idx], p_eval))

    best = min(brier_by_method, key=brier_by_method.get)  # dicts keep order: ties go to "none"
    before, after = brier_by_method["none"], brier_by_method[best]
    compared = ", ".join(f"{k} {v:.5f}" for k, v in brier_by_method.items())
    judged_on = f"Brier on {len(eval_idx)} held-out calibration rows ({compared}), calibrators fitted on {len(fit_idx)}"
    if best == "none":
        reason = f"{considered}; no calibrator improved {judged_on}" if candidates else considered
        return CalibrationResult(pipeline, "none", before, after, rows, reason, brier_by_method,
                                 np.asarray(p, dtype=float))

    final, calibrated_p = calibrated_on_scores(pipeline, response, y_cal, best)
    reason = f"{considered}; {best} lowered {judged_on}; refitted on all {rows} calibration rows"
    return CalibrationResult(final, best, before, after, rows, reason, brier_by_method, calibrated_p)


def calibrate_out_of_fold(
    pipeline, y: np.ndarray, p_oof: np.ndarray, response_oof: np.ndarray, method: str = "auto",
    min_isotonic_rows: int = MIN_ISOTONIC_ROWS, seed: int = 0,
) -> tuple[CalibrationResult, np.ndarray]:
    """Calibration for a model chosen by cross-validation (fitted on all rows, or a fold bag).

    Its own scores on its rows are optimistic, so calibrators are judged, as in `calibrate`, on
    the out-of-fold probabilities `p_oof`. When one helps, it is fitted on the out-of-fold
    response `response_oof` (`probability_and_response` of each fold's model on its held-out rows) around
    the model as it is: what `CalibratedClassifierCV(ensemble=False)` fits, without fitting the
    folds and the model again. Returns the result and the calibrated out-of-fold probabilities
    (for choosing a threshold on rows no model was fitted on)."""
    scores = pd.DataFrame({"p": np.asarray(p_oof, dtype=float)})
    y = np.asarray(y).astype(int)
    judged = calibrate(ProbabilityPassthrough().fit(scores, y), scores, y, method, min_isotonic_rows, seed)
    reason = f"{judged.reason} (judged on {len(y)} out-of-fold probabilities)"
    if judged.method == "none":
        return CalibrationResult(pipeline, "none", judged.brier_before, judged.brier_after, len(y), reason,
                                 judged.brier_by_method), judged.calibrated_p
    final, _ = calibrated_on_scores(pipeline, response_oof, y, judged.method)
    return CalibrationResult(final, judged.method, judged.brier_before, judged.brier_after, len(y), reason,
                             judged.brier_by_method), judged.calibrated_p


class ProbabilityPassthrough(ClassifierMixin, BaseEstimator):
    """Identity classifier: its single input column is already P(converts).

    Lets `calibrate` judge calibrators on precomputed out-of-fold probabilities when no one
    classifier produced them.
    """

    def fit(self, X, y):
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X):
        p = np.asarray(X, dtype=float).reshape(-1)
        return np.column_stack([1 - p, p])

    def predict(self, X):
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)


class _ScoreColumn(ClassifierMixin, BaseEstimator):
    """A classifier whose decision function is its single input column: lets CalibratedClassifierCV
    fit a calibrator on scores computed elsewhere."""

    def fit(self, x, y):
        self.classes_ = np.array([0, 1])
        return self

    def decision_function(self, x):
        return np.asarray(x, dtype=float).reshape(-1)

    def predict(self, x):
        return (self.decision_function(x) > 0).astype(int)


def calibrated_on_scores(pipeline, response: np.ndarray, y: np.ndarray, method: str
                         ) -> tuple[CalibratedClassifierCV, np.ndarray]:
    """`pipeline`, fitted and frozen, behind a `method` calibrator fitted on `response`: its
    response (`probability_and_response`) on the rows `y` labels, rows it did not learn from (validation
    rows, or a fold bag's out-of-fold margins). The same object CalibratedClassifierCV builds
    around a frozen pipeline (one calibrated classifier whose estimator is the pipeline), without
    predicting again; with its calibrated P(positive) on those rows."""
    y = np.asarray(y).astype(int)
    calibrated = _calibrator_on(response, y, method)
    p = calibrated.predict_proba(np.asarray(response, dtype=float).reshape(-1, 1))[:, 1]
    frozen = FrozenEstimator(pipeline)
    calibrated.estimator = calibrated.calibrated_classifiers_[0].estimator = frozen
    for name in ("n_features_in_", "feature_names_in_"):
        if hasattr(pipeline, name):
            setattr(calibrated, name, getattr(pipeline, name))
        elif hasattr(calibrated, name):
            delattr(calibrated, name)
    return calibrated, p


def reliability_plot(y: np.ndarray, curves: dict[str, np.ndarray], title: str) -> Figure:
    """Observed conversion rate against mean predicted probability, one line per curve.

    Bins are quantiles of each probability vector, so every point averages a similar
    number of leads even when scores crowd near the base rate.
    """
    y = np.asarray(y).astype(int)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 4), dpi=80)
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfectly calibrated")
    n_bins = int(max(2, min(10, len(y) // 20)))
    for name, p in curves.items():
        p = np.asarray(p, dtype=float)
        observed, predicted = calibration_curve(y, p, n_bins=n_bins, strategy="quantile")
        ax.plot(predicted, observed, "o-", label=f"{name} (Brier {brier_score_loss(y, p, labels=[0, 1]):.4f})")
    ax.set(xlabel="mean predicted probability", ylabel="observed conversion rate", title=title)
    ax.set(xlim=(0, 1), ylim=(0, 1))
    ax.legend(loc="upper left", fontsize="small")
    fig.tight_layout()
    return fig


def raw_and_calibrated(model, x: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """P(positive) on `x` of the pipeline inside `model` (`uncalibrated`) and of `model` itself,
    from one prediction of the pipeline: a calibrated model's calibrator is applied to the
    pipeline's response (`probability_and_response`) by scikit-learn's own calibrated classifier,
    its estimator swapped for the response column, so the figures are the ones
    `model.predict_proba(x)` gives (the tests hold them equal) at half the cost on a blend."""
    inner = uncalibrated(model)
    if inner is model:
        p = positive_probability(model, x)
        return p, p
    if len(model.calibrated_classifiers_) != 1:  # an ensemble of fold calibrators: each predicts for itself
        return positive_probability(inner, x), positive_probability(model, x)
    p_raw, response = probability_and_response(inner, x)
    on_response = copy.copy(model.calibrated_classifiers_[0])
    on_response.estimator = _ScoreColumn().fit(None, None)
    return p_raw, on_response.predict_proba(np.asarray(response, dtype=float).reshape(-1, 1))[:, 1]


def uncalibrated(model):
    """The fitted preprocessing + model pipeline inside a CalibratedClassifierCV(FrozenEstimator)."""
    if hasattr(model, "calibrated_classifiers_"):
        inner = model.calibrated_classifiers_[0].estimator
        return getattr(inner, "estimator", inner)
    return model
