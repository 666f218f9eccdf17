"""Feature frame and preprocessing: personal data out first, encoders fitted on train only.

The feature frame keeps model inputs in their readable form (job_title = 'ceo'); encoding
happens inside the model pipeline, so the registered model takes readable rows and no
statistic of the validation or test rows leaks into training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from leadscore_assets.lib.config import ProjectConfig

ID, LABEL, SPLIT = "lead_id", "label", "split"
SPLITS = ("train", "validation", "test")
UNLABELLED = "unlabelled"


@dataclass(frozen=True)
class FeatureSet:
    numeric: list[str]
    categorical: list[str]

    @property
    def columns(self) -> list[str]:
        return [*self.numeric, *self.categorical]


def feature_set(config: ProjectConfig) -> FeatureSet:
    """Typed model inputs: strings are categorical; numbers and booleans numeric; dates expanded."""
    numeric, categorical = [], []
    for col in config.feature_columns():
        kind = config.columns[col].type
        if kind == "datetime":
            categorical.append(f"{col}_weekday")
            numeric.append(f"{col}_hour")
        elif kind == "string":
            categorical.append(col)
        else:
            numeric.append(col)
    return FeatureSet(numeric=numeric, categorical=categorical)


def build_feature_frame(validated: pd.DataFrame, labels: pd.DataFrame, config: ProjectConfig) -> pd.DataFrame:
    """One row per lead: id, readable features, label (or NaN) and split assignment.

    Personal-data columns are dropped before anything else touches the frame.
    """
    df = validated.drop(columns=[c for c in config.personal_data if c in validated.columns])
    fs = feature_set(config)
    out = pd.DataFrame({ID: df[config.id_column].astype(str).to_numpy()})
    for col in config.feature_columns():
        kind = config.columns[col].type
        if kind == "datetime":
            ts = pd.to_datetime(df[col])
            out[f"{col}_weekday"] = ts.dt.day_name().str.lower().to_numpy()
            out[f"{col}_hour"] = ts.dt.hour.astype("float64").to_numpy()
        elif kind == "string":
            out[col] = df[col].astype(object).where(df[col].notna(), np.nan).to_numpy()
        else:
            out[col] = pd.to_numeric(df[col].astype("Float64"), errors="coerce").astype("float64").to_numpy()
    out = out.merge(labels.rename(columns={"label": LABEL}), on=ID, how="left")
    out[LABEL] = out[LABEL].astype("float64")
    time = pd.to_datetime(df[config.split.time_column]).to_numpy() if config.split.time_column else None
    out[SPLIT] = assign_splits(out[LABEL].to_numpy(), time, config)
    return out[[ID, *fs.columns, LABEL, SPLIT]]


def assign_splits(label: np.ndarray, time: np.ndarray | None, config: ProjectConfig) -> np.ndarray:
    """Out-of-time when there is a creation date (newest labelled leads are the test set),
    stratified random otherwise; unlabelled rows get their own split and are only scored."""
    spec = config.split
    split = np.full(len(label), UNLABELLED, dtype=object)
    labelled = np.flatnonzero(~np.isnan(label))
    if len(labelled) == 0:
        return split
    if time is not None:
        order = labelled[np.argsort(time[labelled], kind="stable")]
        n = len(order)
        n_test, n_val = int(round(n * spec.test_share)), int(round(n * spec.validation_share))
        split[order[: n - n_test - n_val]] = "train"
        split[order[n - n_test - n_val : n - n_test]] = "validation"
        split[order[n - n_test :]] = "test"
        return split
    y = label[labelled]
    rest, test = train_test_split(labelled, test_size=spec.test_share, stratify=y, random_state=spec.seed)
    val_share = spec.validation_share / (1 - spec.test_share)
    train, val = train_test_split(rest, test_size=val_share, stratify=label[rest], random_state=spec.seed)
    split[train], split[val], split[test] = "train", "validation", "test"
    return split


def preprocessor(fs: FeatureSet, config: ProjectConfig) -> ColumnTransformer:
    """Impute, scale numerics, one-hot categoricals (rare levels pooled). Fitted with the model."""
    numeric = Pipeline([("impute", SimpleImputer(strategy="median", add_indicator=True)), ("scale", StandardScaler())])
    categorical = Pipeline(
        [
            ("impute", SimpleImputer(strategy="constant", fill_value="(missing)")),
            (
                "onehot",
                OneHotEncoder(
                    handle_unknown="infrequent_if_exist",
                    min_frequency=config.features.categorical_min_frequency,
                    max_categories=config.features.categorical_max_levels,
                    sparse_output=False,
                ),
            ),
        ]
    )
    return ColumnTransformer(
        [("numeric", numeric, fs.numeric), ("categorical", categorical, fs.categorical)],
        verbose_feature_names_out=False,
    )
