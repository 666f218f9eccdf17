"""Label leakage: how well each feature on its own separates the training labels.

A lead model that reaches ROC-AUC 1.0 has almost always been handed the outcome: a column
recorded after it (a close date, the CRM stage, the order value) or the label itself under
another spelling. No real single attribute of a lead separates converters from the rest at
0.95+, so such a column is named and blocks the run unless the project accepts it knowingly.

Numeric columns are scored by their ranks (missing values placed first and last, both tried,
since "only filled in for won deals" is a leak too); categorical columns by cross-fitted target
encoding, so an identifier-like column with one row per level scores ~0.5, not 1.0.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import TargetEncoder

from leadscore_assets.lib.features.frame import FeatureSet


def _separation(y: np.ndarray, score: np.ndarray) -> float:
    auc = roc_auc_score(y, score)
    return float(max(auc, 1.0 - auc))


def numeric_separation(values: pd.Series, y: np.ndarray) -> float:
    x = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64")
    if np.isnan(x).all():
        return 0.5
    lo, hi = np.nanmin(x) - 1.0, np.nanmax(x) + 1.0
    return max(_separation(y, np.where(np.isnan(x), lo, x)), _separation(y, np.where(np.isnan(x), hi, x)))


def categorical_separation(values: pd.Series, y: np.ndarray, seed: int) -> float:
    levels = values.astype(object).where(values.notna(), "(missing)").astype(str).to_frame()
    folds = int(min(5, np.bincount(y).min()))
    if folds < 2:
        return 0.5
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)  # not shuffle=/random_state= (deprecated in 1.9)
    encoded = TargetEncoder(target_type="binary", cv=cv).fit_transform(levels, y)
    return _separation(y, encoded[:, 0])


def single_feature_separation(x: pd.DataFrame, y: np.ndarray, fs: FeatureSet, seed: int = 0) -> pd.DataFrame:
    """One row per feature: `auc` = max(AUC, 1 - AUC) of that feature alone, highest first."""
    y = np.asarray(y).astype(int)
    if len(np.unique(y)) < 2:  # nothing to separate (the labels check reports this)
        return pd.DataFrame({"feature": pd.Series(dtype=object), "encoding": pd.Series(dtype=object),
                             "auc": pd.Series(dtype="float64")})
    rows = [(c, "numeric", numeric_separation(x[c], y)) for c in fs.numeric]
    rows += [(c, "categorical", categorical_separation(x[c], y, seed))
             for c in [*fs.categorical, *fs.target_encoded, *fs.multi_hot]]
    out = pd.DataFrame(rows, columns=["feature", "encoding", "auc"])
    return out.sort_values("auc", ascending=False, kind="stable").reset_index(drop=True)


def source_column(feature: str, date_columns) -> str:
    """The configured column a feature comes from (`created_at_hour` -> `created_at`)."""
    for col in date_columns:
        if feature.startswith(f"{col}_"):
            return col
    return feature


def leaks(separation: pd.DataFrame, limit: float, accepted, date_columns=()) -> pd.DataFrame:
    """Features above `limit` that the project has not accepted by name."""
    accepted = set(accepted)
    over = separation[separation.auc > limit]
    keep = [f not in accepted and source_column(f, date_columns) not in accepted for f in over.feature]
    return over[pd.Series(keep, index=over.index, dtype=bool)]
