"""Classification metrics, lift by decile and the plots of an evaluation report."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.calibration import calibration_curve  # noqa: E402
from sklearn.metrics import (  # noqa: E402
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

SELECTION_METRICS = {  # config name -> (metric key, higher is better after sign)
    "roc_auc": "roc_auc",
    "pr_auc": "pr_auc",
    "neg_brier": "brier",
    "neg_log_loss": "log_loss",
}


def classification_metrics(y: np.ndarray, p: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Threshold-free and thresholded metrics plus top-decile capture."""
    y = np.asarray(y).astype(int)
    pred = (p >= threshold).astype(int)
    both = len(np.unique(y)) == 2
    out = {
        "accuracy": accuracy_score(y, pred),
        "precision": precision_score(y, pred, zero_division=0),
        "recall": recall_score(y, pred, zero_division=0),
        "f1": f1_score(y, pred, zero_division=0),
        "roc_auc": roc_auc_score(y, p) if both else float("nan"),
        "pr_auc": average_precision_score(y, p) if both else float("nan"),
        "brier": brier_score_loss(y, p),
        "log_loss": log_loss(y, np.clip(p, 1e-7, 1 - 1e-7), labels=[0, 1]),
        "positive_rate": float(y.mean()),
        "rows": float(len(y)),
    }
    gains = lift_table(y, p)
    out["top10_capture"] = float(gains.loc[gains.decile == 1, "cumulative_capture"].iloc[0]) if len(gains) else 0.0
    out["top20_capture"] = float(gains.loc[gains.decile == 2, "cumulative_capture"].iloc[0]) if len(gains) > 1 else 0.0
    return {k: float(v) for k, v in out.items()}


def selection_score(metrics: dict[str, float], selection_metric: str) -> float:
    """Higher is better for every selection metric (losses are negated)."""
    value = metrics[SELECTION_METRICS[selection_metric]]
    return -value if selection_metric.startswith("neg_") else value


def deciles(p: np.ndarray) -> np.ndarray:
    """Decile 1 = the 10% highest scores. Ties are broken by order, so deciles are even."""
    ranks = pd.Series(p).rank(method="first", ascending=False).to_numpy()
    return np.ceil(ranks * 10 / max(len(p), 1)).astype(int).clip(1, 10)


def lift_table(y: np.ndarray, p: np.ndarray) -> pd.DataFrame:
    """Per decile: leads, positives, rate, lift over the base rate, cumulative capture and mean
    predicted probability (with `rate`, the calibration by decile)."""
    if len(y) == 0:
        return pd.DataFrame(columns=["decile", "leads", "positives", "rate", "lift", "cumulative_capture",
                                     "mean_probability"])
    df = pd.DataFrame({"y": np.asarray(y).astype(int), "decile": deciles(p), "p": np.asarray(p, dtype=float)})
    t = df.groupby("decile").agg(leads=("y", "size"), positives=("y", "sum"), mean_probability=("p", "mean")).reset_index()
    base = max(df.y.mean(), 1e-12)
    t["rate"] = t.positives / t.leads
    t["lift"] = t.rate / base
    t["cumulative_capture"] = t.positives.cumsum() / max(df.y.sum(), 1)
    # last, after the figures older readers know (score_effectiveness reads it as training-time calibration)
    return t[["decile", "leads", "positives", "rate", "lift", "cumulative_capture", "mean_probability"]]


def confusion(y: np.ndarray, p: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    return confusion_matrix(np.asarray(y).astype(int), (p >= threshold).astype(int), labels=[0, 1])


def _figure():
    fig, ax = plt.subplots(figsize=(5, 4), dpi=80)
    return fig, ax


def plot_report(y: np.ndarray, p: np.ndarray, importance: pd.DataFrame, title: str) -> dict[str, plt.Figure]:
    """ROC, PR, calibration, cumulative gains, confusion matrix and feature importance."""
    y = np.asarray(y).astype(int)
    figs = {}
    fig, ax = _figure()
    fpr, tpr, _ = roc_curve(y, p)
    ax.plot(fpr, tpr, label=f"AUC {roc_auc_score(y, p):.3f}")
    ax.plot([0, 1], [0, 1], "--", color="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=f"ROC - {title}")
    ax.legend()
    figs["roc"] = fig
    fig, ax = _figure()
    prec, rec, _ = precision_recall_curve(y, p)
    ax.plot(rec, prec, label=f"AP {average_precision_score(y, p):.3f}")
    ax.axhline(y.mean(), ls="--", color="grey", label="base rate")
    ax.set(xlabel="recall", ylabel="precision", title=f"Precision-recall - {title}")
    ax.legend()
    figs["precision_recall"] = fig
    fig, ax = _figure()
    frac, mean_p = calibration_curve(y, p, n_bins=10, strategy="quantile")
    ax.plot(mean_p, frac, "o-", label="model")
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect")
    ax.set(xlabel="mean predicted probability", ylabel="observed rate", title=f"Calibration - {title}")
    ax.legend()
    figs["calibration"] = fig
    fig, ax = _figure()
    gains = lift_table(y, p)
    ax.plot([0, *(gains.decile * 10)], [0, *(gains.cumulative_capture * 100)], "o-", label="model")
    ax.plot([0, 100], [0, 100], "--", color="grey", label="random")
    ax.set(xlabel="% of leads contacted (by score)", ylabel="% of positives captured", title=f"Cumulative gains - {title}")
    ax.legend()
    figs["lift"] = fig
    fig, ax = _figure()
    cm = confusion(y, p)
    ax.imshow(cm, cmap="Blues")
    for (i, j), v in np.ndenumerate(cm):
        ax.text(j, i, str(v), ha="center", va="center")
    ax.set(xticks=[0, 1], yticks=[0, 1], xlabel="predicted", ylabel="actual", title=f"Confusion matrix - {title}")
    figs["confusion_matrix"] = fig
    fig, ax = plt.subplots(figsize=(5, 0.3 * len(importance) + 1.2), dpi=80)
    imp = importance.sort_values("importance")
    ax.barh(imp.feature, imp.importance)
    ax.set(xlabel="drop in ROC-AUC when shuffled", title=f"Feature importance - {title}")
    fig.tight_layout()
    figs["feature_importance"] = fig
    return figs


BOOTSTRAP_BLOCK_CELLS = 2_000_000  # resamples x rows held in memory at once by `bootstrap_draws`


def bootstrap_ci(
    y: np.ndarray, p: np.ndarray, metrics: tuple[str, ...] = ("roc_auc", "pr_auc", "brier"),
    n_boot: int = 200, alpha: float = 0.05, seed: int = 0,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals of test metrics (resampling leads with replacement)."""
    draws = bootstrap_draws(y, p, metrics, n_boot=n_boot, seed=seed)
    return {m: (float(np.quantile(v, alpha / 2)), float(np.quantile(v, 1 - alpha / 2))) for m, v in draws.items()
            if len(v)}


def bootstrap_draws(
    y: np.ndarray, p: np.ndarray, metrics: tuple[str, ...] = ("roc_auc", "pr_auc", "brier"),
    n_boot: int = 200, seed: int = 0,
) -> dict[str, np.ndarray]:
    """Each metric on each bootstrap resample, in the order drawn.

    The resamples are the ones drawn one by one from `default_rng(seed)` (resamples holding a
    single class are skipped), and each metric is what sklearn's `roc_auc_score`,
    `average_precision_score` and `brier_score_loss` give on the resample (to ~1e-15), but computed
    for a block of resamples at once from how often each lead is drawn: the scores are sorted
    once and ties grouped, ROC-AUC is the Mann-Whitney statistic (ties count one half), average
    precision sums precision at each distinct score (descending) times the recall it adds."""
    unknown = set(metrics) - {"roc_auc", "pr_auc", "brier"}
    if unknown:
        raise KeyError(f"no bootstrap for metrics {sorted(unknown)}")
    y = np.asarray(y).astype(int)
    p = np.asarray(p, dtype=float)
    n = len(y)
    rng = np.random.default_rng(seed)
    draws: dict[str, list[np.ndarray]] = {m: [] for m in metrics}
    if n == 0:
        return {m: np.empty(0) for m in metrics}
    order = np.argsort(-p, kind="mergesort")  # descending score; the grouping below makes tie order irrelevant
    p_sorted, y_sorted = p[order], y[order]
    starts = np.r_[0, np.flatnonzero(np.diff(p_sorted)) + 1]  # first row of each distinct score
    # per-row Brier term as sklearn forms it (one-hot label minus [1 - p, p], squared, summed), halved later
    label = y.astype(float)
    brier_term = ((1 - label) - (1 - p)) ** 2 + (label - p) ** 2
    block = max(1, min(n_boot, BOOTSTRAP_BLOCK_CELLS // max(n, 1)))
    done = 0
    while done < n_boot:
        size = min(block, n_boot - done)
        done += size
        idx = np.stack([rng.integers(0, n, n) for _ in range(size)])  # the same draws, in the same order
        positives = y[idx].sum(axis=1)
        keep = (positives > 0) & (positives < n)  # both classes drawn
        if not keep.any():
            continue
        idx, positives = idx[keep], positives[keep]
        rows = len(idx)
        if "brier" in draws:
            draws["brier"].append(brier_term[idx].mean(axis=1) * 0.5)
        if "roc_auc" not in draws and "pr_auc" not in draws:
            continue
        # how often each lead is drawn, in descending-score order, then summed per distinct score
        counts = np.bincount((idx + (np.arange(rows) * n)[:, None]).ravel(), minlength=rows * n).reshape(rows, n)
        counts = counts[:, order]
        pos = np.add.reduceat(counts * y_sorted, starts, axis=1)  # positives drawn at each distinct score
        neg = np.add.reduceat(counts, starts, axis=1) - pos
        negatives = n - positives
        if "roc_auc" in draws:
            # Mann-Whitney: pairs a positive outranks (each negative with a lower score), ties one half,
            # counted twice over in integers so the one division is the only rounding
            neg_below = negatives[:, None] - np.cumsum(neg, axis=1)
            twice_pairs = (pos * (2 * neg_below + neg)).sum(axis=1)
            draws["roc_auc"].append(twice_pairs / (2.0 * positives * negatives))
        if "pr_auc" in draws:
            tps, fps = np.cumsum(pos, axis=1).astype(float), np.cumsum(neg, axis=1).astype(float)
            recall = tps / positives[:, None]
            precision = np.divide(tps, tps + fps, out=np.zeros_like(tps), where=(tps + fps) > 0)
            gained = np.diff(recall, axis=1, prepend=0.0)  # 0 at scores this resample did not draw
            draws["pr_auc"].append(np.maximum(0.0, (gained * precision).sum(axis=1)))
    return {m: np.concatenate(blocks) if blocks else np.empty(0) for m, blocks in draws.items()}


def figure_png(fig) -> bytes:
    """A matplotlib figure rendered once as PNG bytes (the same bytes `fig.savefig("x.png",
    bbox_inches="tight")` writes): render once, then write the file, log it and embed it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()
