"""The promotion policy: does a challenger replace the champion?

Both models are scored on the same held-out rows. A challenger is promoted when it beats the
champion by at least `min_gain` in the selection metric, or when the champion is older than
`max_champion_age_days` and the challenger reaches `near_parity_ratio` of its metric, and in
either case only while the drift guardrails hold (prediction PSI and share of drifted features).

A gain must also be credible, not a lucky draw of the held-out rows. Given both models' scores on
those rows (`held_out`), each is rescored on the same bootstrap resamples of the rows (a paired
bootstrap: what both models get right or wrong alike cancels out) and the lower end of the
`gain_confidence` interval of the gain (default 95%, two-sided, like the models' ROC-AUC
intervals) must reach `min_gain` too, either

- on the newest CRM feedback's held-out outcomes (the rows that describe the world as it is
  now: where a challenger that learnt something from the feedback shows it, while the older
  rule-labelled rows, on which both models learnt alike, can only dilute it), or
- on all held-out rows (a broad gain, e.g. a nightly retrain with no new feedback).

Feedback that is mostly noise then wins on the held-out rows by chance about as often as it
loses, but never credibly; a changed world learnt from a few hundred outcomes shows a gain on
the new outcomes far outside the noise. `gain_confidence` 0 judges on the point gain alone.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy.stats import rankdata
from sklearn.metrics import average_precision_score

from leadscore_assets.lib.project.config import PromotionSpec
from leadscore_assets.lib.evaluation.metrics import bootstrap_ci, classification_metrics
from leadscore_assets.lib.features.frame import FEEDBACK, LABEL, NEWEST_FEEDBACK, SPLIT, FeatureSet
from leadscore_assets.lib.modelling.training import split_xy

GAIN_CONFIDENCE = PromotionSpec.model_fields["gain_confidence"].default
GAIN_BOOTSTRAP_DRAWS = 1000
INTERVAL_FIGURES = ("metric_gain_low", "metric_gain_high", "feedback_gain", "feedback_gain_low", "feedback_gain_high")


def gain_confidence(policy: PromotionSpec) -> float:
    level = float(policy.gain_confidence)
    if level and not 0 < level < 1:
        raise ValueError(f"promotion.gain_confidence must be in (0, 1), or 0 to judge on the point gain, got {level}")
    return level


@dataclass(frozen=True)
class HeldOutScores:
    """Both models' probabilities on the same held-out rows, for the credible-gain rule.

    `newest_feedback` marks the rows that are held-out outcomes of the newest CRM feedback batch."""

    y: np.ndarray
    challenger: np.ndarray
    champion: np.ndarray
    newest_feedback: np.ndarray | None = None
    metric: str = "roc_auc"  # the project's selection metric
    seed: int = 0

    def __post_init__(self):
        n = len(self.y)
        if not len(self.challenger) == len(self.champion) == n or (
                self.newest_feedback is not None and len(self.newest_feedback) != n):
            raise ValueError("held-out labels, scores and feedback flags must cover the same rows")


@dataclass(frozen=True)
class GainInterval:
    """Paired bootstrap interval of challenger minus champion in the selection metric on `rows`."""

    rows: str  # e.g. "all 413 held-out rows"
    gain: float
    low: float
    high: float
    level: float

    def __str__(self) -> str:
        return f"gain {self.gain:+.4f} on {self.rows}, {self.level:.0%} interval [{self.low:+.4f}, {self.high:+.4f}]"


def _roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    """Mann-Whitney form (ties count a half), as sklearn's, without its input checks."""
    positives = int(y.sum())
    ranks = rankdata(p)
    return float((ranks[y == 1].sum() - positives * (positives + 1) / 2) / (positives * (len(y) - positives)))


def _score(metric: str, y: np.ndarray, p: np.ndarray) -> float:
    """The selection metric, higher is better (as `evaluation.selection_score`)."""
    if metric == "roc_auc":
        return _roc_auc(y, p)
    if metric == "pr_auc":
        return float(average_precision_score(y, p))
    if metric == "neg_brier":
        return -float(np.mean((p - y) ** 2))
    if metric == "neg_log_loss":
        q = np.clip(p, 1e-7, 1 - 1e-7)
        return float(np.mean(y * np.log(q) + (1 - y) * np.log(1 - q)))
    raise ValueError(f"unknown selection metric {metric!r}")


def paired_gain_interval(
    y: np.ndarray, p_challenger: np.ndarray, p_champion: np.ndarray, metric: str = "roc_auc",
    level: float = GAIN_CONFIDENCE, n_boot: int = GAIN_BOOTSTRAP_DRAWS, seed: int = 0, rows: str = "",
) -> GainInterval | None:
    """Percentile bootstrap interval of `metric(challenger) - metric(champion)` on the same rows:
    each draw resamples the rows with replacement and scores both models on that same draw.
    None when the rows do not hold both classes."""
    y = np.asarray(y).astype(int)
    a, b = np.asarray(p_challenger, dtype=float), np.asarray(p_champion, dtype=float)
    if len(y) < 2 or y.min() == y.max():
        return None
    rng = np.random.default_rng(seed)
    gains = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(y), len(y))
        yb = y[idx]
        if yb.min() == yb.max():
            continue
        gains.append(_score(metric, yb, a[idx]) - _score(metric, yb, b[idx]))
    if not gains:
        return None
    tail = (1 - level) / 2
    return GainInterval(rows or f"{len(y)} rows", _score(metric, y, a) - _score(metric, y, b),
                        float(np.quantile(gains, tail)), float(np.quantile(gains, 1 - tail)), level)


@dataclass(frozen=True)
class CredibleGain:
    """The gain's paired intervals on every held-out row and on the newest feedback's held-out outcomes."""

    overall: GainInterval | None
    feedback: GainInterval | None = None

    def vouching(self, min_gain: float) -> GainInterval | None:
        """The interval whose lower end reaches `min_gain` (the newest feedback first), if any."""
        return next((i for i in (self.feedback, self.overall) if i is not None and i.low >= min_gain), None)

    def figures(self) -> dict:
        o, f = self.overall, self.feedback
        return {"metric_gain_low": o and o.low, "metric_gain_high": o and o.high, "feedback_gain": f and f.gain,
                "feedback_gain_low": f and f.low, "feedback_gain_high": f and f.high}


def credible_gain(policy: PromotionSpec, held_out: HeldOutScores) -> CredibleGain | None:
    """The paired intervals `decide` judges a gain by; None when the policy's `gain_confidence` is 0."""
    level = gain_confidence(policy)
    if not level:
        return None
    y = np.asarray(held_out.y).astype(int)
    a, b = np.asarray(held_out.challenger, dtype=float), np.asarray(held_out.champion, dtype=float)
    kwargs = dict(metric=held_out.metric, level=level, seed=held_out.seed)
    overall = paired_gain_interval(y, a, b, rows=f"all {len(y)} held-out rows", **kwargs)
    feedback = None
    if held_out.newest_feedback is not None and (rows := np.asarray(held_out.newest_feedback, dtype=bool)).any():
        feedback = paired_gain_interval(y[rows], a[rows], b[rows],
                                        rows=f"the newest feedback's {int(rows.sum())} held-out outcomes", **kwargs)
    return CredibleGain(overall, feedback)


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str
    challenger_metric: float
    champion_metric: float | None
    metric_gain: float | None
    prediction_psi: float | None
    feature_drift_share: float | None
    champion_age_days: float | None
    # the credible-gain rule's paired bootstrap intervals (NaN when not computed): of metric_gain on
    # every held-out row, and the gain on the newest feedback's held-out outcomes with its interval
    metric_gain_low: float | None = None
    metric_gain_high: float | None = None
    feedback_gain: float | None = None
    feedback_gain_low: float | None = None
    feedback_gain_high: float | None = None

    def as_row(self) -> dict:
        row = asdict(self)
        for k in INTERVAL_FIGURES:  # float columns from the first decision row on
            row[k] = math.nan if row[k] is None else float(row[k])
        return row


def decide(
    policy: PromotionSpec,
    challenger_metric: float,
    champion_metric: float | None,
    prediction_psi: float | None,
    feature_drift_share: float | None,
    champion_age_days: float | None,
    champion_unusable: str | None = None,
    challenger_auc: float | None = None,
    held_out: HeldOutScores | None = None,
) -> Decision:
    """`champion_unusable` names why the champion cannot score today's rows (e.g. the feature set
    changed): then there is nothing to compare against and the challenger takes over.
    `challenger_auc` (its best ROC-AUC on rows it was not fitted on) at or above
    `max_plausible_auc` is taken for a leaked label: never promoted unless the project says
    `accept_near_perfect`. `held_out` (both models' scores on the held-out rows the metrics were
    computed on) makes a gain count only when it is credible (see the module docstring); without
    it the point gain decides alone."""
    credible = credible_gain(policy, held_out) if held_out is not None and champion_metric is not None else None
    figures = dict(
        challenger_metric=challenger_metric, champion_metric=champion_metric,
        metric_gain=None if champion_metric is None else challenger_metric - champion_metric,
        prediction_psi=prediction_psi, feature_drift_share=feature_drift_share, champion_age_days=champion_age_days,
        **(credible.figures() if credible else {}),
    )
    if challenger_auc is not None and challenger_auc >= policy.max_plausible_auc and not policy.accept_near_perfect:
        return Decision(
            False,
            f"rejected: ROC-AUC {challenger_auc:.4f} >= {policy.max_plausible_auc} is implausible for lead scoring "
            "(a column recorded after the outcome?); set promotion.accept_near_perfect if it is genuine",
            **figures,
        )
    if champion_unusable:
        return Decision(True, f"promoted: the champion cannot score the current rows ({champion_unusable})", **figures)
    if champion_metric is None:
        return Decision(True, "no champion yet: the first model becomes champion", **figures)
    gain = challenger_metric - champion_metric
    blocked = []
    if prediction_psi is not None and prediction_psi > policy.max_prediction_psi:
        blocked.append(f"prediction PSI {prediction_psi:.3f} > {policy.max_prediction_psi}")
    if feature_drift_share is not None and feature_drift_share > policy.max_feature_drift_share:
        blocked.append(f"feature drift share {feature_drift_share:.2f} > {policy.max_feature_drift_share}")
    beats = gain >= policy.min_gain
    # a gain the held-out rows cannot vouch for is no gain
    vouching = credible.vouching(policy.min_gain) if credible is not None else None
    doubtful = beats and credible is not None and vouching is None
    beats = beats and not doubtful
    aged = champion_age_days is not None and champion_age_days > policy.max_champion_age_days
    near = challenger_metric >= policy.near_parity_ratio * champion_metric
    if not beats and not (aged and near):
        if doubtful:
            intervals = "; ".join(str(i) for i in (credible.feedback, credible.overall) if i is not None)
            why = (f"gain {gain:+.4f} >= min_gain {policy.min_gain} is not credible: no paired bootstrap interval "
                   f"of it reaches min_gain ({intervals or 'no held-out rows with both classes'})")
        else:
            why = f"gain {gain:+.4f} < min_gain {policy.min_gain}"
        if aged:
            why += f" and below {policy.near_parity_ratio:.0%} of the aged champion"
        return Decision(False, f"rejected: {why}", **figures)
    if blocked:
        return Decision(False, "rejected by drift guardrail: " + "; ".join(blocked), **figures)
    if beats:
        vouched = f", credible ({vouching})" if vouching is not None else ""
        return Decision(
            True, f"promoted: gain {gain:+.4f} >= min_gain {policy.min_gain}{vouched}, drift within limits", **figures)
    return Decision(
        True,
        f"promoted: champion is {champion_age_days:.0f} days old (> {policy.max_champion_age_days}) and the "
        f"challenger reaches {challenger_metric / champion_metric:.1%} of its metric",
        **figures,
    )


@dataclass
class HeldOutComparison:
    """Both models on the same held-out rows: the figures the decision and the asset page use."""

    metrics: dict[str, dict]  # "challenger", "champion", "<who>_newest_feedback" -> classification metrics
    intervals: dict[str, dict]  # who -> bootstrap ROC-AUC interval
    held_out: HeldOutScores | None  # both models' scores (None without a usable champion)
    rows: int
    feedback_rows: dict[str, int]  # CRM-feedback rows trained on and held out


def compare_on_held_out(frame: pd.DataFrame, fs: FeatureSet, challenger, champion, metric: str,
                        seed: int, p_challenger: np.ndarray | None = None) -> HeldOutComparison:
    """Score the challenger (and the champion, when there is a usable one) on the test split, and
    both on the newest CRM feedback's held-out outcomes when they hold both classes.
    `p_challenger`: the challenger's P(positive) on the test rows, when the caller has them."""
    x_test, y_test = split_xy(frame, fs, "test")
    if p_challenger is None:
        p_challenger = challenger.predict_proba(x_test)[:, 1]
    metrics = {"challenger": classification_metrics(y_test, p_challenger)}
    intervals = {"challenger": bootstrap_ci(y_test, p_challenger, ("roc_auc",), seed=seed)}
    fed = frame[FEEDBACK].astype(bool)
    feedback_rows = {"feedback_rows_trained_on": int((fed & frame[SPLIT].isin(["train", "validation"])).sum()),
                     "feedback_rows_held_out": int((fed & (frame[SPLIT] == "test")).sum())}
    held_out = None
    if champion is not None:
        p_champion = champion.predict_proba(x_test)[:, 1]
        held_out = HeldOutScores(
            y_test, p_challenger, p_champion, metric=metric, seed=seed,
            newest_feedback=frame.loc[frame[SPLIT] == "test", NEWEST_FEEDBACK].to_numpy().astype(bool))
        metrics["champion"] = classification_metrics(y_test, p_champion)
        intervals["champion"] = bootstrap_ci(y_test, p_champion, ("roc_auc",), seed=seed)
        newest = frame[frame[NEWEST_FEEDBACK] & frame[LABEL].notna() & (frame[SPLIT] == "test")]
        if newest[LABEL].nunique() == 2:
            y_new = newest[LABEL].to_numpy().astype(int)
            for who, model in (("challenger", challenger), ("champion", champion)):
                metrics[f"{who}_newest_feedback"] = classification_metrics(
                    y_new, model.predict_proba(newest[fs.columns])[:, 1])
    return HeldOutComparison(metrics, intervals, held_out, int(len(y_test)), feedback_rows)


def roc_auc_intervals(comparison: HeldOutComparison) -> dict[str, str | None]:
    """`<who>_roc_auc_95ci` of both models as text ("0.7012 - 0.7534"), None where not computed."""
    return {f"{who}_roc_auc_95ci": (f"{ci['roc_auc'][0]:.4f} - {ci['roc_auc'][1]:.4f}" if "roc_auc" in ci else None)
            for who in ("challenger", "champion") for ci in [comparison.intervals.get(who, {})]}


def decision_row(decision: Decision, comparison: HeldOutComparison, metric: str, **context) -> dict:
    """One `model_decisions` row: `context` (when, which run, which versions), the decision's
    figures and the comparison."""
    row = {**context, "decision": "promoted" if decision.promote else "rejected", "selection_metric": metric,
           "held_out_rows": comparison.rows, **decision.as_row(), **comparison.feedback_rows,
           **roc_auc_intervals(comparison),
           "comparison": str({k: {m: round(v, 4) for m, v in d.items() if m in ("roc_auc", "pr_auc", "brier")}
                              for k, d in comparison.metrics.items()})}
    del row["promote"]
    return row
