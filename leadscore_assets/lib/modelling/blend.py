"""A weighted blend of candidates in log-odds, chosen greedily on out-of-fold predictions.

On small tables the best single candidate leaves signal on the table that another one holds:
AutoML libraries win mostly by ensembling (AutoGluon's weighted ensemble is Caruana et al.'s
greedy ensemble selection). The blend here is the same selection, with one design choice so that
everything users rely on keeps working: members are averaged in log-odds, not in probability.
Then the blend's margin is exactly the weighted sum of its members' margins, so SHAP reasons
stay exact and additive (explain sums each member's contributions with its weight), calibration
and the threshold apply to the blend as to any pipeline, and the served model is one sklearn
pipeline (the feature columns passed through -> LogitBlend of whole candidate pipelines, each
with its own preprocessing) logged like every other. Candidates judged together hold one fitted
preprocessing object (training.SharedPreprocessing), and a pickle keeps that sharing: the blend
then encodes a row once for all its members (`margin`'s `encoded`), not once per member.

Only members whose family explains in log-odds can join (`ModelFamily.blendable`: logistic
regression with or without splines and the boosted trees; not the random forest, whose trees
hold probabilities).
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar

import numpy as np
import pandas as pd
from scipy.special import expit, logit
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.metrics import roc_auc_score

from leadscore_assets.lib.modelling.families import family_of

BLEND = "blend"
ROUNDS = 25  # greedy additions (with replacement): weights in steps of 1/25
EPS = 1e-12  # probabilities are clipped this far from 0 and 1 before taking log-odds


def log_odds(p: np.ndarray) -> np.ndarray:
    return logit(np.clip(np.asarray(p, dtype=float), EPS, 1 - EPS))


_SHARED_WORK: ContextVar[dict | None] = ContextVar("leadscore_shared_work", default=None)
_MARGIN = object()  # the key part that marks a member's margin (not an encoding) in a memo


@contextmanager
def shared_work():
    """Inside the block, one set of rows is both predicted and explained (`Scorer.score`): what a
    blend's members make of those rows (each fitted preprocessing's encoding, each member's
    margin) is computed once for the probability and the reasons together, not once for each.
    Per thread (a context variable): a served model's concurrent requests never share."""
    token = _SHARED_WORK.set({})
    try:
        yield
    finally:
        _SHARED_WORK.reset(token)


def work_memo() -> dict:
    """The memo of the enclosing `shared_work` block, else a fresh one (shared within one call)."""
    memo = _SHARED_WORK.get()
    return {} if memo is None else memo


def known_margin(memo: dict | None, model) -> np.ndarray | None:
    """The margin `margin` already computed for the fitted estimator `model` on the memo's rows."""
    return None if memo is None else memo.get((id(_MARGIN), id(model)))


def margin(model, x, memo: dict | None = None) -> np.ndarray:
    """A member's raw log-odds, read from the model itself: recovering it from a probability loses
    precision past |log-odds| ~ 30, where SHAP contributions (computed on the margin) still add up.
    A pipeline's is its last step's margin on what the steps before it make of `x`; given
    `memo` (a dict kept for one `x`), steps that are the very objects another member already
    ran on `x` are not run again, and a boosted model's margin is kept there for its explanation."""
    if hasattr(model, "steps"):
        head = [step for _, step in model.steps[:-1]]
        return margin(model.steps[-1][1], computed_once(memo, head, lambda: model[:-1].transform(x)), memo)
    fam = family_of(model)
    if fam is not None and fam.margin is not None:  # boosted trees: their raw score
        return computed_once(memo, [_MARGIN, model], lambda: fam.margin(model, x))
    if hasattr(model, "decision_function"):
        return np.asarray(model.decision_function(x), dtype=float)
    return log_odds(model.predict_proba(x)[:, 1])


def computed_once(memo: dict | None, parts: list, compute):
    """`compute()`, or what it gave earlier for these very `parts` (the same objects: the fitted
    steps of an encoding, or a model and the margin marker): `memo` is kept for one set of rows,
    so members sharing a fitted preprocessing encode them once and a margin is predicted once. No
    memo, no sharing: `compute()` every time."""
    if memo is None:
        return compute()
    key = tuple(id(part) for part in parts)
    if key not in memo:
        memo[key] = compute()
    return memo[key]


class LogitBlend(ClassifierMixin, BaseEstimator):
    """P(positive) = sigmoid(sum_i weight_i * log-odds_i(x)): members fitted on the same rows."""

    def __init__(self, members=(), weights=()):
        self.members = members
        self.weights = weights

    def fit(self, x, y):
        self._check_weights()
        return self.with_fitted([clone(m).fit(x, y) for m in self.members])

    def with_fitted(self, members: list) -> LogitBlend:
        """Fitted with `members` (already fitted, one per member, in order) as they are."""
        self._check_weights()
        self.members_ = list(members)
        self.weights_ = np.asarray(self.weights, dtype=float) / float(np.sum(self.weights))
        self.classes_ = np.array([0, 1])
        return self

    def _check_weights(self) -> None:
        if len(self.members) != len(self.weights) or not len(self.members):
            raise ValueError("LogitBlend needs one weight per member and at least one member")

    def decision_function(self, x) -> np.ndarray:
        memo = work_memo()  # members sharing a fitted preprocessing encode `x` once
        return sum(w * margin(m, x, memo) for w, m in zip(self.weights_, self.members_))

    def predict_proba(self, x) -> np.ndarray:
        p = expit(self.decision_function(x))
        return np.column_stack([1 - p, p])

    def predict(self, x) -> np.ndarray:
        return (self.decision_function(x) > 0).astype(int)


class FoldBag(LogitBlend):
    """The K models cross-validation fits, one per fold of `cv`, averaged in log-odds.

    Under CV selection every candidate is fitted K times anyway, to be judged out of fold. Keeping
    those K models as the model (bagging, as AutoGluon does) instead of fitting once more on all
    rows costs no fit, averages away part of each fit's variance, and keeps what was judged: the
    out-of-fold scores (`held_out_margins`) are this model's own, so calibration and the threshold
    are chosen on them without fitting anything again. A LogitBlend with equal weights, so SHAP
    reasons stay exact (explain sums the members') and it serves like any blend."""

    def __init__(self, estimator=None, cv=None):
        self.estimator = estimator
        self.cv = cv

    def fit(self, x, y):
        y = np.asarray(y)
        members = [clone(self.estimator).fit(x.iloc[rows], y[rows]) for rows, _ in self.cv.split(x, y)]
        return self.with_fitted(members, y)

    def with_fitted(self, members: list, y: np.ndarray) -> FoldBag:
        """Fitted with `members`, the fold models in `cv.split` order, already fitted on labels `y`."""
        if len(members) != self.cv.get_n_splits():
            raise ValueError(f"FoldBag needs one model per fold: {len(members)} for {self.cv.get_n_splits()} folds")
        self.members_ = list(members)
        self.weights_ = np.full(len(members), 1.0 / len(members))
        self.classes_ = np.array([0, 1])
        self.fit_labels_ = _digest(y)
        return self

    def held_out_margins(self, x, y) -> np.ndarray:
        """Each row's log-odds from the fold model that did not learn from it: `x`, `y` must be the
        rows the bag was fitted on, in the same order (the folds are recomputed from them)."""
        y = np.asarray(y)
        if _digest(y) != self.fit_labels_:
            raise ValueError("held_out_margins needs the rows the FoldBag was fitted on, in the same order")
        out = np.empty(len(y))
        for member, (_, rows) in zip(self.members_, self.cv.split(x, y)):
            out[rows] = margin(member, x.iloc[rows])
        return out


def _digest(y) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(np.asarray(y).astype(np.int8)).tobytes()).hexdigest()


def fold_bag_of(pipeline) -> FoldBag | None:
    """The FoldBag a candidate pipeline ends in (passthrough -> FoldBag), if any."""
    last = pipeline.steps[-1][1] if hasattr(pipeline, "steps") else None
    return last if isinstance(last, FoldBag) else None


def passthrough(features: list[str]):
    """A step that only passes the feature columns through, as a frame: the preprocessing of a
    pipeline whose members each preprocess for themselves (a blend, a bag)."""
    from sklearn.compose import ColumnTransformer

    step = ColumnTransformer([("features", "passthrough", list(features))], verbose_feature_names_out=False)
    return step.set_output(transform="pandas")


def bag_pipeline(template, features: list[str], cv):
    """An unfitted Pipeline(passthrough -> FoldBag of `template`, one per fold of `cv`)."""
    from sklearn.pipeline import Pipeline

    return Pipeline([("preprocess", passthrough(features)), ("model", FoldBag(template, cv))])


def greedy_weights(y: np.ndarray, predictions: dict[str, np.ndarray], rounds: int = ROUNDS) -> tuple[dict[str, float], float]:
    """Caruana's ensemble selection on held-out probabilities: start from the best candidate,
    then repeatedly add (with replacement) whichever candidate most raises the ROC-AUC of the
    averaged log-odds; stop when no addition helps. Returns (weights summing to 1, that AUC)."""
    names = sorted(predictions)
    margins = {n: log_odds(predictions[n]) for n in names}
    counts = dict.fromkeys(names, 0)
    total = np.zeros(len(y))
    best_auc = -np.inf
    for _ in range(rounds):
        scored = [(roc_auc_score(y, (total + margins[n]) / (sum(counts.values()) + 1)), n) for n in names]
        auc, pick = max(scored, key=lambda s: (s[0], -names.index(s[1])))
        if auc <= best_auc:
            break
        best_auc, counts[pick], total = auc, counts[pick] + 1, total + margins[pick]
    used = sum(counts.values())
    return {n: c / used for n, c in counts.items() if c}, float(best_auc)


def blend_pipeline(pipelines: dict[str, object], weights: dict[str, float], features: list[str]):
    """An unfitted Pipeline(preprocess -> LogitBlend) from candidate pipelines (cloned with their
    tuned parameters). The preprocess step only passes the feature columns through, as a frame, so
    the pipeline has the shape every other candidate has; each member preprocesses for itself."""
    from sklearn.pipeline import Pipeline

    names = [n for n in pipelines if n in weights]
    return Pipeline([("preprocess", passthrough(features)),
                     ("model", LogitBlend(members=[clone(pipelines[n]) for n in names],
                                          weights=[weights[n] for n in names]))])


def fitted_blend_pipeline(pipelines: dict[str, object], weights: dict[str, float], features: list[str],
                          x: pd.DataFrame):
    """`blend_pipeline(pipelines, weights, features).fit(x, y)` from candidate pipelines already
    fitted on `x`, without fitting them again: the members are those very pipelines, the ones whose
    held-out predictions chose the weights (at 472,871 sessions refitting them took 10 s)."""
    pipeline = blend_pipeline(pipelines, weights, features)
    pipeline.steps[0][1].fit(x)  # the passthrough of the feature columns
    pipeline.steps[-1][1].with_fitted([pipelines[n] for n in pipelines if n in weights])
    return pipeline


def fitted_bag_pipeline(template, members: list, features: list[str], cv, x: pd.DataFrame, y: np.ndarray):
    """`bag_pipeline(template, features, cv).fit(x, y)` from fold models already fitted (in
    `cv.split(x, y)` order), without fitting them again."""
    pipeline = bag_pipeline(template, features, cv)
    pipeline.steps[0][1].fit(x)
    pipeline.steps[-1][1].with_fitted(members, y)
    return pipeline


def fitted_blend_of_bags(pipelines: dict[str, object], weights: dict[str, float], features: list[str],
                         x: pd.DataFrame, y: np.ndarray):
    """The blend of candidates that are fold bags on the same folds, as one bag: its fold-k model
    is the blend of the candidates' fold-k models. Sums and averages commute, so its margin is
    the weighted blend of the bags' margins, and its out-of-fold margins are the blend of theirs
    (the held-out predictions that chose the weights)."""
    bags = {n: fold_bag_of(p) for n, p in pipelines.items() if n in weights}
    cv = next(iter(bags.values())).cv
    template = blend_pipeline({n: b.estimator for n, b in bags.items()}, weights, features)
    folds = [fitted_blend_pipeline({n: b.members_[k] for n, b in bags.items()}, weights, features, x)
             for k in range(cv.get_n_splits())]
    return fitted_bag_pipeline(template, folds, features, cv, x, y)


def describe(weights: dict[str, float]) -> str:
    """`lightgbm 0.56 + logistic_regression 0.44`: what the leaderboard and model card show."""
    return " + ".join(f"{n} {w:.2f}" for n, w in sorted(weights.items(), key=lambda kv: -kv[1]))


def as_frame(weights: dict[str, float]) -> pd.DataFrame:
    return pd.DataFrame({"member": list(weights), "weight": list(weights.values())})
