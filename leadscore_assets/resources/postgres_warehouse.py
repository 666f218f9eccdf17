"""The published warehouse in PostgreSQL (the production profile; see deploy/prod).

A run still computes in its own staged DuckDB copy (write-audit-publish, resources/warehouse.py).
What changes is where the *published* tables live: readers on other machines (the sales team's
exports, BI tools) read PostgreSQL schema `<project>`, and a run rebuilds its starting copy from
there, so state kept across runs (decisions, feedback history, the champion's reference) survives
on any machine, container or pod, and a machine's local file can never be older than what was
last published elsewhere.

- `publish_schema` copies every table of the DuckDB schema `<project>` into a new PostgreSQL
  schema and, in the same transaction, drops the old one and renames the new one into its place:
  readers see the old tables or the new ones, never a mix, and a publish that fails anywhere
  leaves the old tables exactly as they were (nothing of it is committed).
- `restore_schema` does the reverse into a fresh DuckDB file (written beside the target and
  renamed into place, so a failed restore leaves no half file behind).

Data moves as CSV through psycopg2's COPY, the fastest path without the DuckDB postgres
extension. Types round-trip: every column carries its DuckDB type in a column comment
(`duckdb:<type>`), so TINYINT, TIMESTAMP_NS, DECIMAL, ENUM, lists and structs come back as they
were; the PostgreSQL column gets the closest native type (lists, structs and maps as jsonb) so
readers there can query them (as text when they hold NaN or Infinity, which JSON lacks).
PostgreSQL keeps microseconds, so nanoseconds of TIMESTAMP_NS are truncated (the pipeline writes
microsecond values). Tables created in PostgreSQL by someone else (no comment) come back with a
type mapped from PostgreSQL's.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from pathlib import Path

import duckdb

# advisory lock namespace (the first key of pg_advisory_*lock(int, int)); the second is hashtext(project)
_PUBLISH_LOCK = 0x4C5350  # publish (exclusive) vs restore (shared): a restore never reads a swap half done

# session settings that make PostgreSQL's text output what DuckDB's casts read back exactly
_PG_OPTIONS = "-c TimeZone=UTC -c DateStyle=ISO,YMD -c IntervalStyle=postgres -c extra_float_digits=1 -c bytea_output=hex"

_SCALARS = {
    "VARCHAR": "text", "BOOLEAN": "boolean",
    "TINYINT": "smallint", "SMALLINT": "smallint", "INTEGER": "integer", "BIGINT": "bigint",
    "UTINYINT": "smallint", "USMALLINT": "integer", "UINTEGER": "bigint", "UBIGINT": "numeric(20,0)",
    "HUGEINT": "numeric(39,0)", "UHUGEINT": "numeric(39,0)",
    "FLOAT": "real", "DOUBLE": "double precision",
    "DATE": "date", "TIME": "time", "TIME WITH TIME ZONE": "timetz", "INTERVAL": "interval",
    "TIMESTAMP": "timestamp", "TIMESTAMP_S": "timestamp", "TIMESTAMP_MS": "timestamp", "TIMESTAMP_NS": "timestamp",
    "TIMESTAMP WITH TIME ZONE": "timestamptz",
    "UUID": "uuid", "BLOB": "bytea", "JSON": "json",
}
_FROM_PG = {  # PostgreSQL's format_type() -> DuckDB, for columns without a duckdb: comment
    "text": "VARCHAR", "boolean": "BOOLEAN", "smallint": "SMALLINT", "integer": "INTEGER", "bigint": "BIGINT",
    "real": "FLOAT", "double precision": "DOUBLE", "date": "DATE", "time without time zone": "TIME",
    "timestamp without time zone": "TIMESTAMP", "timestamp with time zone": "TIMESTAMP WITH TIME ZONE",
    "interval": "INTERVAL", "uuid": "UUID", "bytea": "BLOB", "json": "JSON", "jsonb": "JSON", "numeric": "DOUBLE",
}
_NESTED = re.compile(r"(\[\d*\]$)|^(STRUCT|MAP|UNION)\(")
_TEXTUAL = {"VARCHAR", "JSON"}


def _pg_type(duckdb_type: str, where: str) -> str:
    if duckdb_type in _SCALARS:
        return _SCALARS[duckdb_type]
    if _NESTED.search(duckdb_type):
        return "jsonb"
    if m := re.fullmatch(r"DECIMAL\((\d+),\s*(\d+)\)", duckdb_type):
        return f"numeric({m[1]},{m[2]})"
    if duckdb_type.startswith("ENUM("):
        return "text"
    raise TypeError(f"{where}: DuckDB type {duckdb_type} has no PostgreSQL counterpart here; cast it before publishing")


def _duckdb_type(pg_type: str) -> str:
    if m := re.fullmatch(r"numeric\((\d+),(\d+)\)", pg_type):
        return f"DECIMAL({m[1]},{m[2]})" if int(m[1]) <= 38 else "DOUBLE"
    if pg_type.startswith(("character varying", "character")):
        return "VARCHAR"
    return _FROM_PG.get(pg_type, "VARCHAR")


def _q(name: str) -> str:
    """An identifier quoted for both DuckDB and PostgreSQL."""
    return '"' + name.replace('"', '""') + '"'


def _literal(path: Path) -> str:
    """A file name as a DuckDB string literal (COPY TO takes no parameters)."""
    return "'" + str(path).replace("'", "''") + "'"


def _export(column: str, duckdb_type: str) -> str:
    """What DuckDB writes to the CSV for one column: text PostgreSQL's COPY reads as the column's type."""
    if _NESTED.search(duckdb_type):
        return f"CAST(to_json({_q(column)}) AS VARCHAR)"
    if duckdb_type == "BLOB":
        return f"'\\x' || hex({_q(column)})"
    if duckdb_type.startswith("ENUM("):
        return f"CAST({_q(column)} AS VARCHAR)"
    return _q(column)


def _nonfinite_json(source, project: str, table: str, cols: list[tuple[str, str]]) -> set[str]:
    """Nested columns whose JSON holds NaN or Infinity, which jsonb refuses: they go to PostgreSQL as
    text (same JSON, not validated) and still come back exactly."""
    nested = [c for c, k in cols if _NESTED.search(k)]
    if not nested:
        return set()
    flags = ", ".join(f"coalesce(bool_or(regexp_matches(CAST(to_json({_q(c)}) AS VARCHAR), "
                      f"'[:,\\[](NaN|-?Infinity)[,\\]}}]')), false)" for c in nested)
    found = source.execute(f"SELECT {flags} FROM {_q(project)}.{_q(table)}").fetchone()
    return {c for c, bad in zip(nested, found) if bad}


def _pg_select(column: str, duckdb_type: str) -> str:
    """What PostgreSQL writes to the CSV for one column on restore."""
    if duckdb_type == "INTERVAL":  # months, days, microseconds: its text form mixes signs DuckDB cannot read
        c = _q(column)
        return (f"(extract(year from {c}) * 12 + extract(month from {c}))::int || ' ' || extract(day from {c})::int "
                f"|| ' ' || (extract(hour from {c}) * 3600000000 + extract(minute from {c}) * 60000000 "
                f"+ extract(microseconds from {c}))::bigint")
    return _q(column)


def _import(column: str, duckdb_type: str) -> str:
    """How DuckDB turns PostgreSQL's CSV text of one column back into its type."""
    if duckdb_type == "INTERVAL":
        part = [f"split_part({column}, ' ', {i})" for i in (1, 2, 3)]
        return (f"to_months(CAST({part[0]} AS INTEGER)) + to_days(CAST({part[1]} AS INTEGER)) "
                f"+ to_microseconds(CAST({part[2]} AS BIGINT))")
    if _NESTED.search(duckdb_type):
        return f"CAST(CAST({column} AS JSON) AS {duckdb_type})"
    if duckdb_type == "BLOB":
        return f"unhex(substr({column}, 3))"
    return f"CAST({column} AS {duckdb_type})"


def _connect(dsn: str):
    import psycopg2  # the `scale` extra: only the production profile needs it

    return psycopg2.connect(dsn, options=_PG_OPTIONS, application_name="leadscore-warehouse")


def publish_schema(dsn: str, duckdb_file: Path, project: str, lock_timeout_s: float = 60.0) -> dict[str, int]:
    """Publish every table of DuckDB schema `project` in `duckdb_file` as PostgreSQL schema `project`,
    all or nothing; returns table -> rows published.

    Everything happens in one transaction: load into `<project>__publishing`, then drop the old
    schema and rename the new one. Readers see the old or the new tables, never a mix; any failure
    rolls back and the old tables stay. A reader holding the old tables in an open transaction
    delays the swap by at most `lock_timeout_s`, after which the publish fails (and can be rerun)
    rather than queueing every other reader behind it. The DuckDB file must not be open for writing.
    """
    duckdb_file = Path(duckdb_file)
    loading = f"{project}__publishing"
    with duckdb.connect(str(duckdb_file), read_only=True) as source:
        columns: dict[str, list[tuple[str, str]]] = {}
        for table, column, kind in source.execute(
            "SELECT table_name, column_name, data_type FROM duckdb_columns() WHERE schema_name = ? "
            "ORDER BY table_name, column_index", [project]).fetchall():
            columns.setdefault(table, []).append((column, kind))
        if not columns:  # publishing nothing would drop every table readers have
            raise ValueError(f"{duckdb_file} has no tables in schema {project!r}: nothing published")
        published: dict[str, int] = {}
        conn = _connect(dsn)
        try:
            with conn, conn.cursor() as cur, tempfile.TemporaryDirectory(prefix=".pgcopy-", dir=duckdb_file.parent) as tmp:
                cur.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_PUBLISH_LOCK, project))
                cur.execute(f"DROP SCHEMA IF EXISTS {_q(loading)} CASCADE; CREATE SCHEMA {_q(loading)}")
                for table, cols in columns.items():
                    target = f"{_q(loading)}.{_q(table)}"
                    as_text = _nonfinite_json(source, project, table, cols)
                    defs = ", ".join(f"{_q(c)} {'text' if c in as_text else _pg_type(k, f'{project}.{table}.{c}')}"
                                     for c, k in cols)
                    cur.execute(f"CREATE TABLE {target} ({defs})")
                    for c, k in cols:
                        cur.execute(f"COMMENT ON COLUMN {target}.{_q(c)} IS %s", (f"duckdb:{k}",))
                    csv = Path(tmp) / "table.csv"
                    quoted = [c for c, k in cols if k in _TEXTUAL or k.startswith("ENUM(") or _NESTED.search(k)]
                    force = f", FORCE_QUOTE ({', '.join(_q(c) for c in quoted)})" if quoted else ""
                    select = ", ".join(f"{_export(c, k)} AS {_q(c)}" for c, k in cols)
                    # text columns quoted: a value `\.` on its own line must not read as COPY's end marker
                    source.execute(f"COPY (SELECT {select} FROM {_q(project)}.{_q(table)}) TO {_literal(csv)} "
                                   f"(FORMAT csv, HEADER false{force})")
                    with open(csv, encoding="utf-8") as f:
                        cur.copy_expert(f"COPY {target} FROM STDIN WITH (FORMAT csv)", f)
                    published[table] = cur.rowcount
                    cur.execute(f"ANALYZE {target}")
                cur.execute("SET LOCAL lock_timeout = %s", (f"{int(lock_timeout_s * 1000)}ms",))
                cur.execute(f"DROP SCHEMA IF EXISTS {_q(project)} CASCADE; ALTER SCHEMA {_q(loading)} RENAME TO {_q(project)}")
                cur.execute(f"COMMENT ON SCHEMA {_q(project)} IS %s", (json.dumps(
                    {"published_at": time.time(), "from": str(duckdb_file), "tables": published}),))
        finally:
            conn.close()
    return published


def restore_schema(dsn: str, project: str, duckdb_file: Path) -> bool:
    """Rebuild DuckDB schema `project` in a new `duckdb_file` from PostgreSQL schema `project` (a
    run's starting point, on whatever machine it runs). False, and no file written, when
    PostgreSQL holds no tables for the project (nothing published yet).

    All tables are read from one snapshot while no publish can swap them (a shared advisory lock
    against publish's exclusive one). The file is built beside `duckdb_file` and renamed into place,
    replacing any file there.
    """
    duckdb_file = Path(duckdb_file)
    conn = _connect(dsn)
    try:
        conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
        with conn, conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock_shared(%s, hashtext(%s))", (_PUBLISH_LOCK, project))
            cur.execute(
                "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), col_description(c.oid, a.attnum) "
                "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
                "WHERE n.nspname = %s AND c.relkind IN ('r', 'p') ORDER BY c.relname, a.attnum", (project,))
            tables: dict[str, list[tuple[str, str]]] = {}
            for table, column, pg_type, comment in cur.fetchall():
                kind = comment[len("duckdb:"):] if comment and comment.startswith("duckdb:") else _duckdb_type(pg_type)
                tables.setdefault(table, []).append((column, kind))
            if not tables:
                return False
            duckdb_file.parent.mkdir(parents=True, exist_ok=True)
            building = duckdb_file.with_name(f".{duckdb_file.name}.restoring-{os.getpid()}")
            building.unlink(missing_ok=True)
            try:
                with duckdb.connect(str(building)) as target, \
                        tempfile.TemporaryDirectory(prefix=".pgcopy-", dir=duckdb_file.parent) as tmp:
                    target.execute(f"CREATE SCHEMA {_q(project)}")
                    for table, cols in tables.items():
                        csv = Path(tmp) / "table.csv"
                        with open(csv, "w", encoding="utf-8") as f:
                            cur.copy_expert(f"COPY (SELECT {', '.join(_pg_select(c, k) for c, k in cols)} FROM "
                                            f"{_q(project)}.{_q(table)}) TO STDOUT WITH (FORMAT csv)", f)
                        name = f"{_q(project)}.{_q(table)}"
                        target.execute(f"CREATE TABLE {name} ({', '.join(f'{_q(c)} {k}' for c, k in cols)})")
                        fields = "{" + ", ".join(f"'c{i}': 'VARCHAR'" for i in range(len(cols))) + "}"
                        casts = ", ".join(_import(f"c{i}", k) for i, (_, k) in enumerate(cols))
                        # quoted "" is an empty string, unquoted nothing is NULL: PostgreSQL's CSV convention
                        target.execute(f"INSERT INTO {name} SELECT {casts} FROM read_csv(?, columns = {fields}, "
                                       "header = false, auto_detect = false, delim = ',', quote = '\"', escape = '\"', "
                                       "allow_quoted_nulls = false, parallel = false)", [str(csv)])
                    target.execute("CHECKPOINT")
                os.replace(building, duckdb_file)
            finally:
                building.unlink(missing_ok=True)
                Path(f"{building}.wal").unlink(missing_ok=True)
        return True
    finally:
        conn.close()

