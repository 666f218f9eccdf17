"""A data profile of the validated table, as markdown for the Dagster UI."""

from __future__ import annotations

import numpy as np
import pandas as pd


def profile(df: pd.DataFrame, label: pd.Series, categorical: list[str], numeric: list[str]) -> dict:
    """Missing share, constant / quasi-constant columns, cardinality, positive rate by category
    and highly correlated numeric pairs. Works on model inputs only: no personal data."""
    cols = [*numeric, *categorical]
    rows = []
    for c in cols:
        s = df[c]
        top_share = s.value_counts(normalize=True, dropna=False).iloc[0] if len(s) else 1.0
        rows.append({
            "column": c,
            "kind": "numeric" if c in numeric else "categorical",
            "missing_share": round(float(s.isna().mean()), 4),
            "distinct": int(s.nunique(dropna=True)),
            "top_value_share": round(float(top_share), 4),
            "constant": bool(s.nunique(dropna=False) <= 1),
            "quasi_constant": bool(top_share >= 0.98),
        })
    columns = pd.DataFrame(rows)
    rates = []
    labelled = label.notna()
    for c in categorical:
        g = pd.DataFrame({"value": df.loc[labelled, c].fillna("(missing)"), "y": label[labelled]}).groupby("value")["y"]
        t = g.agg(["size", "mean"]).sort_values("mean", ascending=False).head(8)
        rates += [{"column": c, "value": v, "leads": int(r["size"]), "positive_rate": round(float(r["mean"]), 4)} for v, r in t.iterrows()]
    corr_pairs = []
    if len(numeric) > 1:
        corr = df[numeric].corr().abs()
        for i, a in enumerate(numeric):
            for b in numeric[i + 1 :]:
                if corr.loc[a, b] >= 0.9 and not np.isnan(corr.loc[a, b]):
                    corr_pairs.append({"a": a, "b": b, "abs_corr": round(float(corr.loc[a, b]), 3)})
    return {"columns": columns, "rates": pd.DataFrame(rates), "correlated": pd.DataFrame(corr_pairs)}


def profile_markdown(p: dict) -> str:
    parts = ["### Columns", p["columns"].to_markdown(index=False)]
    if len(p["rates"]):
        parts += ["### Positive rate by category (top levels)", p["rates"].to_markdown(index=False)]
    parts += ["### Highly correlated numeric pairs (|r| >= 0.9)",
              p["correlated"].to_markdown(index=False) if len(p["correlated"]) else "_none_"]
    return "\n\n".join(parts)


def profile_figures(df: pd.DataFrame, label: pd.Series, categorical: list[str], numeric: list[str],
                    max_panels: int = 12) -> dict:
    """Pictures of the profile: each numeric feature's distribution for converted and other
    labelled leads, and the positive rate of each category's most common levels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labelled = label.notna()
    figures = {}
    panels = numeric[:max_panels]
    if panels:
        cols = min(3, len(panels))
        fig, axes = plt.subplots((len(panels) + cols - 1) // cols, cols, figsize=(4.2 * cols, 2.8 * ((len(panels) + cols - 1) // cols)),
                                 squeeze=False)
        for ax, c in zip(axes.flat, panels):
            values = pd.to_numeric(df.loc[labelled, c], errors="coerce")
            y = label[labelled]
            finite = values.dropna()
            bins = np.histogram_bin_edges(finite, bins=30) if finite.nunique() > 1 else 10
            for outcome, colour, name in ((0, "#8da0cb", "other"), (1, "#fc8d62", "converted")):
                ax.hist(values[(y == outcome).to_numpy()].dropna(), bins=bins, alpha=0.6, color=colour, label=name, density=True)
            ax.set_title(c, fontsize=9)
            ax.tick_params(labelsize=7)
        for ax in list(axes.flat)[len(panels):]:
            ax.axis("off")
        axes.flat[0].legend(fontsize=7)
        fig.suptitle("Numeric features by outcome (labelled leads, density)", fontsize=10)
        fig.tight_layout()
        figures["numeric_distributions"] = fig
    panels = categorical[:max_panels]
    if panels and labelled.any():
        cols = min(3, len(panels))
        rows = (len(panels) + cols - 1) // cols
        fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.8 * rows), squeeze=False)
        overall = float(label[labelled].mean())
        for ax, c in zip(axes.flat, panels):
            g = pd.DataFrame({"value": df.loc[labelled, c].astype("string").fillna("(missing)"), "y": label[labelled]})
            top = g.value.value_counts().head(8).index
            rate = g[g.value.isin(top)].groupby("value")["y"].mean().reindex(top)
            ax.barh([str(v)[:24] for v in rate.index][::-1], rate.to_numpy()[::-1], color="#66c2a5")
            ax.axvline(overall, color="grey", linestyle="--", linewidth=1)
            ax.set_title(f"{c} (dashed: all leads)", fontsize=9)
            ax.tick_params(labelsize=7)
        for ax in list(axes.flat)[len(panels):]:
            ax.axis("off")
        fig.suptitle("Positive rate by category (8 most common levels)", fontsize=10)
        fig.tight_layout()
        figures["label_rate_by_category"] = fig
    return figures
