"""Source adapters: CSV, Parquet, SQLite and DuckDB tables into the warehouse, verbatim.

Each loaded row carries `_source_file` and a 1-based `_row_number` so every later reason can
point at it. A single CSV is read as text (nothing is coerced before validation can see it);
Parquet, SQLite and DuckDB keep their own types. Parquet is read by DuckDB itself, so large
files stream into the warehouse without passing through pandas. No DuckDB extension is used
(none can be downloaded at run time): SQLite is read with the standard library.

A CSV read as text is decoded as UTF-8 (a byte-order mark is dropped); a file that is not UTF-8
but decodes whole as Windows-1252 is read as such, with a note naming the row and column of the
first byte that was not UTF-8, and anything else fails naming that row and column. When the
configured delimiter finds one column but another (`,;\\t|`) splits the header and its rows
alike, that one is used, with a note; when several could be meant, loading fails. A last record
cut short (no line end, fewer fields than the header, or inside an open quote: a half-written
export) never reaches validation: it is moved to the source quarantine with its reason.
"""

from __future__ import annotations

import csv
import io
import logging
import re
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from leadscore_assets.lib.config import ProjectConfig, TableSpec
from leadscore_assets.lib.validation import FILE, ROW

RAW = "raw_contacts"
SOURCE_QUARANTINE = "quarantined_source_rows"
DELIMITERS = ",;\t|"  # what a CSV export is delimited by, in practice
_SNIFF_BYTES, _SNIFF_RECORDS = 65_536, 20
_MARK = "\ue000"  # a private-use character, never a delimiter or quote: marks a position while parsing
_UNDECODABLE = re.compile("[\udc80-\udcff]")  # bytes kept by errors="surrogateescape"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")

_log = logging.getLogger(__name__)


class SourceFileError(ValueError):
    """The source file is missing, empty or unreadable: nothing can be validated."""


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _check_file(path: Path) -> None:
    if not path.exists():
        raise SourceFileError(
            f"{path}: source file not found (generate demo data with `python -m leadscore_assets.demo_data all`)"
        )
    if path.stat().st_size == 0:
        raise SourceFileError(f"{path}: file is empty (no header row)")


def _shown(delimiter: str) -> str:
    return "tab" if delimiter == "\t" else repr(delimiter)


def _readable(value: str) -> str:
    """Undecodable bytes shown as U+FFFD so a header name can be printed."""
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _iter_records(text: str, delimiter: str) -> Iterator[list[str]]:
    """Non-blank CSV records, as pandas counts them (blank and whitespace-only lines are skipped)."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    return (r for r in reader if r and not (len(r) == 1 and not r[0].strip()))


def _records(text: str, delimiter: str) -> list[list[str]]:
    return list(_iter_records(text, delimiter))


def choose_delimiter(path: Path, text: str, configured: str) -> tuple[str, str | None]:
    """The delimiter to read `text` (the start of a CSV) with, and a note when it is not the configured one.

    The configured delimiter is kept unless it finds a single column in the header while another
    candidate splits it into several. That candidate is used when it alone splits every sampled
    row into as many fields as the header and `csv.Sniffer` does not point elsewhere; otherwise
    the file cannot be read unambiguously and `SourceFileError` names what was found.
    """
    header = next(_iter_records(text[:_SNIFF_BYTES], configured), None)
    if header is None or len(header) > 1:
        return configured, None
    sample = "\n".join([line for line in text[:_SNIFF_BYTES].splitlines() if line.strip()][:_SNIFF_RECORDS])
    widths = {}
    for d in DELIMITERS:
        if d == configured:
            continue
        parsed = _records(sample, d)
        if parsed and len(parsed[0]) > 1:
            # the last sampled record may be cut by the sample (or the file): not held against it
            widths[d] = (len(parsed[0]), all(len(r) == len(parsed[0]) for r in parsed[1:-1]))
    if not widths:
        return configured, None  # one column whatever the delimiter: validation names the missing ones
    try:
        sniffed = csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:
        sniffed = None
    consistent = [d for d, (_, rows_agree) in widths.items() if rows_agree]
    if len(consistent) == 1 and sniffed in (consistent[0], None):
        chosen = consistent[0]
        return chosen, (f"{path.name}: delimiter {_shown(chosen)} found ({widths[chosen][0]} columns), "
                        f"not the configured {_shown(configured)}: read with {_shown(chosen)}")
    found = ", ".join(f"{_shown(d)} ({n} columns{'' if agree else ', rows disagree'})"
                      for d, (n, agree) in widths.items())
    guess = f"; csv.Sniffer guesses {_shown(sniffed)}" if sniffed else ""
    raise SourceFileError(
        f"{path}: the configured delimiter {_shown(configured)} finds a single column, and the header "
        f"splits on {found}{guess}: the delimiter is ambiguous, set `delimiter:` in the source config"
    )


def _locate(text: str, position: int, delimiter: str) -> str:
    """Where character `position` of a CSV text sits: "row 3, column 'city'" (1-based data rows
    counted as `_row_number` counts them) or "the header, column 2"."""
    records = _records(text[:position] + _MARK, delimiter)
    index = len(records) - 1
    column = next((i for i, value in enumerate(records[-1]) if _MARK in value), len(records[-1]) - 1)
    if index == 0:
        return f"the header, column {column + 1}"
    header = records[0]
    name = _readable(header[column]).strip() if column < len(header) else ""
    return f"row {index}, " + (f"column {name!r}" if name else f"column {column + 1}")


def _decode(path: Path, data: bytes, delimiter: str) -> tuple[str, str, list[str]]:
    """(text, delimiter, notes): UTF-8 (BOM dropped), else Windows-1252 when every byte decodes."""
    if data.startswith(_UTF16_BOMS):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError as err:
            raise SourceFileError(f"{path}: starts with a UTF-16 byte-order mark but is not UTF-16 ({err.reason})") from err
        delimiter, note = choose_delimiter(path, text, delimiter)
        return text, delimiter, [f"{path.name}: read as UTF-16 (byte-order mark)", *filter(None, [note])]
    if b"\x00" in data:
        raise SourceFileError(f"{path}: file is binary (contains NUL bytes), not a CSV text file")
    text = data.decode("utf-8-sig", errors="surrogateescape")
    delimiter, note = choose_delimiter(path, text, delimiter)
    notes = [note] if note else []
    bad = _UNDECODABLE.search(text)
    if bad is None:
        return text, delimiter, notes
    where = f"byte 0x{ord(bad.group()) - 0xDC00:02X} at {_locate(text, bad.start(), delimiter)}"
    body = data.removeprefix(b"\xef\xbb\xbf")
    try:
        text = body.decode("cp1252")
    except UnicodeDecodeError as err:
        raise SourceFileError(
            f"{path}: not valid UTF-8 (first bad {where}) and not Windows-1252 either (byte 0x{body[err.start]:02X} "
            f"at byte offset {err.start} has no character): re-save the file as UTF-8"
        ) from err
    return text, delimiter, [*notes, f"{path.name}: not valid UTF-8 (first bad {where}); read as Windows-1252 (cp1252)"]


@dataclass
class _CutShort:
    fields: list[str]
    width: int  # fields in the header
    open_quote: bool

    @property
    def reason(self) -> str:
        inside = "; ends inside a quoted value" if self.open_quote else ""
        return f"record cut short: {len(self.fields)} of {self.width} fields, no line end{inside}"


def _split_cut_short(text: str, delimiter: str) -> tuple[str, _CutShort | None]:
    """Split off a final record that was cut short: no line end after it, and fewer fields than
    the header or an open quote. Returns the text to parse and that record (None when complete).

    Checked by hand because pandas fills a short row's missing fields as if they were blank. The
    record's start is the last line end outside quotes (an even number of quotes before it).
    """
    if not text or text.endswith(("\n", "\r")):
        return text, None
    quotes_total, quotes_after, cursor = text.count('"'), 0, len(text)
    while True:
        end = max(text.rfind("\n", 0, cursor), text.rfind("\r", 0, cursor))
        if end < 0:
            return text, None  # a single record: the header, there is no data row to cut
        quotes_after += text.count('"', end, cursor)
        cursor = end
        if (quotes_total - quotes_after) % 2 == 0:
            break
    tail = text[end + 1:]
    if not tail.strip() or not text[:end].strip():
        return text, None  # trailing spaces, or the header itself is the last record
    header = next(_iter_records(text, delimiter), [])
    fields = next(csv.reader(io.StringIO(tail, newline=""), delimiter=delimiter), [])
    open_quote = tail.count('"') % 2 == 1
    if open_quote or len(fields) < len(header):
        return text[:end + 1], _CutShort(fields=fields, width=len(header), open_quote=open_quote)
    return text, None


@dataclass
class CsvText:
    """A CSV read as text: every data row (a record cut short included, last, with its fields as
    far as they go), the row numbers to move to the source quarantine with their reasons, and
    notes on what was inferred (delimiter, encoding) to log."""

    frame: pd.DataFrame
    cut_short: dict[int, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def read_csv_as_text(path: Path, delimiter: str = ",") -> CsvText:
    """Every value as text, blanks kept as empty strings, numbered data rows."""
    _check_file(path)
    text, delimiter, notes = _decode(path, path.read_bytes(), delimiter)
    text, cut = _split_cut_short(text, delimiter)
    try:
        raw = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, sep=delimiter)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise SourceFileError(f"{path}: cannot parse as CSV: {err}") from err
    raw.insert(0, ROW, range(1, len(raw) + 1))
    raw[FILE] = path.name
    reasons = {}
    if cut is not None:
        row = len(raw) + 1
        data_columns = [c for c in raw.columns if c not in (ROW, FILE)]
        # the fields as far as they go; the missing ones stay missing (NULL), not blank
        values = {c: cut.fields[i] if i < len(cut.fields) else None for i, c in enumerate(data_columns)}
        raw = pd.concat([raw, pd.DataFrame([{ROW: row, **values, FILE: path.name}])], ignore_index=True)
        raw = raw.astype({ROW: "int64"})
        reasons[row] = f"{path.name} row {row}: {cut.reason}"
    return CsvText(frame=raw, cut_short=reasons, notes=notes)


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
                head = fh.read(_SNIFF_BYTES).decode("utf-8-sig", errors="replace")
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
    conn: duckdb.DuckDBPyConnection, config: ProjectConfig, source_table: str, target: str, reasons: dict[int, str]
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
            INSERT INTO {config.name}.{SOURCE_QUARANTINE}
            SELECT {_sql_str(source_table)}, t.{ROW}, t.{FILE}, m.reason, to_json(t)::VARCHAR
            FROM {target} t JOIN _moved_rows m ON t.{ROW} = m.{ROW} ORDER BY t.{ROW}
        """)
        conn.execute(f"DELETE FROM {target} WHERE {ROW} IN (SELECT {ROW} FROM _moved_rows)")
    finally:
        conn.unregister("_moved_rows")
    return len(reasons)


def apply_row_rules(conn: duckdb.DuckDBPyConnection, config: ProjectConfig, name: str, spec: TableSpec, target: str) -> int:
    """Move rows of a source table that break its rules into the source quarantine; return count."""
    if not spec.row_rules:
        return 0
    failed = " || ".join(
        f"CASE WHEN coalesce(({r.expression}), true) THEN '' ELSE "
        f"{_sql_str(f'rule {r.name!r} ({r.expression}) is false; ')} END"
        for r in spec.row_rules
    )
    quarantine = f"{config.name}.{SOURCE_QUARANTINE}"
    conn.execute(f"""
        CREATE TEMP TABLE _rule_failures AS
        SELECT {_sql_str(name)} AS source_table, {ROW}, {FILE},
               {FILE} || ' row ' || {ROW} || ': ' || rtrim({failed}, '; ') AS reason,
               to_json(t)::VARCHAR AS raw_values
        FROM {target} t WHERE ({failed}) <> ''
    """)
    conn.execute(f"INSERT INTO {quarantine} SELECT * FROM _rule_failures")
    n = conn.execute("SELECT count(*) FROM _rule_failures").fetchall()[0][0]
    conn.execute(f"DELETE FROM {target} WHERE {ROW} IN (SELECT {ROW} FROM _rule_failures)")
    conn.execute("DROP TABLE _rule_failures")
    return n


def load_source(
    conn: duckdb.DuckDBPyConnection, config: ProjectConfig, data_dir: Path, log: Callable[[str], None] | None = None
) -> dict[str, int]:
    """Build `<project>.raw_contacts` from the configured source; return row counts per table.

    `<table>` counts the data rows read; `<table>_cut_short` and `<table>_rule_failures` how many
    of them went to the source quarantine instead. Notes on what was inferred while reading (a
    delimiter or an encoding other than configured) go to `log` (default: this module's logger).
    """
    log = log or _log.warning
    schema = config.name
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    conn.execute(
        f"CREATE OR REPLACE TABLE {schema}.{SOURCE_QUARANTINE} (source_table VARCHAR, {ROW} BIGINT, {FILE} VARCHAR, "
        f"reason VARCHAR, raw_values VARCHAR)"
    )
    source = config.source
    counts: dict[str, int] = {}

    def load(name: str, spec: TableSpec, target: str, as_text: bool) -> None:
        loaded = load_table(conn, target, data_dir / spec.path, spec, as_text=as_text)
        for note in loaded.notes:
            log(note)
        counts[name] = loaded.rows
        if loaded.cut_short:
            counts[f"{name}_cut_short"] = quarantine_rows(conn, config, name, target, loaded.cut_short)
        counts[f"{name}_rule_failures"] = apply_row_rules(conn, config, name, spec, target)

    if not source.tables:
        load("contacts", source.table_specs()["contacts"], f"{schema}.{RAW}", as_text=True)
        return counts
    for name, spec in source.tables.items():
        target = f"{schema}.source_{name}"
        load(name, spec, target, as_text=False)
        conn.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT * FROM {target}")
    try:
        conn.execute(f"CREATE OR REPLACE TABLE {schema}.{RAW} AS {source.query}")
    except duckdb.Error as err:
        raise SourceFileError(f"project '{config.name}': source.query failed: {err}") from err
    cols = [r[0] for r in conn.execute(f"DESCRIBE {schema}.{RAW}").fetchall()]
    if ROW not in cols or FILE not in cols:
        raise SourceFileError(
            f"project '{config.name}': source.query must select the primary table's {ROW} and {FILE} "
            "so that quarantine reasons point at real rows"
        )
    counts[RAW] = conn.execute(f"SELECT count(*) FROM {schema}.{RAW}").fetchall()[0][0]
    return counts
