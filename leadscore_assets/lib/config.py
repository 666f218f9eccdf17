"""The per-source configuration: one YAML file describes one lead source end to end.

These are plain pydantic models so the pure modules (validation, labels, features, training)
can be driven and tested without Dagster; the Dagster component only wraps them.
Unknown keys are rejected so a typo in a YAML file fails loudly instead of being ignored.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ColumnType = Literal["string", "integer", "float", "boolean", "datetime", "text"]
DatePart = Literal["weekday", "hour", "month", "day_of_year", "quarter", "weekend", "days_since"]
CandidateName = Literal["dummy", "logistic_regression", "random_forest", "xgboost", "lightgbm"]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RowRule(StrictModel):
    """A business rule as a DuckDB SQL boolean expression; rows where it is false are quarantined."""

    name: str
    expression: str


class TableSpec(StrictModel):
    """One source table. Paths are relative to the data directory.

    `table` names the table inside a SQLite or DuckDB file; CSV and Parquet files are one table.
    """

    kind: Literal["csv", "parquet", "sqlite", "duckdb"] = "csv"
    path: str
    table: str | None = None
    delimiter: str = ","
    row_rules: list[RowRule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _table_named(self) -> TableSpec:
        if self.kind in ("sqlite", "duckdb") and not self.table:
            raise ValueError(f"source table {self.path!r} of kind {self.kind} needs `table:`")
        return self


class SourceSpec(TableSpec):
    """Where the raw rows come from: one table, or several tables combined by a DuckDB query.

    With `tables:`, each table is loaded as `<project>.source_<name>` (rows failing its
    `row_rules` quarantined) and `query` builds one row per lead from them; the query should
    carry the primary table's `_row_number` and `_source_file` so reasons point at real rows.
    """

    path: str | None = None  # type: ignore[assignment]
    tables: dict[str, TableSpec] = Field(default_factory=dict)
    query: str | None = None

    @model_validator(mode="after")
    def _one_shape(self) -> SourceSpec:
        if bool(self.path) == bool(self.tables):
            raise ValueError("source needs either `path:` (one table) or `tables:` with a `query:`")
        if self.tables and not self.query:
            raise ValueError("source `tables:` need a `query:` that builds one row per lead")
        return self

    def table_specs(self) -> dict[str, TableSpec]:
        if self.tables:
            return self.tables
        return {"contacts": TableSpec(**self.model_dump(include={"kind", "path", "table", "delimiter", "row_rules"}))}


class NormaliseSpec(StrictModel):
    """How raw column names and values are cleaned before validation."""

    column_case: Literal["snake", "keep"] = "snake"
    rename: dict[str, str] = Field(default_factory=dict)
    lowercase: list[str] = Field(default_factory=list)
    # Which copy of a repeated id survives: the first seen, or the one with the fewest empty fields.
    deduplicate: Literal["first", "most_complete"] = "first"


class ColumnSpec(StrictModel):
    """Type and row-level rules for one column of the validated table."""

    type: ColumnType = "string"
    nullable: bool = True
    unique: bool = False
    pattern: str | None = None
    allowed: list[str] | None = None
    min: float | None = None
    max: float | None = None


class LabelSpec(StrictModel):
    """Label rule as DuckDB SQL boolean expressions over the validated table.

    A row is positive when `positive` holds, negative when `negative` holds and it is not
    positive, and unlabelled otherwise: unlabelled rows are scored but never trained on.
    """

    positive: str
    negative: str


class FeatureSpec(StrictModel):
    """Which validated columns become model inputs, and how they are encoded.

    Personal-data columns and the id are always removed; `exclude` names the columns recorded
    after the outcome (leakage) or otherwise unfit. `dates` expands a date into the listed
    parts (`days_since` counts from the newest date in the table); other dates and free `text`
    columns are left out. `multi_hot` columns hold delimited lists (tags) and become one
    indicator per value; `target_encode` columns (and any categorical with more levels than
    `categorical_max_levels`) are target-encoded with cross-fitting instead of one-hot.
    """

    exclude: list[str] = Field(default_factory=list)
    dates: dict[str, list[DatePart]] = Field(default_factory=dict)
    reference_date: str | None = None  # `days_since` counts to this date; default: the newest in the column
    multi_hot: dict[str, str] = Field(default_factory=dict)
    target_encode: list[str] = Field(default_factory=list)
    categorical_max_levels: int = 30
    categorical_min_frequency: int = 5


class SplitSpec(StrictModel):
    """Train / validation / test split. Out-of-time when `time_column` is set."""

    time_column: str | None = None
    validation_share: float = 0.2
    test_share: float = 0.2
    seed: int = 42

    @model_validator(mode="after")
    def _shares(self) -> SplitSpec:
        if not (0 < self.validation_share < 0.5 and 0 < self.test_share < 0.5):
            raise ValueError("validation_share and test_share must each be in (0, 0.5)")
        return self


class SearchSpec(StrictModel):
    """Optuna budget per tuned candidate (xgboost, lightgbm, logistic_regression)."""

    n_trials: int = 0  # 0 = no search: the candidates' default parameters
    timeout_s: float | None = 120
    cv_folds: int = 3


class ThresholdSpec(StrictModel):
    """How probabilities become a contact / do-not-contact decision."""

    policy: Literal["max_f1", "capacity", "expected_value"] = "max_f1"
    capacity_per_week: int | None = None
    leads_per_week: float | None = None
    value_per_conversion: float | None = None
    cost_per_contact: float | None = None

    @model_validator(mode="after")
    def _needs(self) -> ThresholdSpec:
        if self.policy == "capacity" and not (self.capacity_per_week and self.leads_per_week):
            raise ValueError("threshold policy 'capacity' needs capacity_per_week and leads_per_week")
        if self.policy == "expected_value" and (self.value_per_conversion is None or self.cost_per_contact is None):
            raise ValueError("threshold policy 'expected_value' needs value_per_conversion and cost_per_contact")
        return self


class ModelSpec(StrictModel):
    candidates: list[CandidateName] = Field(
        default_factory=lambda: ["dummy", "logistic_regression", "random_forest", "xgboost", "lightgbm"]
    )
    selection_metric: Literal["roc_auc", "pr_auc", "neg_brier", "neg_log_loss"] = "roc_auc"
    seed: int = 42
    imbalance: Literal["class_weight", "smote", "none"] = "class_weight"
    search: SearchSpec = Field(default_factory=SearchSpec)
    calibration: Literal["auto", "sigmoid", "isotonic", "none"] = "auto"
    threshold: ThresholdSpec = Field(default_factory=ThresholdSpec)
    explain_max_rows: int = 50_000  # larger sources are explained in chunks of this size

    @field_validator("candidates")
    @classmethod
    def _needs_dummy(cls, v: list[str]) -> list[str]:
        if "dummy" not in v:
            raise ValueError("candidates must include 'dummy': every model is judged against it")
        return v


class ValidationSpec(StrictModel):
    """Table-level limits enforced by blocking asset checks."""

    max_quarantine_share: float = 0.25
    min_rows: int = 50
    ordered_columns: bool = False  # the declared columns must appear in the source in this order
    row_rules: list[RowRule] = Field(default_factory=list)
    positive_rate: tuple[float, float] = (0.0, 1.0)  # labelled positive share must fall inside


class FeedbackSpec(StrictModel):
    """CRM outcome files dropped under `folder` (relative to the data directory).

    Outcomes map to labels through `outcome_labels`; a lead's newest outcome overrides the
    label its source row implies.
    """

    folder: str
    outcome_labels: dict[str, int] = Field(
        default_factory=lambda: {"won": 1, "replied": 1, "lost": 0, "no_reply": 0}
    )


class PromotionSpec(StrictModel):
    """When a challenger replaces the champion (compared on the same held-out rows)."""

    min_gain: float = 0.002  # in the selection metric
    max_prediction_psi: float = 0.25
    max_feature_drift_share: float = 0.5
    max_champion_age_days: float = 90
    near_parity_ratio: float = 0.95  # an old champion yields to a challenger this close to it


class RevenueSpec(StrictModel):
    """Two-stage value model: `column` holds the order value of converting leads (never a feature)."""

    column: str


class ProjectConfig(StrictModel):
    """One lead-scoring project: a source and everything needed to score it."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str = ""
    owner: str = "team:growth-data"
    source: SourceSpec
    id_column: str
    normalise: NormaliseSpec = Field(default_factory=NormaliseSpec)
    personal_data: list[str] = Field(default_factory=list)
    # Omitted: columns are typed from the data (see lib/column_typing.py).
    columns: dict[str, ColumnSpec] = Field(default_factory=dict)
    label: LabelSpec
    features: FeatureSpec = Field(default_factory=FeatureSpec)
    split: SplitSpec = Field(default_factory=SplitSpec)
    models: ModelSpec = Field(default_factory=ModelSpec)
    validation: ValidationSpec = Field(default_factory=ValidationSpec)
    feedback: FeedbackSpec | None = None
    revenue: RevenueSpec | None = None
    promotion: PromotionSpec = Field(default_factory=PromotionSpec)
    retrain_schedule: str | None = "0 2 * * *"  # nightly retrain + rescore, off until switched on in the UI

    @model_validator(mode="after")
    def _columns_known(self) -> ProjectConfig:
        if not self.columns:  # typed from the data: checked against it by unknown_columns()
            return self
        problems = self.unknown_columns(self.columns)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def unknown_columns(self, known: dict | set) -> list[str]:
        """Every column the config names that is not among `known`, as readable problems."""
        problems = []
        if self.id_column not in known:
            problems.append(f"id_column '{self.id_column}' is not a column")
        for group, names in (
            ("features.exclude", self.features.exclude),
            ("features.dates", list(self.features.dates)),
            ("features.multi_hot", list(self.features.multi_hot)),
            ("features.target_encode", self.features.target_encode),
            ("personal_data", self.personal_data),
        ):
            problems += [f"{group} names unknown column '{n}'" for n in names if n not in known]
        if self.revenue and self.revenue.column not in known:
            problems.append(f"revenue.column '{self.revenue.column}' is not a column")
        if self.split.time_column and self.split.time_column not in known:
            problems.append(f"split.time_column '{self.split.time_column}' is not a column")
        return problems

    @property
    def registered_model_name(self) -> str:
        return f"leadscore-{self.name}"

    def label_columns(self) -> set[str]:
        """Columns the label rule reads: they define the outcome, so they are never features."""
        words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", f"{self.label.positive} {self.label.negative}"))
        return words & set(self.columns)

    def feature_columns(self) -> list[str]:
        """Validated columns that may feed a model: never the id, personal data, exclusions or the
        columns the label rule reads, nor free text or dates that are not expanded."""
        dropped = {self.id_column, *self.personal_data, *self.features.exclude, *self.label_columns()}
        if self.revenue:
            dropped.add(self.revenue.column)
        return [
            c
            for c, spec in self.columns.items()
            if c not in dropped and spec.type != "text" and (spec.type != "datetime" or c in self.features.dates)
        ]


def load_project_config(path: str | Path) -> ProjectConfig:
    """Read a project YAML (either bare or under a component's `attributes:` key)."""
    raw = yaml.safe_load(Path(path).read_text())
    if isinstance(raw, dict) and "attributes" in raw:
        raw = raw["attributes"]
    return ProjectConfig.model_validate(raw)
