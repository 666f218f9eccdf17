"""Feature frame and preprocessing: personal data out first, encoders fitted on train only.

The feature frame keeps model inputs in their readable form (job_title = 'ceo'); encoding
happens inside the model pipeline, so the registered model takes readable rows and no
statistic of the validation or test rows leaks into training.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.impute import MissingIndicator, SimpleImputer
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, SplineTransformer, StandardScaler, TargetEncoder

from leadscore_assets.lib.project.config import ProjectConfig

ID, LABEL, SPLIT = "lead_id", "label", "split"
NEWEST_FEEDBACK = "newest_feedback"  # labelled by the newest CRM feedback batch: part held out, part trained on
FEEDBACK = "crm_feedback"  # labelled by any CRM feedback batch
SPLITS = ("train", "validation", "test")
UNLABELLED = "unlabelled"
# Positives, and negatives, each split needs at the least: a held-out split with one of a class
# gives an ROC-AUC decided by one lead, and with none the metrics cannot be computed at all
# (sklearn: "Found array with 0 sample(s)"). Train needs at least one per CV fold on top.
MIN_CLASS_ROWS = 2


CATEGORICAL_PARTS = {"weekday", "month", "quarter"}  # calendar parts treated as levels, not numbers


@dataclass(frozen=True)
class FeatureSet:
    """Model inputs by encoding: numeric, one-hot categorical, target-encoded, multi-hot lists."""

    numeric: list[str]
    categorical: list[str]
    target_encoded: list[str] = field(default_factory=list)
    multi_hot: dict[str, str] = field(default_factory=dict)

    @property
    def columns(self) -> list[str]:
        return [*self.numeric, *self.categorical, *self.target_encoded, *self.multi_hot]

    def to_frame(self) -> pd.DataFrame:
        """Persistable form: the feature set is decided from the data once, when features are built."""
        rows = [(c, "numeric", None) for c in self.numeric] + [(c, "categorical", None) for c in self.categorical]
        rows += [(c, "target_encoded", None) for c in self.target_encoded]
        rows += [(c, "multi_hot", d) for c, d in self.multi_hot.items()]
        return pd.DataFrame(rows, columns=["feature", "encoding", "delimiter"])

    @classmethod
    def from_frame(cls, df: pd.DataFrame) -> "FeatureSet":
        by = {e: df.loc[df.encoding == e, "feature"].tolist() for e in ("numeric", "categorical", "target_encoded")}
        hot = df[df.encoding == "multi_hot"]
        return cls(by["numeric"], by["categorical"], by["target_encoded"], dict(zip(hot.feature, hot.delimiter)))


def presence_columns(config: ProjectConfig) -> dict[str, str]:
    """`has_<column>` indicator -> personal-data column it is derived from (never the id)."""
    if not config.features.presence_flags:
        return {}
    return {f"has_{c}": c for c in config.personal_data if c != config.id_column and c in config.columns}


def feature_set(config: ProjectConfig, cardinality: dict[str, int] | None = None) -> FeatureSet:
    """Typed model inputs: strings categorical (target-encoded when configured or when they have
    more levels than `categorical_max_levels`), numbers and booleans numeric, dates expanded,
    plus presence flags of personal-data columns."""
    spec = config.features
    numeric, categorical, target = [], [], []
    multi_hot = {c: d for c, d in spec.multi_hot.items() if c in config.feature_columns()}
    for col in config.feature_columns():
        kind = config.columns[col].type
        if col in multi_hot:
            continue
        if kind == "datetime":
            for part in spec.dates[col]:
                (categorical if part in CATEGORICAL_PARTS else numeric).append(f"{col}_{part}")
        elif kind == "string":
            many = (cardinality or {}).get(col, 0) > spec.categorical_max_levels
            (target if col in spec.target_encode or many else categorical).append(col)
        else:
            numeric.append(col)
    numeric += list(presence_columns(config))
    return FeatureSet(numeric=numeric, categorical=categorical, target_encoded=target, multi_hot=multi_hot)


def category_level(values: pd.Series) -> pd.Series:
    """Readable category levels compared the way people read them: trimmed, case folded and
    inner spaces collapsed, so 'CEO', 'ceo ' and 'Ceo' are one level."""
    given = values.notna().to_numpy()
    present = values.to_numpy(dtype=object)[given]
    if set(map(type, present)) <= {str}:  # validated text: str methods mapped over its distinct values
        codes, distinct = pd.factorize(present)  # a category has few levels: each is folded once
        # str.split() splits on, and str.strip() trims, exactly what the regex \s matches (str.isspace)
        levels = np.array(list(map(str.casefold, map(" ".join, map(str.split, distinct)))), dtype=object)
        levels[levels == ""] = np.nan
        out = np.full(len(values), np.nan, dtype=object)
        out[given] = levels[codes]
        return pd.Series(out, index=values.index, name=values.name)
    text = values.astype("string").str.strip().str.replace(r"\s+", " ", regex=True).str.casefold()
    return text.astype(object).where(text.notna() & (text != ""), np.nan)


def as_datetime(values: pd.Series) -> pd.Series:
    """`pd.to_datetime(values)`; a validated (naive, nanosecond) datetime column as it is, which is what
    `to_datetime` gives back for it, without its per-value scan."""
    return values if values.dtype == "datetime64[ns]" else pd.to_datetime(values)


def date_part(ts: pd.Series, part: str, reference: pd.Timestamp) -> pd.Series:
    """One calendar part of a datetime column; `days_since` counts back from `reference`."""
    if part == "weekday":
        return ts.dt.day_name().str.lower()
    if part == "month":
        return ts.dt.month_name().str.lower()
    if part == "quarter":
        return "q" + ts.dt.quarter.astype("Int64").astype(str)
    if part == "hour":
        return ts.dt.hour.astype("float64")
    if part == "day_of_year":
        return ts.dt.dayofyear.astype("float64")
    if part == "weekend":
        return (ts.dt.dayofweek >= 5).astype("float64").where(ts.notna())
    return (reference - ts).dt.total_seconds() / 86400.0  # days_since


def feature_rows(
    validated: pd.DataFrame, config: ProjectConfig, fs: FeatureSet | None = None,
    references: dict[str, pd.Timestamp] | None = None,
) -> tuple[pd.DataFrame, FeatureSet]:
    """Id and readable features of validated leads, one row each in their order: what
    `build_feature_frame` builds before labels and splits, which is all a served model needs.

    Personal-data columns are read for nothing but whether a value is present (`has_<column>`)
    and never reach the rows. `fs` defaults to the feature set these rows decide (the levels of
    each text column); `references` gives the date a `days_since` counts back from, per date
    column (default: `features.reference_date`, or the column's newest date).
    """
    if fs is not None and len(validated) == 1:  # a served lead: the same rows without pandas' per-column steps
        return _one_row(validated, config, fs, references), fs
    return _feature_rows(validated, config, fs, references)


def _feature_rows(
    validated: pd.DataFrame, config: ProjectConfig, fs: FeatureSet | None, references: dict[str, pd.Timestamp] | None,
) -> tuple[pd.DataFrame, FeatureSet]:
    """`feature_rows` of any number of leads, column by column (the route of the features table)."""
    presence = {flag: validated[col].notna().to_numpy(dtype="float64")
                for flag, col in presence_columns(config).items()}
    features = config.feature_columns()
    levels = {c: category_level(validated[c]) for c in features
              if config.columns[c].type == "string" and c not in config.features.multi_hot}
    if fs is None:
        fs = feature_set(config, cardinality={c: int((levels[c] if c in levels else validated[c]).nunique())
                                              for c in features})
    columns = {ID: validated[config.id_column].astype(str).to_numpy(), **presence}
    for col in features:
        kind = config.columns[col].type
        if kind == "datetime":
            ts = as_datetime(validated[col])
            if references is not None and col in references:
                reference = references[col]
            elif config.features.reference_date:
                reference = pd.Timestamp(config.features.reference_date)
            else:
                reference = ts.max()
            for part in config.features.dates[col]:
                values = date_part(ts, part, reference)
                columns[f"{col}_{part}"] = values.astype(object).where(values.notna(), np.nan).to_numpy() \
                    if part in CATEGORICAL_PARTS else values.to_numpy()
        elif col in fs.multi_hot:
            columns[col] = validated[col].fillna("").astype(str).to_numpy()
        elif kind == "string":
            columns[col] = levels[col].to_numpy()
        else:
            columns[col] = pd.to_numeric(validated[col].astype("Float64"), errors="coerce").astype("float64").to_numpy()
    return pd.DataFrame(columns), fs


def _one_row(validated: pd.DataFrame, config: ProjectConfig, fs: FeatureSet,
             references: dict[str, pd.Timestamp] | None) -> pd.DataFrame:
    """`feature_rows` of one validated lead, value by value (~0.3 ms instead of ~4 ms: the served
    one-lead budget is 25 ms). Tests hold it to the general route on every project's leads."""
    def value(col):
        v = validated[col].iat[0]
        return None if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and np.isnan(v)) else v

    row = {ID: str(validated[config.id_column].iat[0])}
    for flag, col in presence_columns(config).items():
        row[flag] = 0.0 if value(col) is None else 1.0
    for col in config.feature_columns():
        v, kind = value(col), config.columns[col].type
        if kind == "datetime":
            when = None if v is None else pd.Timestamp(v)
            for part in config.features.dates[col]:
                row[f"{col}_{part}"] = _date_part_of_one(when, part, col, config, references)
        elif col in fs.multi_hot:
            row[col] = "" if v is None else str(v)
        elif kind == "string":
            level = None if v is None else " ".join(str(v).split()).casefold()
            row[col] = level or np.nan
        else:
            row[col] = np.nan if v is None else float(v)
    texts = {ID, *fs.multi_hot, *(c for c in config.feature_columns() if config.columns[c].type == "string"),
             *(f"{c}_{p}" for c in config.feature_columns() for p in config.features.dates.get(c, ())
               if p in CATEGORICAL_PARTS)}
    return pd.DataFrame({c: np.array([v], dtype=object if c in texts else "float64") for c, v in row.items()})


def _date_part_of_one(when, part: str, col: str, config: ProjectConfig, references) -> object:
    if part in CATEGORICAL_PARTS:
        if when is None:
            return np.nan
        return {"weekday": when.day_name().lower(), "month": when.month_name().lower(),
                "quarter": f"q{when.quarter}"}[part]
    if when is None:
        return np.nan
    if part == "hour":
        return float(when.hour)
    if part == "day_of_year":
        return float(when.dayofyear)
    if part == "weekend":
        return float(when.dayofweek >= 5)
    if references is not None and col in references:
        reference = references[col]
    elif config.features.reference_date:
        reference = pd.Timestamp(config.features.reference_date)
    else:
        reference = when
    return (reference - when).total_seconds() / 86400.0


def build_feature_frame(
    validated: pd.DataFrame, labels: pd.DataFrame, config: ProjectConfig, newest_feedback_ids: set[str] = frozenset(),
    feedback_ids: set[str] = frozenset(),
) -> tuple[pd.DataFrame, FeatureSet]:
    """One row per lead: id, readable features (`feature_rows`), label (or NaN) and split assignment.

    Leads labelled by CRM feedback are learnt from, except a stratified share of the newest
    batch that goes to the test split, so a retrained challenger and the champion are compared
    on outcomes neither has seen.
    """
    out, fs = feature_rows(validated, config)
    out = out.merge(labels[[ID, LABEL]], on=ID, how="left")
    time = as_datetime(validated[config.split.time_column]).to_numpy() if config.split.time_column else None
    columns = label_columns(out[LABEL].astype("float64").to_numpy(), time, config,
                            out[ID].isin(newest_feedback_ids).to_numpy(), out[ID].isin(feedback_ids).to_numpy())
    for name, values in columns.items():
        out[name] = values
    return out[[ID, *fs.columns, LABEL, SPLIT, NEWEST_FEEDBACK, FEEDBACK]], fs


def label_columns(label: np.ndarray, time: np.ndarray | None, config: ProjectConfig, in_newest_feedback: np.ndarray,
                  in_feedback: np.ndarray) -> dict[str, np.ndarray]:
    """Label (float, NaN when open), split and feedback flags of every lead, in the leads' order:
    the part of `build_feature_frame` that needs the whole table. `in_newest_feedback` /
    `in_feedback`: whether each lead's id is among the newest batch's / any batch's leads."""
    label = np.asarray(label, dtype="float64")
    newest = np.asarray(in_newest_feedback, dtype=bool) & ~np.isnan(label)
    fed = (np.asarray(in_feedback, dtype=bool) | newest) & ~np.isnan(label)
    return {LABEL: label, NEWEST_FEEDBACK: newest, FEEDBACK: fed,
            SPLIT: assign_splits(label, time, config, newest, fed)}


def whole_table_feature_set(config: ProjectConfig, distinct: dict[str, pd.Series]) -> FeatureSet:
    """The feature set `feature_rows` decides from a whole table, from each text feature's distinct
    values alone (`distinct_value_columns`): a level is a function of the value, so the levels of
    the distinct values are the levels of the column."""
    return feature_set(config, cardinality={c: int(category_level(v).nunique()) for c, v in distinct.items()})


def distinct_value_columns(config: ProjectConfig) -> list[str]:
    """Text features whose number of levels decides their encoding (see `whole_table_feature_set`)."""
    return [c for c in config.feature_columns()
            if config.columns[c].type == "string" and c not in config.features.multi_hot]


def newest_date_columns(config: ProjectConfig) -> list[str]:
    """Date features whose `days_since` counts back from the column's newest date (no reference_date)."""
    if config.features.reference_date:
        return []
    return [c for c in config.feature_columns() if config.columns[c].type == "datetime"]


def source_columns(config: ProjectConfig) -> list[str]:
    """The validated columns `build_feature_frame` reads: the id, the personal-data columns behind a
    presence flag, the features and the split's time column (no other column need be loaded)."""
    wanted = [config.id_column, *presence_columns(config).values(), *config.feature_columns()]
    if config.split.time_column:
        wanted.append(config.split.time_column)
    return list(dict.fromkeys(wanted))


def feature_batch(validated: pd.DataFrame, config: ProjectConfig, fs: FeatureSet,
                  references: dict[str, pd.Timestamp], labelled: dict[str, np.ndarray]) -> pd.DataFrame:
    """Rows of the features table for a run of consecutive validated leads, given the whole-table
    decisions (`fs`, `references`) and those leads' slice of `label_columns`: the same rows and
    dtypes as `build_feature_frame` gives them."""
    out, _ = _feature_rows(validated, config, fs, references)
    for name in (LABEL, SPLIT, NEWEST_FEEDBACK, FEEDBACK):
        out[name] = labelled[name]
    return out[[ID, *fs.columns, LABEL, SPLIT, NEWEST_FEEDBACK, FEEDBACK]]


def split_minimums(config: ProjectConfig) -> dict[str, int]:
    """Positives and negatives each split needs: MIN_CLASS_ROWS, and on train one per fold of the
    stratified CV that candidates are judged and tuned by (models.cv_folds, search.cv_folds)."""
    folds = max(config.models.cv_folds, config.models.search.cv_folds)
    return {"train": max(MIN_CLASS_ROWS, folds), "validation": MIN_CLASS_ROWS, "test": MIN_CLASS_ROWS}


def short_splits(label: pd.Series, split: pd.Series, minimums: dict[str, int]) -> list[str]:
    """Each split short of positives or negatives, by how much: 'test has 0 negatives (needs 2,
    2 short)'. Empty when every split can be trained on, judged and evaluated."""
    counts = {(name, cls): int(((split == name) & (label == cls)).sum()) for name in minimums for cls in (1, 0)}
    return short_splits_of_counts(counts, minimums)


def short_splits_of_counts(counts: dict[tuple[str, int], int], minimums: dict[str, int]) -> list[str]:
    """`short_splits` from the labelled leads counted by (split, label), e.g. in SQL."""
    problems = []
    for name, needed in minimums.items():
        for cls, word in ((1, "positives"), (0, "negatives")):
            have = int(counts.get((name, cls), 0))
            if have < needed:
                problems.append(f"{name} has {have} {word} (needs {needed}, {needed - have} short)")
    return problems


def _held_out(rows: np.ndarray, y: np.ndarray, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`train_test_split` of rows, stratified as before whenever it can be. Where sklearn would
    refuse (a class with one row, fewer held-out rows than classes, one row in all) it splits
    unstratified or holds nothing out, so the features are written and the split check names
    what is short, instead of the asset failing with sklearn's message."""
    if len(rows) < 2:
        return rows, rows[:0]
    stratify = y if np.unique(y, return_counts=True)[1].min() >= 2 else None
    for by in (stratify, None):
        try:
            kept, held = train_test_split(rows, test_size=share, stratify=by, random_state=seed)
            return kept, held
        except ValueError:
            continue
    return rows, rows[:0]


def assign_splits(
    label: np.ndarray, time: np.ndarray | None, config: ProjectConfig, newest_feedback: np.ndarray | None = None,
    feedback: np.ndarray | None = None,
) -> np.ndarray:
    """Out-of-time when there is a creation date (newest labelled leads are the test set),
    stratified random otherwise; unlabelled rows get their own split and are only scored.
    CRM feedback rows are trained on, but for `feedback_holdout_share` of the newest batch
    (stratified, seeded), which is test: outcomes neither champion nor challenger learnt from."""
    spec = config.split
    split = np.full(len(label), UNLABELLED, dtype=object)
    fed = np.zeros(len(label), bool) if feedback is None else feedback.astype(bool)
    newest = np.zeros(len(label), bool) if newest_feedback is None else newest_feedback.astype(bool)
    fed |= newest
    if fed.any():
        split[fed] = "train"
        rows = np.flatnonzero(newest & ~np.isnan(label))
        y = label[rows]
        if len(rows) >= 2 and spec.feedback_holdout_share > 0:
            stratify = y if np.bincount(y.astype(int), minlength=2).min() >= 2 else None
            _, held = train_test_split(rows, test_size=spec.feedback_holdout_share, stratify=stratify,
                                       random_state=spec.seed)
            split[held] = "test"
        label = np.where(fed, np.nan, label)
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
    rest, test = _held_out(labelled, label[labelled], spec.test_share, spec.seed)
    val_share = spec.validation_share / (1 - spec.test_share)
    train, val = _held_out(rest, label[rest], val_share, spec.seed)
    split[train], split[val], split[test] = "train", "validation", "test"
    return split


class SplitOn:
    """Tokenizer for delimited lists ('webinar, trial'): picklable, unlike a lambda."""

    def __init__(self, delimiter: str):
        self.delimiter = delimiter

    def __call__(self, text: str) -> list[str]:
        return [t.strip() for t in text.split(self.delimiter) if t.strip()]


def preprocessor(fs: FeatureSet, config: ProjectConfig, splines: bool = False) -> ColumnTransformer:
    """Impute, scale numerics, one-hot categoricals (rare levels pooled), cross-fitted target
    encoding for high-cardinality ones, one indicator per listed value. Fitted with the model.

    `splines` expands each numeric column into cubic B-splines on quantile knots (with its
    missing indicator kept apart), so a linear model can follow curved effects such as the
    bump of mid-sized companies; trees do not need it.
    """
    if splines:
        numeric = Pipeline([("impute", SimpleImputer(strategy="median")),
                            ("spline", SplineTransformer(n_knots=5, degree=3, knots="quantile"))])
    else:
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
    parts = [("numeric", numeric, fs.numeric), ("categorical", categorical, fs.categorical)]
    if splines and fs.numeric:
        parts.append(("numeric_missing", MissingIndicator(features="missing-only", error_on_new=False), fs.numeric))
    if fs.target_encoded:
        target = Pipeline([
            ("impute", SimpleImputer(strategy="constant", fill_value="(missing)")),
            # its cross-fitting folds as the CV object scikit-learn >= 1.9 asks for (the same
            # 5 shuffled stratified folds its default built from `random_state`, now deprecated)
            ("target", TargetEncoder(target_type="binary",
                                     cv=StratifiedKFold(5, shuffle=True, random_state=config.split.seed))),
        ])
        parts.append(("target_encoded", target, fs.target_encoded))
    for col, delimiter in fs.multi_hot.items():
        vectorizer = CountVectorizer(tokenizer=SplitOn(delimiter), token_pattern=None, lowercase=True, binary=True)
        parts.append((f"multi_hot_{col}", vectorizer, col))
    return ColumnTransformer(parts, verbose_feature_names_out=False, sparse_threshold=0.0)
