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
