"""The per-source configuration: one YAML file describes one lead source end to end.

These are plain pydantic models so the pure modules (validation, labels, features, training)
can be driven and tested without Dagster; the Dagster component only wraps them.
Unknown keys are rejected so a typo in a YAML file fails loudly instead of being ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ColumnType = Literal["string", "integer", "float", "boolean", "datetime"]
CandidateName = Literal["dummy", "logistic_regression", "random_forest", "xgboost", "lightgbm"]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SourceSpec(StrictModel):
    """Where the raw rows come from. Paths are relative to the data directory."""

    kind: Literal["csv"] = "csv"
    path: str
    delimiter: str = ","


class NormaliseSpec(StrictModel):
    """How raw column names and values are cleaned before validation."""

    column_case: Literal["snake", "keep"] = "snake"
    rename: dict[str, str] = Field(default_factory=dict)
    lowercase: list[str] = Field(default_factory=list)


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
    """Which validated columns become model inputs.

    Personal-data columns and the id are always removed; `exclude` names the columns recorded
    after the outcome (leakage) or otherwise unfit. `date_parts` expands dates into calendar
    parts; other datetime columns are dropped.
    """

    exclude: list[str] = Field(default_factory=list)
    date_parts: list[str] = Field(default_factory=list)
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


class ModelSpec(StrictModel):
    candidates: list[CandidateName] = Field(
        default_factory=lambda: ["dummy", "logistic_regression", "random_forest", "xgboost", "lightgbm"]
    )
    selection_metric: Literal["roc_auc", "pr_auc", "neg_brier", "neg_log_loss"] = "roc_auc"
    seed: int = 42

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


class ProjectConfig(StrictModel):
    """One lead-scoring project: a source and everything needed to score it."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str = ""
    owner: str = "team:growth-data"
    source: SourceSpec
    id_column: str
    normalise: NormaliseSpec = Field(default_factory=NormaliseSpec)
    personal_data: list[str] = Field(default_factory=list)
    columns: dict[str, ColumnSpec]
    label: LabelSpec
    features: FeatureSpec = Field(default_factory=FeatureSpec)
    split: SplitSpec = Field(default_factory=SplitSpec)
    models: ModelSpec = Field(default_factory=ModelSpec)
    validation: ValidationSpec = Field(default_factory=ValidationSpec)

    @model_validator(mode="after")
    def _columns_known(self) -> ProjectConfig:
        known = set(self.columns)
        problems = []
        if self.id_column not in known:
            problems.append(f"id_column '{self.id_column}' is not declared under columns")
        for group, names in (
            ("features.exclude", self.features.exclude),
            ("features.date_parts", self.features.date_parts),
            ("personal_data", self.personal_data),
        ):
            problems += [f"{group} names unknown column '{n}'" for n in names if n not in known]
        if self.split.time_column and self.split.time_column not in known:
            problems.append(f"split.time_column '{self.split.time_column}' is not declared")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def registered_model_name(self) -> str:
        return f"leadscore-{self.name}"

    def feature_columns(self) -> list[str]:
        """Validated columns that may feed a model: never the id, personal data or exclusions."""
        dropped = {self.id_column, *self.personal_data, *self.features.exclude}
        return [
            c
            for c, spec in self.columns.items()
            if c not in dropped and (spec.type != "datetime" or c in self.features.date_parts)
        ]


def load_project_config(path: str | Path) -> ProjectConfig:
    """Read a project YAML (either bare or under a component's `attributes:` key)."""
    raw = yaml.safe_load(Path(path).read_text())
    if isinstance(raw, dict) and "attributes" in raw:
        raw = raw["attributes"]
    return ProjectConfig.model_validate(raw)
