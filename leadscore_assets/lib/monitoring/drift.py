"""Distribution drift between a champion's training data (reference) and newly arrived leads (current).

The champion/challenger promotion gate needs to know whether the leads a model is about to score
still look like the leads it was trained on: the features, the model scores and the outcome rate.
Evidently computes every statistic and renders the HTML report; this module only prepares the inputs
(typed columns, categoricals as strings) and reads Evidently's numbers and drift verdicts back out of
the snapshot's `dict()` into a plain table, so callers never touch Evidently objects.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from leadscore_assets.lib.features.frame import ID, SPLIT

if TYPE_CHECKING:
    from evidently import DataDefinition

# Evidently is imported inside the functions that run a report: importing it takes seconds, and
# every process that loads the code location (`import leadscore_assets.definitions`) would pay them.

MISSING_CATEGORY = "(missing)"  # the level the model's imputer gives missing categoricals (features.py)
SCORE_COLUMN = "score"
LABEL_COLUMN = "label"
PER_COLUMN_FIELDS = ["column", "method", "score", "threshold", "drifted"]


@dataclass
class DriftReport:
    """Drift of one kind of data, with Evidently's per-column numbers and its HTML report (the
    caller writes `html` to `html_path`)."""

    kind: str  # "features" | "scores" | "labels"
    drift_share: float  # share of columns drifted (features) or 1.0/0.0 (scores/labels)
    drifted_columns: list[str]
    per_column: pd.DataFrame  # column, method, score, threshold, drifted
    psi: float | None  # population stability index of the scores, else None
    html_path: Path  # where the report is meant to be written (nothing is written here)
    html: str = ""  # Evidently's standalone HTML report


def feature_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    html_path: Path,
) -> DriftReport:
    """Per-feature drift with Evidently's DataDriftPreset (its default test for each column's type and size)."""
    columns = [*numeric, *categorical]
    if not columns:
        raise ValueError("feature_drift needs at least one numeric or categorical column")
    if overlap := sorted(set(numeric) & set(categorical)):
        raise ValueError(f"columns listed as both numeric and categorical: {overlap}")
    _require_rows(len(reference), len(current), "feature")
    for name, frame in (("reference", reference), ("current", current)):
        if absent := [c for c in columns if c not in frame.columns]:
            raise ValueError(f"{name} data lacks feature columns {absent}")

    reference_features = _typed_features(reference, numeric, categorical)
    current_features = _typed_features(current, numeric, categorical)
    for name, frame in (("reference", reference_features), ("current", current_features)):
        if empty := [c for c in numeric if frame[c].replace([np.inf, -np.inf], np.nan).isna().all()]:
            raise ValueError(f"numeric columns {empty} have no values in the {name} data; drift cannot be tested")

    from evidently import DataDefinition
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=list(numeric), categorical_columns=list(categorical))
    snapshot, html = _run_report([DataDriftPreset(columns=columns)], reference_features, current_features, definition)
    per_column = _value_drift_table(snapshot).set_index("column").loc[columns].reset_index()
    return DriftReport(
        kind="features",
        drift_share=_drifted_columns_share(snapshot),
        drifted_columns=per_column.loc[per_column.drifted, "column"].tolist(),
        per_column=per_column,
        psi=None,
        html_path=Path(html_path),
        html=html,
    )


def score_drift(
    reference_scores: np.ndarray,
    current_scores: np.ndarray,
    html_path: Path,
    psi_threshold: float = 0.2,
) -> DriftReport:
    """Population stability index of the model scores (Evidently's "psi"); drifted when PSI >= psi_threshold."""
    reference_values = _finite_scores(reference_scores)
    current_values = _finite_scores(current_scores)
    _require_rows(len(reference_values), len(current_values), "score")
    from evidently import DataDefinition
    from evidently.metrics import ValueDrift

    definition = DataDefinition(numerical_columns=[SCORE_COLUMN])
    snapshot, html = _run_report(
        [ValueDrift(column=SCORE_COLUMN, method="psi", threshold=psi_threshold)],
        pd.DataFrame({SCORE_COLUMN: reference_values}),
        pd.DataFrame({SCORE_COLUMN: current_values}),
        definition,
    )
    return _single_column_report("scores", _value_drift_table(snapshot), Path(html_path), html, with_psi=True)


def label_drift(reference_labels: np.ndarray, current_labels: np.ndarray, html_path: Path) -> DriftReport:
    """Drift of the outcome mix, the label tested as a categorical column; missing labels (unlabelled rows) are dropped."""
    reference_values = _as_category_strings(pd.Series(reference_labels).dropna())
    current_values = _as_category_strings(pd.Series(current_labels).dropna())
    _require_rows(len(reference_values), len(current_values), "labelled")
    from evidently import DataDefinition
    from evidently.metrics import ValueDrift

    definition = DataDefinition(categorical_columns=[LABEL_COLUMN])
    snapshot, html = _run_report(
        [ValueDrift(column=LABEL_COLUMN)],
        pd.DataFrame({LABEL_COLUMN: reference_values}),
        pd.DataFrame({LABEL_COLUMN: current_values}),
        definition,
    )
    return _single_column_report("labels", _value_drift_table(snapshot), Path(html_path), html, with_psi=False)


def _require_rows(reference_rows: int, current_rows: int, what: str) -> None:
    """Evidently needs data on both sides; say which side is empty rather than fail deep inside it."""
    if current_rows == 0:
        raise ValueError(f"current data has no {what} rows: there is nothing to compare with the reference")
    if reference_rows == 0:
        raise ValueError(f"reference data has no {what} rows: there is nothing to compare the current data with")


def _typed_features(frame: pd.DataFrame, numeric: list[str], categorical: list[str]) -> pd.DataFrame:
    """Numeric columns as float (None -> NaN), categorical columns as strings with a '(missing)' level."""
    typed = {}
    for column in numeric:
        try:
            typed[column] = pd.to_numeric(frame[column]).astype("float64")
        except (ValueError, TypeError) as error:
            raise ValueError(f"numeric column {column!r} holds non-numeric values: {error}") from error
    for column in categorical:
        typed[column] = _as_category_strings(frame[column])
    return pd.DataFrame(typed, index=frame.index)


def _category_text(value: object) -> str:
    """One category as text; whole floats print as integers so 3 and 3.0 (an int column that gained NaN) match."""
    if pd.isna(value):
        return MISSING_CATEGORY
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _as_category_strings(values: pd.Series) -> pd.Series:
    """Categorical values as strings, so Evidently compares the same levels on both sides (each
    distinct value written once: a column holds few, a side up to COMPARED_ROWS rows)."""
    codes, levels = pd.factorize(values.astype(object), use_na_sentinel=True)
    texts = np.array([*map(_category_text, levels), MISSING_CATEGORY], dtype=object)
    return pd.Series(texts[codes], index=values.index, dtype=object)


def _finite_scores(scores: np.ndarray) -> np.ndarray:
    """Scores as floats without NaN or infinities (Evidently would drop them anyway)."""
    values = np.asarray(scores, dtype="float64").ravel()
    return values[np.isfinite(values)]


def _run_report(
    metrics: list,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    definition: DataDefinition,
) -> tuple[dict, str]:
    """Run an Evidently report (current first, then reference); return `snapshot.dict()` and its
    standalone HTML (what `snapshot.save_html` would write)."""
    from evidently import Dataset, Report

    report = Report(metrics, include_tests=True)  # the tests carry Evidently's per-column drift verdicts
    with warnings.catch_warnings():
        # The HTML correlation heatmap divides by a zero std for constant columns; the result is unaffected.
        warnings.filterwarnings("ignore", message="invalid value encountered", category=RuntimeWarning)
        snapshot = report.run(
            Dataset.from_pandas(current, data_definition=definition),
            Dataset.from_pandas(reference, data_definition=definition),
        )
        html = snapshot.get_html_str(as_iframe=False)
    return snapshot.dict(), html


def _metric_type(config: dict) -> str:
    """Short metric type name from a config type such as 'evidently:metric_v2:ValueDrift'."""
    return str(config.get("type", "")).rsplit(":", 1)[-1]


def _value_drift_table(snapshot: dict) -> pd.DataFrame:
    """One row per ValueDrift metric: column, method, score, threshold and Evidently's drifted verdict.

    The score is the metric's value; method and threshold are the ones Evidently resolved (in the
    metric config); the verdict is the status of the drift test bound to the metric's id (FAIL = drifted).
    """
    verdicts = {}
    for test in snapshot.get("tests", []):
        metric_config = test.get("metric_config") or {}
        if _metric_type(metric_config.get("params") or {}) == "ValueDrift":
            status = test.get("status")
            verdicts[metric_config.get("metric_id")] = str(getattr(status, "value", status)).upper()

    rows = []
    for metric in snapshot.get("metrics", []):
        config = metric.get("config") or {}
        if _metric_type(config) != "ValueDrift":
            continue
        status = verdicts.get(metric.get("id"))
        if status not in ("FAIL", "SUCCESS"):
            raise RuntimeError(f"Evidently gave no drift verdict for column {config.get('column')!r} (status {status})")
        rows.append(
            {
                "column": config["column"],
                "method": config.get("method"),
                "score": float(metric["value"]),
                "threshold": None if config.get("threshold") is None else float(config["threshold"]),
                "drifted": status == "FAIL",
            }
        )
    if not rows:
        raise RuntimeError("the Evidently snapshot holds no ValueDrift results")
    return pd.DataFrame(rows, columns=PER_COLUMN_FIELDS)


def _drifted_columns_share(snapshot: dict) -> float:
    """Share of drifted columns from the snapshot's DriftedColumnsCount metric."""
    for metric in snapshot.get("metrics", []):
        if _metric_type(metric.get("config") or {}) == "DriftedColumnsCount":
            return float(metric["value"]["share"])
    raise RuntimeError("the Evidently snapshot holds no DriftedColumnsCount result")


def _single_column_report(kind: str, per_column: pd.DataFrame, html_path: Path, html: str,
                          with_psi: bool) -> DriftReport:
    """DriftReport for a one-column comparison (scores or labels)."""
    row = per_column.iloc[0]
    drifted = bool(row.drifted)
    return DriftReport(
        kind=kind,
        drift_share=1.0 if drifted else 0.0,
        drifted_columns=[row.column] if drifted else [],
        per_column=per_column,
        psi=float(row.score) if with_psi else None,
        html_path=html_path,
        html=html,
    )


REFERENCE_ARTIFACT = "reference/drift_reference.parquet"  # logged with every registered version
LEAD_KEY = "lead_key"  # a one-way hash of the lead id: the reference leaves the warehouse


def lead_keys(ids: pd.Series) -> pd.Series:
    """Stable one-way keys for lead ids (which may be personal: never stored in MLflow as is)."""
    return ids.astype(str).map(lambda v: hashlib.sha256(v.encode()).hexdigest()[:24])


def drift_reference(rows: pd.DataFrame, columns: list[str], label: str, scores: np.ndarray, ids: pd.Series) -> pd.DataFrame:
    """What a model version is judged against later: the rows it learnt from (features, label,
    its own scores), keyed by hashed lead id."""
    reference = rows[[*columns, label]].copy()
    reference["score"] = scores
    reference[LEAD_KEY] = lead_keys(ids).to_numpy()
    return reference.reset_index(drop=True)


def not_in_reference(frame: pd.DataFrame, ids: pd.Series, reference: pd.DataFrame) -> pd.DataFrame:
    """The rows of `frame` whose lead the reference does not hold (leads the model has not seen)."""
    return frame[~lead_keys(ids).isin(set(reference[LEAD_KEY])).to_numpy()]


MIN_ROWS = 20  # fewer current rows than this: a report would say nothing
COMPARED_ROWS = 50_000  # rows of each side a report compares; a seeded sample of a larger side


def compared_rows(rows: pd.DataFrame, at_most: int = COMPARED_ROWS, seed: int = 0) -> pd.DataFrame:
    """`rows`, or a seeded sample of `at_most` of them in their order. On large sides Evidently's
    drift figures are distances between two distributions (Wasserstein, Jensen-Shannon, PSI), which
    a sample this size estimates closely, while its time grows with the rows (24 s of a 472,871-session
    run compared every row)."""
    if len(rows) <= at_most:
        return rows
    return rows.iloc[np.sort(np.random.default_rng(seed).choice(len(rows), at_most, replace=False))]


def current_rows(frame: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """The leads the reference does not hold; the test split when fewer than MIN_ROWS are new."""
    return _or_test_split(frame, not_in_reference(frame, frame[ID], reference))


def rows_after_training(frame: pd.DataFrame) -> pd.DataFrame:
    """`current_rows` against a reference of the training split, without building it: the other
    splits; the test split when fewer than MIN_ROWS."""
    return _or_test_split(frame, frame[frame[SPLIT] != "train"])


def _or_test_split(frame: pd.DataFrame, current: pd.DataFrame) -> pd.DataFrame:
    return current if len(current) >= MIN_ROWS else frame[frame[SPLIT] == "test"]


def drift_reports(reference: pd.DataFrame, current: pd.DataFrame, current_scores: np.ndarray, numeric: list[str],
                  categorical: list[str], label: str, out: Path, psi_threshold: float) -> dict[str, DriftReport]:
    """Feature, score and (when both sides hold MIN_ROWS labels) label drift, each with an HTML
    report meant for `out` (its `html_path`; the caller writes it)."""
    reports = {
        "features": feature_drift(reference, current, numeric, categorical, out / "feature_drift.html"),
        "scores": score_drift(reference["score"].to_numpy(), current_scores, out / "score_drift.html",
                              psi_threshold=psi_threshold),
    }
    ref_labels, cur_labels = reference[label].dropna(), current[label].dropna()
    if len(ref_labels) >= MIN_ROWS and len(cur_labels) >= MIN_ROWS:
        reports["labels"] = label_drift(ref_labels.to_numpy(), cur_labels.to_numpy(), out / "label_drift.html")
    return reports


def drift_summary(reports: dict[str, DriftReport], reference_rows: int, current_rows: int, run_id: str) -> pd.DataFrame:
    """One row per report: the `drift_summary` table the promotion gate and the checks read."""
    return pd.DataFrame([
        {"kind": k, "drift_share": r.drift_share, "drifted_columns": ",".join(r.drifted_columns),
         "psi": r.psi, "html_path": str(r.html_path), "reference_rows": reference_rows, "current_rows": current_rows,
         "dagster_run_id": run_id}
        for k, r in reports.items()
    ])
