"""The per-source configuration: one YAML file describes one lead source end to end.

These are plain pydantic models so the pure modules (validation, labels, features, training)
can be driven and tested without Dagster; the Dagster component only wraps them.
Unknown keys are rejected so a typo in a YAML file fails loudly instead of being ignored.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from leadscore_assets.lib.project.column_names import ColumnNaming
from leadscore_assets.lib.project.data_paths import relative_path
from leadscore_assets.lib.modelling.families import FAMILIES
from leadscore_assets.lib.project.sql_rules import check_reads_only, columns_read, parse_row_expression, parse_select

ColumnType = Literal["string", "integer", "float", "boolean", "datetime", "text"]
DatePart = Literal["weekday", "hour", "month", "day_of_year", "quarter", "weekend", "days_since"]
# spline_logistic and random_forest stay available by name but are not in the default set: on the
# real-table benchmark's tuning half they rarely won, and the spline model cost half of a run on
# wide tables (131 s and 276 s) for a model that then lost. catboost (an optional extra) is
# available by name and not in the default set until the quality benchmark says otherwise.
DEFAULT_CANDIDATES = ("dummy", "logistic_regression", "xgboost", "lightgbm")
CandidateName = Literal[tuple(FAMILIES)]  # every model family (lib/model_families) by name


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
        if self.query:
            tree = parse_select(self.query, "source.query", ("source", "query"))
            check_reads_only(tree, list(self.tables), "source.query", ("source", "query"))
        for name, table in self.table_specs().items():
            relative_path(table.path, ("source", "tables", name, "path") if self.tables else ("source", "path"))
            key = ("source", "tables", name, "row_rules") if self.tables else ("source", "row_rules")
            for rule in table.row_rules:
                parse_row_expression(rule.expression, f"source table {name!r} row rule {rule.name!r}", key)
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
    # has_<column> indicators for personal-data columns (has_phone, has_picture): the presence of
    # a contact detail is a signal, its value never is. Off for projects where presence leaks.
    presence_flags: bool = True
    # Columns that separate the training labels almost perfectly on their own fail the blocking
    # `no_label_leakage` check; a project that knows such a column is legitimate names it here.
    accept_leaky: list[str] = Field(default_factory=list)
    max_single_feature_auc: float = 0.95
    # Columns whose values look like personal data (emails, phones, URLs, names) fail the blocking
    # `no_personal_data` check unless listed here as known not to be personal.
    not_personal: list[str] = Field(default_factory=list)
    # Columns that describe how the export was made rather than the lead (when a row was imported,
    # which list or campaign it came through): still model inputs, never offered to a seller as a
    # reason for a lead's score. A date column covers all its parts, a personal-data column its
    # has_<column> flag (read by lib/scoring/explain.py's ReasonWording.of). By default every feature may
    # be a reason, a date's parts as one reason.
    not_reasons: list[str] = Field(default_factory=list)


class SplitSpec(StrictModel):
    """Train / validation / test split. Out-of-time when `time_column` is set."""

    time_column: str | None = None
    validation_share: float = 0.2
    test_share: float = 0.2
    seed: int = 42
    # CRM feedback teaches from the first file on: of the newest batch this share (stratified)
    # is held out, so champion and challenger are judged on outcomes neither learnt from; the
    # rest of it, and every older batch, is trained on.
    feedback_holdout_share: float = 0.5

    @model_validator(mode="after")
    def _shares(self) -> SplitSpec:
        if not (0 < self.validation_share < 0.5 and 0 < self.test_share < 0.5):
            raise ValueError("validation_share and test_share must each be in (0, 0.5)")
        return self


class SearchSpec(StrictModel):
    """Optuna budget per tuned candidate (the boosted trees): trials, and a cap in seconds on one
    search (the candidates also share `models.time_budget_s`)."""

    n_trials: int = 12  # 0 = no search: the candidates' default parameters
    timeout_s: float | None = 20
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
        default_factory=lambda: list(DEFAULT_CANDIDATES)
    )
    # Seconds the tuned candidates' searches share (None: each gets `search.timeout_s`).
    time_budget_s: float | None = 30
    # Also judge a log-odds blend of the blendable candidates (logistic regression and the boosted
    # trees; lib/modelling/blend.py), chosen like any candidate when it scores best.
    blend: bool = True
    selection_metric: Literal["roc_auc", "pr_auc", "neg_brier", "neg_log_loss"] = "roc_auc"
    seed: int = 42
    imbalance: Literal["class_weight", "smote", "none"] = "class_weight"
    search: SearchSpec = Field(default_factory=SearchSpec)
    calibration: Literal["auto", "sigmoid", "isotonic", "none"] = "auto"
    threshold: ThresholdSpec = Field(default_factory=ThresholdSpec)
    explain_max_rows: int = 50_000  # larger sources are explained in chunks of this size
    # Rows training, evaluation, the champion comparison, drift and the profile read at most: a larger
    # features table is read as a stratified sample of this size (lib/features/sample.py; every lead
    # is still scored). None: always every row.
    max_rows: int | None = 500_000
    # How the best candidate is chosen: on the validation split, or by stratified K-fold CV over
    # training + validation (stable when positives are few). `auto` uses CV while the validation
    # split holds fewer than `cv_below_validation_positives` positives.
    selection: Literal["auto", "holdout", "cv"] = "auto"
    cv_folds: int = 5
    cv_below_validation_positives: int = 300
    # Under CV selection, the model registered: the K fold models averaged in log-odds
    # (`fold_models`: fitted anyway to judge the candidate, no further fit; its out-of-fold scores
    # calibrate it and choose its threshold) or one more fit on all rows (`refit`).
    cv_model: Literal["fold_models", "refit"] = "refit"

    @field_validator("max_rows")
    @classmethod
    def _room_for_every_split(cls, v: int | None) -> int | None:
        if v is not None and v < 100:
            raise ValueError("max_rows must be at least 100 (or null: every row), room for every split's classes")
        return v

    @field_validator("candidates")
    @classmethod
    def _needs_dummy_and_installed(cls, v: list[str]) -> list[str]:
        if "dummy" not in v:
            raise ValueError("candidates must include 'dummy': every model is judged against it")
        if missing := [FAMILIES[n].install_hint() for n in dict.fromkeys(v) if not FAMILIES[n].installed()]:
            raise ValueError("; ".join(missing))  # e.g. catboost, an optional extra
        return v


class ValidationSpec(StrictModel):
    """Table-level limits enforced by blocking asset checks."""

    max_quarantine_share: float = 0.25
    min_rows: int = 50
    ordered_columns: bool = False  # the declared columns must appear in the source in this order
    row_rules: list[RowRule] = Field(default_factory=list)
    positive_rate: tuple[float, float] = (0.0, 1.0)  # labelled positive share must fall inside
    # Dates later than the load time plus this tolerance are quarantined per column (clock skew
    # and time zones need a little slack; a lead created next year is an error).
    future_tolerance_hours: float = 24


class FeedbackSpec(StrictModel):
    """CRM outcome files dropped under `folder` (relative to the data directory).

    Outcomes map to labels through `outcome_labels`; a lead's newest outcome overrides the
    label its source row implies.
    """

    folder: str
    outcome_labels: dict[str, int] = Field(
        default_factory=lambda: {"won": 1, "replied": 1, "lost": 0, "no_reply": 0}
    )

    @field_validator("folder")
    @classmethod
    def _inside_data_dir(cls, v: str) -> str:
        return relative_path(v, ("feedback", "folder"))


class PromotionSpec(StrictModel):
    """When a challenger replaces the champion (compared on the same held-out rows)."""

    min_gain: float = 0.002  # in the selection metric
    # the gain must also be credible: the lower end of its paired bootstrap interval at this level
    # reaches min_gain (on the newest feedback's held-out outcomes or on all held-out rows); 0 = off
    gain_confidence: float = 0.95
    max_prediction_psi: float = 0.25
    max_feature_drift_share: float = 0.5
    max_champion_age_days: float = 90
    near_parity_ratio: float = 0.95  # an old champion yields to a challenger this close to it
    # A lead model this good is almost always a leaked label; promoted only when acknowledged.
    max_plausible_auc: float = 0.99
    accept_near_perfect: bool = False


class RevenueSpec(StrictModel):
    """Two-stage value model: `column` holds the order value of converting leads (never a feature)."""

    column: str


class ConfigValueError(ValueError):
    """A value in the project YAML that cannot be used; `key` locates it for the error message."""

    def __init__(self, message: str, key: tuple[str, ...] = ()):
        super().__init__(message)
        self.key = key


class CallListSpec(StrictModel):
    """What the sales team sees next to each lead in the call list: the lead's non-personal
    context columns (company, job title, ...), never personal data."""

    columns: list[str] = Field(default_factory=list)
    top: int = 25  # leads shown on the lead_scores asset page


class TargetSpec(StrictModel):
    """A figure the business expects on the test rows (e.g. f1 >= 0.40, revenue_rmse <= 20)."""

    min: float | None = None
    max: float | None = None
    note: str = ""


class DailyScoringSpec(StrictModel):
    """Score each day's new or changed leads on their own (`<project>/daily_scores`, one
    partition per day), instead of rescoring every lead in every run.

    `date_column` says when a lead arrived or last changed (as the export names it); a day's
    partition scores the source rows whose value falls on that day (UTC) with the champion.
    """

    date_column: str
    start_date: str  # the first day with a partition, YYYY-MM-DD
    schedule_hour: int = 6  # the daily schedule scores yesterday at this hour (UTC)

    @model_validator(mode="after")
    def _valid(self) -> DailyScoringSpec:
        from datetime import date

        try:
            date.fromisoformat(self.start_date)
        except ValueError:
            raise ValueError(f"start_date {self.start_date!r} is not a YYYY-MM-DD date") from None
        if not 0 <= self.schedule_hour <= 23:
            raise ValueError(f"schedule_hour {self.schedule_hour} is not an hour of the day (0-23)")
        return self


class ProjectConfig(StrictModel):
    """One lead-scoring project: a source and everything needed to score it."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str = ""
    owner: str = "team:growth-data"
    source: SourceSpec
    id_column: str
    normalise: NormaliseSpec = Field(default_factory=NormaliseSpec)
    personal_data: list[str] = Field(default_factory=list)
    # Omitted: columns are typed from the data (see lib/sources/column_typing.py).
    columns: dict[str, ColumnSpec] = Field(default_factory=dict)
    label: LabelSpec
    features: FeatureSpec = Field(default_factory=FeatureSpec)
    split: SplitSpec = Field(default_factory=SplitSpec)
    models: ModelSpec = Field(default_factory=ModelSpec)
    validation: ValidationSpec = Field(default_factory=ValidationSpec)
    feedback: FeedbackSpec | None = None
    revenue: RevenueSpec | None = None
    promotion: PromotionSpec = Field(default_factory=PromotionSpec)
    call_list: CallListSpec = Field(default_factory=CallListSpec)
    # Test-set figures shown next to the measured value (met or not) in the evaluation report:
    # classification metric names (roc_auc, f1, precision, recall, ...) and revenue_<metric>.
    targets: dict[str, TargetSpec] = Field(default_factory=dict)
    daily_scoring: DailyScoringSpec | None = None
    retrain_schedule: str | None = "0 2 * * *"  # nightly retrain + rescore, off until switched on in the UI

    _written: dict[str, str] = PrivateAttr(default_factory=dict)  # canonical name -> as the YAML wrote it

    @field_validator("name")
    @classmethod
    def _usable_as_a_schema(cls, v: str) -> str:
        if not holds_tables_as_a_schema(v):
            raise ValueError(
                f"name {v!r} is a word DuckDB keeps for itself, and the warehouse keeps the project's tables in a "
                f"schema named after the project ({v}.features, ...); choose another name, e.g. '{v}_leads'")
        return v

    @model_validator(mode="after")
    def _canonical_names(self) -> ProjectConfig:
        """Every column the YAML names, in its normalised form: the one mapping the data gets too."""
        naming = self.naming
        written = dict(self._written)

        def canon(name: str) -> str:
            new = naming.canonical(name)
            if new != name:
                written.setdefault(new, name)
            return new

        self.id_column = canon(self.id_column)
        self.personal_data = [canon(c) for c in self.personal_data]
        self.columns = {canon(c): spec for c, spec in self.columns.items()}
        self.normalise.lowercase = [canon(c) for c in self.normalise.lowercase]
        f = self.features
        f.exclude = [canon(c) for c in f.exclude]
        f.dates = {canon(c): parts for c, parts in f.dates.items()}
        f.multi_hot = {canon(c): d for c, d in f.multi_hot.items()}
        f.target_encode = [canon(c) for c in f.target_encode]
        f.accept_leaky = [canon(c) for c in f.accept_leaky]
        f.not_personal = [canon(c) for c in f.not_personal]
        f.not_reasons = [canon(c) for c in f.not_reasons]
        if self.split.time_column:
            self.split.time_column = canon(self.split.time_column)
        if self.daily_scoring:
            self.daily_scoring.date_column = canon(self.daily_scoring.date_column)
        self.call_list.columns = [canon(c) for c in self.call_list.columns]
        if personal := [c for c in self.call_list.columns if c in self.personal_data]:
            raise ConfigValueError(f"call_list.columns names personal data {[self.written(c) for c in personal]}: "
                                 "the call list carries the lead id and non-personal context only",
                                 ("call_list", "columns"))
        if self.revenue:
            self.revenue.column = canon(self.revenue.column)
        for side in ("positive", "negative"):
            text, key = getattr(self.label, side), ("label", side)
            for col in columns_read(text, f"label.{side}", key):
                canon(col)
            setattr(self.label, side, naming.canonical_sql(text, f"label.{side}", key))
        for rule in self.validation.row_rules:
            where, key = f"validation row rule {rule.name!r}", ("validation", "row_rules")
            for col in columns_read(rule.expression, where, key):
                canon(col)
            rule.expression = naming.canonical_sql(rule.expression, where, key)
        self._written = written
        return self

    @model_validator(mode="after")
    def _columns_known(self) -> ProjectConfig:
        if not self.columns:  # typed from the data: checked against it by unknown_columns()
            return self
        problems = self.unknown_columns(self.columns)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def naming(self) -> ColumnNaming:
        return ColumnNaming(self.normalise.column_case, dict(self.normalise.rename))

    def written(self, name: str) -> str:
        """A canonical column name as the YAML wrote it, with the normalised form when they differ."""
        original = self._written.get(name)
        return f"'{original}' (normalised: '{name}')" if original else f"'{name}'"

    def unknown_columns(self, known: dict | set) -> list[str]:
        """Every column the config names that is not among `known`, as readable problems."""
        problems = []
        if self.id_column not in known:
            problems.append(f"id_column {self.written(self.id_column)} is not a column")
        for group, names in (
            ("features.exclude", self.features.exclude),
            ("features.dates", list(self.features.dates)),
            ("features.multi_hot", list(self.features.multi_hot)),
            ("features.target_encode", self.features.target_encode),
            ("features.accept_leaky", self.features.accept_leaky),
            ("features.not_personal", self.features.not_personal),
            ("features.not_reasons", self.features.not_reasons),
            ("personal_data", self.personal_data),
            ("call_list.columns", self.call_list.columns),
        ):
            problems += [f"{group} names unknown column {self.written(n)}" for n in names if n not in known]
        folded = {k.casefold() for k in known}
        problems += [f"label reads unknown column {self.written(n)}" for n in sorted(self.label_columns(known=None))
                     if n.casefold() not in folded]
        if self.revenue and self.revenue.column not in known:
            problems.append(f"revenue.column {self.written(self.revenue.column)} is not a column")
        if self.split.time_column and self.split.time_column not in known:
            problems.append(f"split.time_column {self.written(self.split.time_column)} is not a column")
        if self.daily_scoring and self.daily_scoring.date_column not in known:
            problems.append(f"daily_scoring.date_column {self.written(self.daily_scoring.date_column)} is not a column")
        return problems

    @property
    def registered_model_name(self) -> str:
        return f"leadscore-{self.name}"

    def label_columns(self, known: dict | set | None = ()) -> set[str]:
        """Columns the label rule reads: they define the outcome, so they are never features.

        Compared without regard to case (DuckDB resolves `Converted` to `converted`), against
        `known` (default: the declared columns) or, with `known=None`, as the rule reads them.
        """
        read = columns_read(self.label.positive, "label.positive") | columns_read(self.label.negative, "label.negative")
        if known is None:
            return read
        by_fold = {c.casefold(): c for c in (known or self.columns)}
        return {by_fold[c.casefold()] for c in read if c.casefold() in by_fold}

    def feature_columns(self) -> list[str]:
        """Validated columns that may feed a model: never the id, personal data, exclusions or the
        columns the label rule reads, nor free text or dates that are not expanded.
        Compared without regard to case, as DuckDB compares names."""
        dropped = {self.id_column, *self.personal_data, *self.features.exclude, *self.label_columns()}
        if self.revenue:
            dropped.add(self.revenue.column)
        dropped_folded = {c.casefold() for c in dropped}
        return [
            c
            for c, spec in self.columns.items()
            if c.casefold() not in dropped_folded and spec.type != "text"
            and (spec.type != "datetime" or c in self.features.dates)
        ]


class ProjectConfigError(ValueError):
    """A project YAML that cannot be used, with the file and line of what is wrong."""


@functools.cache
def holds_tables_as_a_schema(name: str) -> bool:
    """Whether DuckDB takes `name` bare as a schema (`name.features`): not its reserved words, nor
    the words that may only name a type or function (`join`, `like`), nor a built-in catalog
    (`temp`, `system`). Asked of DuckDB itself, in memory, so the answer moves with its version."""
    import duckdb

    conn = duckdb.connect()
    try:
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {name}")  # as the warehouse does
        conn.execute(f"CREATE OR REPLACE TABLE {name}.features AS SELECT 1 AS lead_id")
        return conn.execute(f"SELECT lead_id FROM {name}.features").fetchall() == [(1,)]
    except duckdb.Error:
        return False
    finally:
        conn.close()


def yaml_line(path: str | Path, key: tuple[str, ...]) -> int | None:
    """1-based line of `key` (under `attributes:` when the file is a component) in a YAML file."""
    try:
        node = yaml.compose(Path(path).read_text())
    except (OSError, yaml.YAMLError):
        return None
    line = None
    for part in (("attributes", *key) if key and _has_attributes(node) else key):
        if not isinstance(node, yaml.MappingNode):
            break
        match = next(((k, v) for k, v in node.value if k.value == part), None)
        if match is None:
            break
        line, node = match[0].start_mark.line + 1, match[1]
    return line


def _has_attributes(node) -> bool:
    return isinstance(node, yaml.MappingNode) and any(k.value == "attributes" for k, _ in node.value)


def located(err: Exception, path: str | Path) -> ProjectConfigError:
    """The validation error of a project YAML, each problem prefixed with file and line."""
    problems = []
    for detail in getattr(err, "errors", lambda: [])() or [{"msg": str(err), "loc": ()}]:
        cause = (detail.get("ctx") or {}).get("error")
        key = getattr(cause, "key", ()) or tuple(str(p) for p in detail.get("loc", ()) if not isinstance(p, int))
        line = yaml_line(path, key)
        where = f"{path}" + (f" line {line}" if line else "")
        message = str(cause) if cause is not None else detail["msg"]
        problems.append(f"{where}: {message}")
    return ProjectConfigError("\n".join(problems))


def load_project_config(path: str | Path) -> ProjectConfig:
    """Read a project YAML (either bare or under a component's `attributes:` key)."""
    raw = yaml.safe_load(Path(path).read_text())
    if isinstance(raw, dict) and "attributes" in raw:
        raw = raw["attributes"]
    try:
        return ProjectConfig.model_validate(raw)
    except ValueError as err:  # pydantic's ValidationError is a ValueError
        raise located(err, path) from err
