"""Source adapters (I/O): CSV, Parquet, SQLite and DuckDB tables into the warehouse, verbatim.

Each loaded row carries `_source_file` and a 1-based `_row_number` so every later reason can
point at it. A single CSV is read as text (`lib/sources/csv_text.py`: nothing is coerced before
validation can see it); Parquet, SQLite and DuckDB keep their own types. Parquet is read by
DuckDB itself, so large files stream into the warehouse without passing through pandas. No
DuckDB extension is used (none can be downloaded at run time): SQLite is read with the
standard library. A record cut short goes to the source quarantine with its reason.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from leadscore_assets.lib.project.config import ProjectConfig, TableSpec
from leadscore_assets.lib.sources.csv_text import SNIFF_BYTES, CsvText, SourceFileError, choose_delimiter, csv_as_text
from leadscore_assets.lib.project.data_paths import DataPathError, inside_data_dir
from leadscore_assets.lib.project.sql_rules import ConfigSqlError, check_reads_only, parse_select
from leadscore_assets.lib.validation import FILE, ROW, redacted



@dataclass(frozen=True)
class SourceTargets:
    """The warehouse tables the loader writes, named by its caller (the pipeline passes its table
    contract's names, assets/tables.py): the leads, the source quarantine, and each table of a
    multi-table source."""

    raw: str
    quarantine: str
    table: Callable[[str], str]  # source table name -> its warehouse table

    @classmethod
    def scratch(cls, schema: str) -> "SourceTargets":
        """Names in a throw-away database (a day's rows read for daily scoring, tests)."""
        return cls(f"{schema}.raw_contacts", f"{schema}.quarantined_source_rows", lambda name: f"{schema}.source_{name}")

_log = logging.getLogger(__name__)


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def source_path(config: ProjectConfig, data_dir: Path, name: str) -> Path:
    """Where source table `name` is read from: its YAML path under `data_dir`, refused (naming the
    YAML key, the path and the data folder) when it resolves outside the data folder, symlinks
    followed. The YAML's own check at load time is lexical only: here the real folder is known."""
    key = ("source", "tables", name, "path") if config.source.tables else ("source", "path")
    try:
        return inside_data_dir(data_dir, config.source.table_specs()[name].path, key)
    except DataPathError as err:
        raise SourceFileError(f"project '{config.name}': {err}") from err


def _check_file(path: Path) -> None:
    if not path.exists():
        raise SourceFileError(
            f"{path}: source file not found (generate demo data with `python -m leadscore_assets.demo_data all`)"
        )
    if path.stat().st_size == 0:
        raise SourceFileError(f"{path}: file is empty (no header row)")


def read_csv_as_text(path: Path, delimiter: str = ",") -> CsvText:
    """Every value as text, blanks kept as empty strings, numbered data rows."""
    _check_file(path)
    return csv_as_text(path, path.read_bytes(), delimiter)


@dataclass
class LoadedTable:
    rows: int  # data rows read into the table
    cut_short: dict[int, str] = field(default_factory=dict)  # row number -> reason: to move to the quarantine
    notes: list[str] = field(default_factory=list)


def load_table(conn: duckdb.DuckDBPyConnection, target: str, path: Path, spec: TableSpec, as_text: bool) -> LoadedTable:
    """Load one source table into `target` with `_row_number` and `_source_file`."""
    _check_file(path)
    label = path.name if spec.kind in ("csv", "parquet") else f"{path.name}:{spec.table}"
    cut_short: dict[int, str] = {}
    notes: list[str] = []
    try:
        if spec.kind == "csv" and as_text:
            read = read_csv_as_text(path, spec.delimiter)
            cut_short, notes = read.cut_short, read.notes
            conn.register("_frame", read.frame)
            conn.execute(f"CREATE OR REPLACE TABLE {target} AS SELECT * FROM _frame")
            conn.unregister("_frame")
        elif spec.kind == "csv":
            with path.open("rb") as fh:
                head = fh.read(SNIFF_BYTES).decode("utf-8-sig", errors="replace")
            delimiter, note = choose_delimiter(path, head, spec.delimiter)
            notes = [note] if note else []
            conn.execute(
                f"CREATE OR REPLACE TABLE {target} AS SELECT row_number() OVER () AS {ROW}, {_sql_str(label)} AS {FILE}, * "
                f"FROM read_csv({_sql_str(str(path))}, header = true, delim = {_sql_str(delimiter)})"
            )
        elif spec.kind == "parquet":
            conn.execute(
                f"CREATE OR REPLACE TABLE {target} AS SELECT file_row_number + 1 AS {ROW}, {_sql_str(label)} AS {FILE}, "
                f"* EXCLUDE (file_row_number) FROM read_parquet({_sql_str(str(path))}, file_row_number = true)"
            )
        elif spec.kind == "sqlite":
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as lite:
                frame = pd.read_sql_query(f'SELECT * FROM "{spec.table}"', lite)
            frame.insert(0, ROW, range(1, len(frame) + 1))
            frame[FILE] = label
            conn.register("_frame", frame)
            conn.execute(f"CREATE OR REPLACE TABLE {target} AS SELECT * FROM _frame")
            conn.unregister("_frame")
        else:  # duckdb
            conn.execute(f"ATTACH {_sql_str(str(path))} AS _byo (READ_ONLY)")
            try:
                conn.execute(
                    f"CREATE OR REPLACE TABLE {target} AS SELECT row_number() OVER () AS {ROW}, {_sql_str(label)} AS {FILE}, * "
                    f"FROM _byo.{spec.table}"
                )
            finally:
                conn.execute("DETACH _byo")
    except (duckdb.Error, sqlite3.Error, pd.errors.DatabaseError) as err:
        raise SourceFileError(f"{label}: cannot read table: {err}") from err
    rows = conn.execute(f"SELECT count(*) FROM {target}").fetchall()[0][0]
    return LoadedTable(rows=rows, cut_short=cut_short, notes=notes)


def quarantine_rows(
    conn: duckdb.DuckDBPyConnection, quarantine: str, source_table: str, target: str, reasons: dict[int, str]
) -> int:
    """Move rows of a loaded source table (by `_row_number`) into the source quarantine with their reasons.

    For rows set aside before validation by the reader itself (a record cut short), so that every
    input row still lands in exactly one place; the row's values are kept as JSON. Returns the count.
    """
    if not reasons:
        return 0
    moved = pd.DataFrame({ROW: list(reasons), "reason": list(reasons.values())}).astype({ROW: "int64", "reason": object})
    conn.register("_moved_rows", moved)
    try:
        conn.execute(f"""
            INSERT INTO {quarantine}
            SELECT {_sql_str(source_table)}, t.{ROW}, t.{FILE}, m.reason, to_json(t)::VARCHAR
            FROM {target} t JOIN _moved_rows m ON t.{ROW} = m.{ROW} ORDER BY t.{ROW}
        """)
        conn.execute(f"DELETE FROM {target} WHERE {ROW} IN (SELECT {ROW} FROM _moved_rows)")
    finally:
        conn.unregister("_moved_rows")
    return len(reasons)


def apply_row_rules(conn: duckdb.DuckDBPyConnection, config: ProjectConfig, name: str, spec: TableSpec, target: str,
                    quarantine: str) -> int:
    """Move rows of a source table that break its rules into the source quarantine; return count."""
    if not spec.row_rules:
        return 0
    failed = " || ".join(
        f"CASE WHEN coalesce(({r.expression}), true) THEN '' ELSE "
        f"{_sql_str(f'rule {r.name!r} ({r.expression}) is false; ')} END"
        for r in spec.row_rules
    )
    try:
        conn.execute(f"""
            CREATE TEMP TABLE _rule_failures AS
            SELECT {_sql_str(name)} AS source_table, {ROW}, {FILE},
                   {FILE} || ' row ' || {ROW} || ': ' || rtrim({failed}, '; ') AS reason,
                   to_json(t)::VARCHAR AS raw_values
            FROM {target} t WHERE ({failed}) <> ''
        """)
    except duckdb.Error as err:  # a conversion error quotes the value ("Could not convert string 'x'"): redacted
        raise SourceFileError(f"project '{config.name}': a row rule of source table '{name}' is invalid: "
                              f"{redacted(err)}") from None
    conn.execute(f"INSERT INTO {quarantine} SELECT * FROM _rule_failures")
    n = conn.execute("SELECT count(*) FROM _rule_failures").fetchall()[0][0]
    conn.execute(f"DELETE FROM {target} WHERE {ROW} IN (SELECT {ROW} FROM _rule_failures)")
    conn.execute("DROP TABLE _rule_failures")
    return n


def load_source(
    conn: duckdb.DuckDBPyConnection, config: ProjectConfig, data_dir: Path, targets: SourceTargets,
    log: Callable[[str], None] | None = None,
) -> dict[str, int]:
    """Build `targets.raw` (the leads) from the configured source; return row counts per table.

    `<table>` counts the data rows read; `<table>_cut_short` and `<table>_rule_failures` how many
    of them went to the source quarantine instead. Notes on what was inferred while reading (a
    delimiter or an encoding other than configured) go to `log` (default: this module's logger).
    """
    log = log or _log.warning
    schema = config.name
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    conn.execute(
        f"CREATE OR REPLACE TABLE {targets.quarantine} (source_table VARCHAR, {ROW} BIGINT, {FILE} VARCHAR, "
        f"reason VARCHAR, raw_values VARCHAR)"
    )
    source = config.source
    counts: dict[str, int] = {}

    def load(name: str, spec: TableSpec, target: str, as_text: bool) -> None:
        loaded = load_table(conn, target, source_path(config, data_dir, name), spec, as_text=as_text)
        for note in loaded.notes:
            log(note)
        counts[name] = loaded.rows
        if loaded.cut_short:
            counts[f"{name}_cut_short"] = quarantine_rows(conn, targets.quarantine, name, target, loaded.cut_short)
        counts[f"{name}_rule_failures"] = apply_row_rules(conn, config, name, spec, target, targets.quarantine)

    if not source.tables:
        load("contacts", source.table_specs()["contacts"], targets.raw, as_text=True)
        return counts
    for name, spec in source.tables.items():
        target = targets.table(name)
        load(name, spec, target, as_text=False)
        conn.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT * FROM {target}")
    try:  # checked when the YAML loaded; again here for a config built in code (model_copy skips validators)
        check_reads_only(parse_select(source.query, "source.query"), list(source.tables), "source.query")
    except ConfigSqlError as err:
        raise SourceFileError(f"project '{config.name}': {err}") from err
    try:
        conn.execute(f"CREATE OR REPLACE TABLE {targets.raw} AS {source.query}")
    except duckdb.Error as err:
        raise SourceFileError(f"project '{config.name}': source.query failed: {redacted(err)}") from None
    cols = [r[0] for r in conn.execute(f"DESCRIBE {targets.raw}").fetchall()]
    if ROW not in cols or FILE not in cols:
        raise SourceFileError(
            f"project '{config.name}': source.query must select the primary table's {ROW} and {FILE} "
            "so that quarantine reasons point at real rows"
        )
    counts["raw_contacts"] = conn.execute(f"SELECT count(*) FROM {targets.raw}").fetchall()[0][0]
    return counts


def load_rows_between(config: ProjectConfig, data_dir: Path, column: str, start, end) -> pd.DataFrame:
    """The source rows, as `raw_contacts` holds them, whose `column` (a canonical name) falls in
    [start, end): one day's leads for `daily_scores`.

    A single Parquet source is filtered by DuckDB as it reads, so reading a day costs about a
    day plus one pass over the date column, not a load of the whole table. Other sources are
    loaded as the pipeline loads them (into a throw-away in-memory database), then filtered:
    their reading grows with the table, the scoring after it only with the day.
    """
    conn = duckdb.connect()
    try:
        spec = config.source.table_specs().get("contacts")
        if not config.source.tables and spec.kind == "parquet":
            path = source_path(config, data_dir, "contacts")
            _check_file(path)
            table = (f"(SELECT file_row_number + 1 AS {ROW}, {_sql_str(path.name)} AS {FILE}, * EXCLUDE (file_row_number) "
                     f"FROM read_parquet({_sql_str(str(path))}, file_row_number = true))")
        else:
            targets = SourceTargets.scratch(config.name)
            load_source(conn, config, data_dir, targets, log=lambda _note: None)
            table = targets.raw
        names = [r[0] for r in conn.execute(f"DESCRIBE SELECT * FROM {table}").fetchall()]
        raw = next((n for n in names if config.naming.canonical(n) == column), None)
        if raw is None:
            raise SourceFileError(f"project '{config.name}': daily_scoring.date_column '{column}' is not a source column")
        return conn.execute(f'SELECT * FROM {table} WHERE TRY_CAST("{raw}" AS TIMESTAMP) >= ? '
                            f'AND TRY_CAST("{raw}" AS TIMESTAMP) < ? ORDER BY {ROW}', [start, end]).df()
    finally:
        conn.close()
