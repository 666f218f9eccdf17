"""The promotion policy: does a challenger replace the champion?

Both models are scored on the same held-out rows. A challenger is promoted when it beats the
champion by at least `min_gain` in the selection metric, or when the champion is older than
`max_champion_age_days` and the challenger reaches `near_parity_ratio` of its metric, and in
either case only while the drift guardrails hold (prediction PSI and share of drifted features).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from leadscore_assets.lib.config import PromotionSpec


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

    def as_row(self) -> dict:
        return asdict(self)


def decide(
    policy: PromotionSpec,
    challenger_metric: float,
    champion_metric: float | None,
    prediction_psi: float | None,
    feature_drift_share: float | None,
    champion_age_days: float | None,
    champion_unusable: str | None = None,
    challenger_auc: float | None = None,
) -> Decision:
    """`champion_unusable` names why the champion cannot score today's rows (e.g. the feature set
    changed): then there is nothing to compare against and the challenger takes over.
    `challenger_auc` (its best ROC-AUC on rows it was not fitted on) at or above
    `max_plausible_auc` is taken for a leaked label: never promoted unless the project says
    `accept_near_perfect`."""
    figures = dict(
        challenger_metric=challenger_metric, champion_metric=champion_metric,
        metric_gain=None if champion_metric is None else challenger_metric - champion_metric,
        prediction_psi=prediction_psi, feature_drift_share=feature_drift_share, champion_age_days=champion_age_days,
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
    aged = champion_age_days is not None and champion_age_days > policy.max_champion_age_days
    near = challenger_metric >= policy.near_parity_ratio * champion_metric
    if not beats and not (aged and near):
        why = f"gain {gain:+.4f} < min_gain {policy.min_gain}"
        if aged:
            why += f" and below {policy.near_parity_ratio:.0%} of the aged champion"
        return Decision(False, f"rejected: {why}", **figures)
    if blocked:
        return Decision(False, "rejected by drift guardrail: " + "; ".join(blocked), **figures)
    if beats:
        return Decision(True, f"promoted: gain {gain:+.4f} >= min_gain {policy.min_gain}, drift within limits", **figures)
    return Decision(
        True,
        f"promoted: champion is {champion_age_days:.0f} days old (> {policy.max_champion_age_days}) and the "
        f"challenger reaches {challenger_metric / champion_metric:.1%} of its metric",
        **figures,
    )
