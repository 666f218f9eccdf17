"""Business targets next to measured figures: which of a project's targets the test rows meet.

A project YAML lists `targets:` by metric name, each with a `min` and/or `max` (see
`TargetSpec` in lib/project/config.py). Names are those of `lib.evaluation.classification_metrics`
(roc_auc, f1, precision, recall, ...) and, for the revenue stage, those of
`lib.revenue.regression_metrics` prefixed `revenue_` (revenue_rmse, revenue_mae, revenue_r2,
revenue_mape). Targets use the metric's own unit: `revenue_mape` is a fraction (0.30 = 30%).
Bounds are inclusive: `min: 0.40` is met by 0.40.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd

from leadscore_assets.lib.project.config import TargetSpec

COLUMNS = ["metric", "target", "measured", "met"]
REVENUE_PREFIX = "revenue_"


def _number(value: float) -> str:
    """20 -> '20', 0.4 -> '0.40', 0.755 -> '0.755', 1500.5 -> '1500.5'."""
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.2f}" if round(value, 2) == value else f"{value:g}"


def target_text(spec: TargetSpec) -> str:
    """'>= 0.40', '<= 20', '>= 0.5 and <= 0.9', or 'no bound' when neither is set."""
    parts = []
    if spec.min is not None:
        parts.append(f">= {_number(spec.min)}")
    if spec.max is not None:
        parts.append(f"<= {_number(spec.max)}")
    return " and ".join(parts) or "no bound"


def _rounded(value: float) -> float:
    """Four decimals below 1 (rates, AUC, R^2, MAPE as a fraction), two up to 1000 (currency), one above."""
    return round(value, 4) if abs(value) < 1 else round(value, 2) if abs(value) < 1000 else round(value, 1)


def _measured(measured: Mapping[str, float], metric: str) -> float | None:
    value = measured.get(metric)
    if value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _spec(spec: TargetSpec | Mapping) -> TargetSpec:
    return spec if isinstance(spec, TargetSpec) else TargetSpec.model_validate(spec)


def _state(met) -> bool | None:
    return None if met is None or pd.isna(met) else bool(met)


def compare_targets(targets: Mapping[str, TargetSpec], measured: Mapping[str, float]) -> pd.DataFrame:
    """One row per target, in the order configured: metric, target (text), measured (rounded,
    None when the metric was not measured or is not finite) and met (bool, None when not measured).

    `met` is decided on the unrounded value, with inclusive bounds.
    """
    rows = []
    for metric, spec in targets.items():
        spec = _spec(spec)
        value = _measured(measured, metric)
        met = None
        if value is not None:
            met = (spec.min is None or value >= spec.min) and (spec.max is None or value <= spec.max)
        rows.append({
            "metric": metric,
            "target": target_text(spec),
            "measured": None if value is None else _rounded(value),
            "met": met,
        })
    # Built column by column as objects so that "not measured" stays None (not NaN) in both columns.
    return pd.DataFrame({c: pd.Series([r[c] for r in rows], dtype=object) for c in COLUMNS}, columns=COLUMNS)


def measured_figures(
    classification: Mapping[str, float] | None = None, revenue: Mapping[str, float] | None = None,
    classification_prefix: str = "",
) -> dict[str, float]:
    """Figures keyed by target metric names: classification metrics as they are (keys starting
    with `classification_prefix`, e.g. "test_" for evaluation_report columns, with it removed;
    others ignored when a prefix is given) and revenue metrics prefixed `revenue_`."""
    out = {}
    for k, v in (classification or {}).items():
        if k.startswith(classification_prefix):
            out[k[len(classification_prefix):]] = v
    out.update({f"{REVENUE_PREFIX}{k}": v for k, v in (revenue or {}).items()})
    return out


def targets_met(df: pd.DataFrame) -> int:
    """How many targets the measured figures meet (unmeasured ones do not count)."""
    return sum(_state(m) is True for m in df["met"])


def targets_markdown(df: pd.DataFrame, targets: Mapping[str, TargetSpec] | None = None) -> str:
    """A markdown table (met shown as yes / no / not measured) and a summary line; with
    `targets`, their notes are listed below the table."""
    if not len(df):
        return "_no targets configured_"
    shown = pd.DataFrame({
        "metric": df["metric"],
        "target": df["target"],
        "measured": ["-" if v is None or pd.isna(v) else f"{v:g}" for v in df["measured"]],
        "met": [{None: "not measured", True: "yes", False: "no"}[_state(m)] for m in df["met"]],
    })
    measured = sum(_state(m) is not None for m in df["met"])
    lines = [shown.to_markdown(index=False), "", f"{targets_met(df)} of {len(df)} targets met ({measured} measured)."]
    shown_metrics = set(df["metric"])
    notes = [f"- {name}: {_spec(spec).note}" for name, spec in (targets or {}).items()
             if _spec(spec).note and name in shown_metrics]
    if notes:
        lines += ["", *notes]
    return "\n".join(lines)
