"""A model card per registered version: what the model is for, what it saw, how good it is.

What a reader opens it for comes first: the model and its headline test figures, then the
details (data, every metric, calibration, threshold, limitations)."""

from __future__ import annotations


def model_card(
    *, project: str, description: str, candidate: str, version_hint: str, label_rule: dict[str, str],
    data_window: dict[str, str], rows: dict[str, int], features: list[str], excluded: list[str],
    metrics: dict[str, float], intervals: dict[str, tuple[float, float]], calibration: dict,
    threshold: dict, limitations: list[str],
) -> str:
    def fmt(m: str) -> str:
        v = metrics.get(m)
        ci = intervals.get(m)
        return f"{v:.4f}" + (f" (95% CI {ci[0]:.4f} - {ci[1]:.4f})" if ci else "") if v is not None else "n/a"

    lines = [
        f"# Model card: leadscore-{project} ({version_hint})",
        "",
        f"{description}",
        "",
        "## At a glance",
        f"- Model: **{candidate}**",
        f"- Test ROC-AUC: {fmt('roc_auc')}",
        f"- Test PR-AUC: {fmt('pr_auc')}",
        f"- Share of the test positives in the top 20% of scores: {fmt('top20_capture')}",
        f"- Contact a lead when its score is at least {threshold.get('threshold', float('nan')):.4f} "
        f"({threshold.get('policy')} policy)",
        "",
        "## Model",
        f"- Candidate: **{candidate}** (selected on the validation split), whole pipeline: preprocessing + model"
        + (f" + {calibration['method']} calibration" if calibration.get("method") not in (None, "none") else ""),
        "",
        "## Data",
        f"- Window (by {data_window.get('column', 'row order')}): {data_window.get('start', '?')} to {data_window.get('end', '?')}",
        f"- Rows: {', '.join(f'{k} {v}' for k, v in rows.items())}",
        f"- Label: positive when `{label_rule['positive']}`; negative when `{label_rule['negative']}`; "
        "other leads unlabelled (scored, never trained on)",
        f"- Features ({len(features)}): {', '.join(features)}",
        f"- Never features (personal data or recorded after the outcome): {', '.join(excluded) or 'none'}",
        "",
        "## Test metrics",
        *(f"- {m}: {fmt(m)}" for m in ("roc_auc", "pr_auc", "brier", "log_loss", "top10_capture", "top20_capture")),
        "",
        "## Calibration",
        f"- Method: {calibration.get('method')} ({calibration.get('reason', '')})",
        f"- Brier on test before / after: {calibration.get('test_brier_before', float('nan')):.4f} / "
        f"{calibration.get('test_brier_after', float('nan')):.4f}",
        "",
        "## Decision threshold",
        f"- Policy: {threshold.get('policy')}; threshold {threshold.get('threshold', float('nan')):.4f}",
        f"- On validation: precision {threshold.get('precision', float('nan')):.3f}, recall "
        f"{threshold.get('recall', float('nan')):.3f}, contacted share {threshold.get('contacted_share', float('nan')):.3f}"
        + (f", expected value per lead {threshold['expected_value']:.2f}" if threshold.get("expected_value") is not None else ""),
        "",
        "## Known limitations",
        *(f"- {item}" for item in limitations),
    ]
    return "\n".join(lines) + "\n"
