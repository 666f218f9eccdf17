"""The warehouse contract: every table a project's assets write, which asset writes it, the
columns its readers rely on, and typed reads and writes.

Each table is an asset (or one spec of a multi-asset) with the same key, `[project, table]`,
so the lineage in the UI is the data flow. A DuckDB table is `<project>.<table>` in the
project's own warehouse file (see resources/warehouse.py). Readers name a table through this
module (`FEATURES.read(conn, config)`), never through a string.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import dagster as dg
import duckdb
import pandas as pd

from leadscore_assets.assets.specs import asset_kwargs
from leadscore_assets.lib.project.config import ProjectConfig


class TableContractError(ValueError):
    """A frame written to a table lacks a column the table's readers rely on."""


@dataclass(frozen=True)
class Table:
    name: str
    description: str
    columns: tuple[str, ...] = ()  # what readers rely on (a frame may carry more)
    history: bool = False  # appended run after run; never replaced

    def of(self, config: ProjectConfig) -> str:
        """The DuckDB name: schema = project, table = asset name."""
        return self.at(config.name)

    def at(self, project: str) -> str:
        """The DuckDB name in `project`'s warehouse, for readers that know only the project's name."""
        return f"{project}.{self.name}"

    def key(self, config: ProjectConfig) -> dg.AssetKey:
        return dg.AssetKey([config.name, self.name])

    def exists(self, conn: duckdb.DuckDBPyConnection, config: ProjectConfig) -> bool:
        return bool(conn.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?", [config.name, self.name]
        ).fetchall()[0][0])

    def read(self, conn: duckdb.DuckDBPyConnection, config: ProjectConfig, where: str = "",
             params: list | None = None) -> pd.DataFrame:
        return conn.execute(f"SELECT * FROM {self.of(config)} {where}", params or []).df()

    def read_if_exists(self, conn: duckdb.DuckDBPyConnection, config: ProjectConfig) -> pd.DataFrame | None:
        return self.read(conn, config) if self.exists(conn, config) else None

    def write(self, conn: duckdb.DuckDBPyConnection, config: ProjectConfig, df: pd.DataFrame) -> None:
        """Replace the table with `df` (schema created on demand)."""
        self._check(df)
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {config.name}")
        with _registered(conn, df):
            conn.execute(f"CREATE OR REPLACE TABLE {self.of(config)} AS SELECT * FROM _frame")

    def write_select(self, conn: duckdb.DuckDBPyConnection, config: ProjectConfig, query: str) -> None:
        """Replace the table with the rows of a SQL query over the warehouse (nothing through pandas),
        its columns held to the contract first."""
        have = [r[0] for r in conn.execute(f"DESCRIBE {query}").fetchall()]
        self._check(pd.DataFrame(columns=have))
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {config.name}")
        conn.execute(f"CREATE OR REPLACE TABLE {self.of(config)} AS {query}")

    def write_batches(self, conn: duckdb.DuckDBPyConnection, config: ProjectConfig, frames: Iterable[pd.DataFrame],
                      order_by: str | None = None) -> int:
        """Replace the table with the rows of `frames`, written one frame at a time, so memory holds
        one frame, never the table; then, given `order_by` (SQL), rewrite it in that order within
        DuckDB, ties in the order the rows came. Returns the rows written. The first frame decides
        the column types; every frame is held to the contract."""
        name, rows, first = self.of(config), 0, True
        for df in frames:
            if first:
                self.write(conn, config, df)
                first = False
            else:
                self._check(df)
                with _registered(conn, df):
                    conn.execute(f"INSERT INTO {name} BY NAME SELECT * FROM _frame")
            rows += len(df)
        if first:
            raise ValueError(f"no frame given for table {self.name!r}: not even an empty one for its columns")
        if order_by:
            conn.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM {name} ORDER BY {order_by}, rowid")
        return rows

    def append(self, conn: duckdb.DuckDBPyConnection, config: ProjectConfig, df: pd.DataFrame) -> None:
        """Append rows, creating the table the first time and adding any column a newer release
        writes (older rows get NULL there): history tables outlive releases."""
        if not self.exists(conn, config):
            self.write(conn, config, df)
            return
        self._check(df)
        name = self.of(config)
        with _registered(conn, df):
            have = {r[0] for r in conn.execute(f"DESCRIBE {name}").fetchall()}
            for column, kind in conn.execute("SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM _frame)").fetchall():
                if column not in have:
                    conn.execute(f'ALTER TABLE {name} ADD COLUMN "{column}" {kind}')
            conn.execute(f"INSERT INTO {name} BY NAME SELECT * FROM _frame")

    def spec(self, config: ProjectConfig, layer: str, kinds: set[str], deps: list | None = None) -> dg.AssetSpec:
        """This table as one spec of the multi-asset that writes it."""
        return dg.AssetSpec(deps=deps or [], **asset_kwargs(config, self.name, layer, self.description, kinds))

    def _check(self, df: pd.DataFrame) -> None:
        missing = [c for c in self.columns if c not in df.columns]
        if missing:
            raise TableContractError(f"table {self.name!r} needs columns {missing}; the frame has {list(df.columns)}")


class _registered:
    """`df` visible to SQL as `_frame` while the block runs (all-null object columns as text, so
    DuckDB never creates a column of type NULL)."""

    def __init__(self, conn: duckdb.DuckDBPyConnection, df: pd.DataFrame):
        empty = [c for c in df.columns if df[c].dtype == object and df[c].isna().all()]
        self.conn, self.df = conn, (df.astype({c: "string" for c in empty}) if empty else df)

    def __enter__(self):
        self.conn.register("_frame", self.df)

    def __exit__(self, *exc):
        self.conn.unregister("_frame")


RAW_CONTACTS = Table("raw_contacts", "The source as delivered, one row per lead, with its file and row number.")
QUARANTINED_SOURCE_ROWS = Table(
    "quarantined_source_rows", "Source-table rows that never became a lead: cut short, or breaking a table's row rules.",
    ("source_table", "reason"))
VALIDATED_CONTACTS = Table("validated_contacts", "Typed, normalised contacts that pass every rule of the project config.")
QUARANTINED_CONTACTS = Table("quarantined_contacts", "Raw rows that failed validation, verbatim, each with its reason.")
COLUMN_TYPES = Table("column_types", "The column types validation used (declared in YAML or inferred from the data).",
                     ("column_name", "spec"))
FEEDBACK_OUTCOMES = Table("feedback_outcomes", "Every CRM outcome row landed, with its file, content hash, row and time.",
                          history=True)
FEEDBACK_QUARANTINE = Table("feedback_quarantine", "Feedback rows that could not be used, with the reason.", history=True)
FEEDBACK_UNKNOWN_LEADS = Table("feedback_unknown_leads", "Feedback rows naming a lead id the source does not have.",
                               history=True)
FEEDBACK_BATCHES = Table("feedback_batches", "One row per feedback file landed: counts and content hash.",
                         ("file", "content_hash", "received_at"), history=True)
FEEDBACK_LABELS = Table("feedback_labels", "One resolved outcome per lead (the latest wins).",
                        ("lead_id", "label", "content_hash"))
FEEDBACK_RESOLUTIONS = Table("feedback_resolutions", "Leads with conflicting outcomes and how each was resolved.")
LABELS = Table("labels", "1 / 0 / open per lead, from the label rule or CRM feedback.", ("lead_id", "label"))
FEATURES = Table("features", "Model inputs per lead (no personal data), label and split.", ("lead_id", "label", "split"))
FEATURE_SCHEMA = Table("feature_schema", "Which feature columns are numeric, categorical, target-encoded or multi-hot.")
CANDIDATE_MODELS = Table("candidate_models", "The leaderboard: every candidate's score and MLflow run.",
                         ("candidate", "run_id", "model_uri", "selection_score", "chosen"))
EVALUATION_REPORT = Table("evaluation_report", "The challenger's test figures, threshold and MLflow model.",
                          ("candidate", "run_id", "model_uri", "threshold"))
DRIFT_SUMMARY = Table("drift_summary", "Drift per kind (features, scores, labels) against the champion's training data.",
                      ("kind", "drift_share", "psi"))
MODEL_DECISIONS = Table("model_decisions", "Every champion/challenger decision, its figures and reason.",
                        ("decision", "challenger_version", "dagster_run_id"), history=True)
REVENUE_MODEL = Table("revenue_model", "The order-value model's MLflow URI and test figures.", ("model_uri",))
LEAD_SCORES = Table("lead_scores", "Every lead's probability, decile, grade, contact flag and reasons.",
                    ("lead_id", "probability", "grade", "contact", "model_version"))
SCORE_HISTORY = Table(
    "score_history", "Each lead's score every time it changed (version, grade, decile or probability), with when "
    "and by which run: what a CRM outcome is matched against.",
    ("lead_id", "probability", "decile", "grade", "model_version", "scored_at", "dagster_run_id"), history=True)
SCORE_EFFECTIVENESS = Table(
    "score_effectiveness", "Conversion of CRM outcomes by the grade and decile each lead had when it was scored, "
    "per month of scoring, with 95% intervals.", ("dimension", "value", "scored_month", "outcomes", "converted"))

TABLES = (RAW_CONTACTS, QUARANTINED_SOURCE_ROWS, VALIDATED_CONTACTS, QUARANTINED_CONTACTS, COLUMN_TYPES,
          FEEDBACK_OUTCOMES, FEEDBACK_QUARANTINE, FEEDBACK_UNKNOWN_LEADS, FEEDBACK_BATCHES, FEEDBACK_LABELS,
          FEEDBACK_RESOLUTIONS, LABELS, FEATURES, FEATURE_SCHEMA, CANDIDATE_MODELS, EVALUATION_REPORT, DRIFT_SUMMARY,
          MODEL_DECISIONS, REVENUE_MODEL, LEAD_SCORES, SCORE_HISTORY, SCORE_EFFECTIVENESS)


def exists(conn: duckdb.DuckDBPyConnection, qualified: str) -> bool:
    """Whether `<schema>.<table>` exists (for tools that know a table only by its name)."""
    schema, name = qualified.split(".")
    return bool(conn.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?",
                             [schema, name]).fetchall()[0][0])


def source_table(name: str) -> Table:
    """A table of a multi-table source (`source.tables.<name>`), loaded before the source query."""
    return Table(f"source_{name}", f"Source table '{name}' as delivered, rows breaking its rules quarantined.")


def declared(config: ProjectConfig) -> tuple[Table, ...]:
    """Every table the project's assets write."""
    sources = tuple(source_table(n) for n in config.source.tables)
    feedback = (FEEDBACK_OUTCOMES, FEEDBACK_QUARANTINE, FEEDBACK_UNKNOWN_LEADS, FEEDBACK_BATCHES, FEEDBACK_LABELS,
                FEEDBACK_RESOLUTIONS, SCORE_EFFECTIVENESS)
    return (*sources, *(t for t in TABLES if (config.feedback or t not in feedback)
                        and (config.revenue or t is not REVENUE_MODEL)))
