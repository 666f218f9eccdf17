"""The raw table validated into validated_contacts and quarantined_contacts: at once, or in
partitions by id when it is large (`validate_table`). The asset and its checks are in
validation.py; the rules themselves in lib/validation."""

import ctypes
import gc
import sys
from dataclasses import dataclass
from datetime import datetime
from functools import cache

import duckdb
import pandas as pd

from leadscore_assets.assets.tables import QUARANTINED_CONTACTS, VALIDATED_CONTACTS
from leadscore_assets.lib.project.config import ProjectConfig
from leadscore_assets.lib.project.sql_rules import identifier
from leadscore_assets.lib.sources.column_typing import infer_columns, with_columns
from leadscore_assets.lib.validation import COLLAPSED, LINEAGE, NULL_TOKENS, REASON, ROW, validate
from leadscore_assets.lib.validation.personal_data import personal_name_kind
from leadscore_assets.lib.validation.rules import stripped_characters

BATCH_ROWS = 500_000  # a raw table with more rows is validated in partitions of about this many (by id)
INFER_SAMPLE_ROWS = 200_000  # rows column types are inferred from when a partitioned table declares no columns
RELEASE_ROWS = 50_000  # a partition of this many rows hands its memory back before the next one
PREVIEW_ROWS, REASON_ROWS = 10, 20  # the rows the validated and the quarantined pages show


@dataclass
class Validated:
    """What `validate_table` wrote, for the asset pages and validation_results.json: totals over
    the whole raw table whichever route ran, and the few rows the pages show."""

    resolved: ProjectConfig  # the config with the column types validation used
    raw_rows: int
    valid_rows: int
    quarantined_rows: int
    collapsed: int  # quarantined rows that are exact copies of a kept row
    table_errors: list[str]
    failure_counts: dict[str, int]
    valid_head: pd.DataFrame  # the first PREVIEW_ROWS valid rows, as typed (the page's preview and column schema)
    reasons_head: pd.DataFrame  # the first REASON_ROWS quarantined rows' row number and reason
    personal_values: pd.DataFrame  # up to 3 distinct values of each valid column named like personal data
    partitions: int = 1


def validate_table(conn: duckdb.DuckDBPyConnection, config: ProjectConfig, raw_table: str,
                   now: datetime | pd.Timestamp | None = None) -> Validated:
    """Validate the raw table `raw_table` (`<project>.raw_contacts`) with `validate`, replace
    VALIDATED_CONTACTS and QUARANTINED_CONTACTS with the outcome, and return its totals.

    A table of at most BATCH_ROWS rows is read and validated at once, as it always was. A larger
    one is validated in about rows / BATCH_ROWS partitions by a hash of its id (`_partition_key`),
    each correct on its own: every repeat of an id, and so every exact copy of a row, lands in the
    same partition, so the duplicate rules of `validate` decide as they would on the whole table.
    Each partition's valid rows go to the table as they come and its frames are dropped before the
    next one is read (memory holds one partition and at most BATCH_ROWS quarantined rows, never the
    table); the tables are then put in row-number order, which is the raw table's order, so they
    hold what the single pass would have written, row for row. Table errors (a missing column, the
    same in every partition) are given once, failure counts summed. A table that cannot be split
    so (see `_partition_key`) is validated at once.

    Column types, when the YAML declares none, are inferred from the whole table on the single
    pass, and from a deterministic sample of INFER_SAMPLE_ROWS rows (the rows first by a hash of
    their row number) on the partitioned one: a share near PARSE_SHARE may type a column otherwise.
    """
    rows = conn.execute(f"SELECT count(*) FROM {raw_table}").fetchall()[0][0]
    key = _partition_key(conn, config, raw_table) if rows > BATCH_ROWS else None
    if key is None:
        raw = conn.execute(f"SELECT * FROM {raw_table}").df()
        resolved = config if config.columns else with_columns(config, infer_columns(raw, config))
        result = validate(raw, resolved, now)
        VALIDATED_CONTACTS.write(conn, config, result.valid)
        QUARANTINED_CONTACTS.write(conn, config, result.quarantined)
        return Validated(
            resolved=resolved, raw_rows=len(raw), valid_rows=len(result.valid),
            quarantined_rows=len(result.quarantined), collapsed=int(result.quarantined[COLLAPSED].sum()),
            table_errors=result.table_errors, failure_counts=result.failure_counts,
            valid_head=result.valid.head(PREVIEW_ROWS),
            reasons_head=result.quarantined[[ROW, REASON]].head(REASON_ROWS),
            personal_values=_personal_values(None, result.valid))
    if config.columns:
        resolved = config
    else:
        sample = conn.execute(f"SELECT * FROM (SELECT * FROM {raw_table} ORDER BY hash({ROW}), {ROW} "
                              f"LIMIT {INFER_SAMPLE_ROWS}) ORDER BY {ROW}").df()
        resolved = with_columns(config, infer_columns(sample, config))
        del sample
    return _validate_in_partitions(conn, config, resolved, raw_table, rows, key, now)


def _validate_in_partitions(conn: duckdb.DuckDBPyConnection, config: ProjectConfig, resolved: ProjectConfig,
                            raw_table: str, rows: int, key: str, now: datetime | pd.Timestamp | None) -> Validated:
    """`validate_table`'s route for a large table (see there): partition k holds the rows whose `key`
    is k modulo the number of partitions, read in row order; the outcome is the partitions' results
    combined. The partition of every row is worked out once (a temporary table of row numbers:
    12 bytes a row), so each partition costs a join, not the key over the whole table again."""
    n = -(-rows // BATCH_ROWS)
    now = pd.Timestamp.now(tz="UTC") if now is None else now  # one load time for every partition
    outcome = Validated(resolved=resolved, raw_rows=rows, valid_rows=0, quarantined_rows=0, collapsed=0,
                        table_errors=[], failure_counts={}, valid_head=None, reasons_head=None,
                        personal_values=None, partitions=n)
    counts: list[dict[str, int]] = []
    dtypes = _whole_table_dtypes(conn, raw_table)
    valid_rows = _Rows(conn, config, VALIDATED_CONTACTS, hold=0)
    quarantined_rows = _Rows(conn, config, QUARANTINED_CONTACTS, hold=BATCH_ROWS)
    conn.execute(f"CREATE OR REPLACE TEMP TABLE _validation_partitions AS "
                 f"SELECT {ROW} AS row_number, CAST(({key}) % {n} AS INTEGER) AS k FROM {raw_table}")
    for k in range(n):
        raw = conn.execute(f"SELECT * FROM {raw_table} WHERE {ROW} IN "
                           f"(SELECT row_number FROM _validation_partitions WHERE k = {k}) ORDER BY {ROW}").df()
        if raw.empty:
            continue
        for col, dtype in dtypes.items():  # a column with a null elsewhere reads as it would from the whole table
            if raw[col].dtype != dtype:
                raw[col] = raw[col].astype(dtype)
        result, size = validate(raw, resolved, now), len(raw)
        del raw
        valid_rows.add(result.valid)
        quarantined_rows.add(result.quarantined)
        outcome.valid_rows += len(result.valid)
        outcome.quarantined_rows += len(result.quarantined)
        outcome.collapsed += int(result.quarantined[COLLAPSED].sum())
        outcome.table_errors += [e for e in result.table_errors if e not in outcome.table_errors]
        counts.append(result.failure_counts)
        outcome.valid_head = _first_rows(outcome.valid_head, result.valid, PREVIEW_ROWS)
        outcome.reasons_head = _first_rows(outcome.reasons_head, result.quarantined[[ROW, REASON]], REASON_ROWS)
        outcome.personal_values = _personal_values(outcome.personal_values, result.valid)
        del result
        if size >= RELEASE_ROWS:
            _release_memory()
    conn.execute("DROP TABLE _validation_partitions")
    valid_rows.close()
    quarantined_rows.close()
    outcome.failure_counts = _summed_counts(counts, resolved)
    return outcome


def _release_memory() -> None:
    """Hand the freed frames' memory back to the system before the next partition is read:
    pandas' many small objects leave the C heap fragmented, and without glibc's `malloc_trim`
    the resident size grows partition after partition (~1.8 GiB instead of ~1.4 GiB for three
    partitions of 470,000 web sessions). A full collection costs ~0.3 s: not for small partitions."""
    gc.collect()
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


try:
    _LIBC = ctypes.CDLL("libc.so.6") if sys.platform.startswith("linux") else None
    _LIBC.malloc_trim  # noqa: B018 (musl has no malloc_trim)
except (OSError, AttributeError):
    _LIBC = None


class _Rows:
    """One table's rows written as the partitions give them, in the single pass's row order and
    column types: up to `hold` rows are held and written at once, sorted by row number (the few
    quarantined rows of most tables: DuckDB then types their object columns from the same rows
    the single pass does); more are appended as they come, and the table put in row-number order
    when closed (column types then come from the first rows written)."""

    def __init__(self, conn: duckdb.DuckDBPyConnection, config: ProjectConfig, table, hold: int):
        self.conn, self.config, self.table, self.hold = conn, config, table, hold
        self.held: list[pd.DataFrame] = []
        self.empty: pd.DataFrame | None = None  # the columns, written when no partition gives a row
        self.writes = 0

    def add(self, frame: pd.DataFrame) -> None:
        if not len(frame):
            self.empty = frame if self.empty is None else self.empty
            return
        self.held.append(frame)
        if sum(map(len, self.held)) > self.hold:
            self._flush()

    def _flush(self) -> None:
        frame = self.held[0] if len(self.held) == 1 else pd.concat(self.held, ignore_index=True)
        self.held = []
        if not frame[ROW].is_monotonic_increasing:  # a partition's own rows come in order: not copied
            frame = frame.sort_values(ROW, kind="stable").reset_index(drop=True)
        (self.table.append if self.writes else self.table.write)(self.conn, self.config, frame)
        self.writes += 1

    def close(self) -> None:
        if self.held:
            self._flush()
        if not self.writes:
            self.table.write(self.conn, self.config, self.empty)
        elif self.writes > 1:  # the single pass writes the raw table's order, row-number order (`_partition_key`)
            name = self.table.of(self.config)
            self.table.write_select(self.conn, self.config, f"SELECT * FROM {name} ORDER BY {ROW}")


def _whole_table_dtypes(conn: duckdb.DuckDBPyConnection, raw_table: str) -> dict[str, object]:
    """The pandas dtype of each column that holds a null somewhere in the raw table, as DuckDB gives
    it reading the whole table (a nullable Int64 or boolean where a partition without a null
    would read int64 or bool): a partition's frame is given these, so `validate` sees its values
    as the single pass does."""
    described = conn.execute(f"SELECT column_name, column_type FROM (DESCRIBE {raw_table})").fetchall()
    nulls = conn.execute("SELECT " + ", ".join(f"count(*) - count({identifier(c)})" for c, _ in described)
                         + f" FROM {raw_table}").fetchall()[0]
    nullable = [(c, t) for (c, t), n in zip(described, nulls) if n]
    if not nullable:
        return {}
    nulls_only = conn.execute("SELECT " + ", ".join(f"CAST(NULL AS {t}) AS {identifier(c)}" for c, t in nullable))
    return dict(nulls_only.df().dtypes)


def _partition_key(conn: duckdb.DuckDBPyConnection, config: ProjectConfig, raw_table: str) -> str | None:
    """A SQL expression over the raw table's rows, a non-negative integer equal for any two rows
    `validate` may hold against each other (the same id once normalised and typed, or the same
    values throughout), or None when the table cannot be split so, and is validated at once:

    - the id is typed text (declared `string`/`text`, or inferred: an inferred id is text) and
      read from a text or integer column (whose text DuckDB and Python write alike), and no other
      column is declared `unique` (a check across every row);
    - `_row_number` grows strictly along the table (a single source file, as loaded): the
      tables put in row-number order are then in the raw table's order.

    The key is a hash of the id with every whitespace character removed and lowercased: coarser
    than `normalise` (trim, lowercasing), so ids it makes equal share a key. Ids that are null or
    a written-out null (any case) all get key 0, with the exact copies among them."""
    described = dict(conn.execute(f"SELECT column_name, column_type FROM (DESCRIBE {raw_table})").fetchall())
    if not set(LINEAGE) <= set(described):
        return None
    try:
        names = config.naming.columns([c for c in described if c not in LINEAGE])
    except ValueError:  # two names collide: validate says so
        return None
    id_raw = next((raw for raw, canon in names.items() if canon == config.id_column), None)
    spec = config.columns.get(config.id_column)
    if id_raw is None or described[id_raw] not in _ID_TYPES or (spec and spec.type not in ("string", "text")) \
            or any(s.unique for c, s in config.columns.items() if c != config.id_column):
        return None
    steps_back = conn.execute(
        f"SELECT count(*) FILTER (WHERE {ROW} IS NULL OR step <= 0) FROM "
        f"(SELECT {ROW}, {ROW} - lag({ROW}) OVER (ORDER BY rowid) AS step FROM {raw_table})"
    ).fetchall()[0][0]
    if steps_back:
        return None
    text = f"lower(regexp_replace(CAST({identifier(id_raw)} AS VARCHAR), '{_whitespace_class()}', '', 'g'))"
    blanks = ", ".join(sorted({f"'{t.lower()}'" for t in ("", *NULL_TOKENS)}))
    return f"CASE WHEN {identifier(id_raw)} IS NULL OR {text} IN ({blanks}) THEN 0 ELSE hash({text}) END"


_ID_TYPES = {"VARCHAR", "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT"}


@cache
def _whitespace_class() -> str:
    """An RE2 class of every character `str.strip` removes (Unicode whitespace, not ASCII only)."""
    return "[" + "".join(f"\\x{{{ord(c):x}}}" for c in stripped_characters()) + "]"


def _first_rows(head: pd.DataFrame | None, frame: pd.DataFrame, rows: int) -> pd.DataFrame:
    """The first `rows` rows by row number of the rows seen so far (`head`) and `frame`'s."""
    if head is None:
        return frame.head(rows).reset_index(drop=True)
    return pd.concat([head, frame.head(rows)]).sort_values(ROW, kind="stable").head(rows).reset_index(drop=True)


def _personal_values(seen: pd.DataFrame | None, valid: pd.DataFrame) -> pd.DataFrame:
    """Up to 3 distinct values of each column of `valid` named like personal data, with `seen`'s:
    what `personal_name_warnings` needs (more than 2 distinct values) and no more."""
    columns = {}
    for col in valid.columns:
        if not personal_name_kind(col):
            continue
        values = valid[col] if seen is None else pd.concat([seen[col], valid[col]], ignore_index=True)
        columns[col] = values.dropna().drop_duplicates().head(3).reset_index(drop=True)
    return pd.DataFrame(columns)


def _summed_counts(counts: list[dict[str, int]], config: ProjectConfig) -> dict[str, int]:
    """The partitions' failure counts summed, in the order the single pass gives them: types,
    future dates, exact copies, repeated ids, row rules, then the declared checks as they came."""
    total: dict[str, int] = {}
    for part in counts:
        for rule, n in part.items():
            total[rule] = total.get(rule, 0) + n
    first = [*(f"{c}:type" for c in config.columns), *(f"{c}:future" for c in config.columns),
             "exact_duplicate:collapsed", f"{config.id_column}:duplicate",
             *(f"rule:{r.name}" for r in config.validation.row_rules)]
    return {**{r: total[r] for r in first if r in total}, **{r: n for r, n in total.items() if r not in first}}
