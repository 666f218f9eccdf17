"""CRM won/lost feedback files: pick up each complete file once, parse it, resolve conflicts.

Outcome files are dropped by people and CRM exports into one folder per source
(`data/feedback/<source>/*.csv`). Nothing tells us when a file is finished, the same export is
often dropped twice under different names, and files can be anything from clean CSV to a
half-saved spreadsheet. So this module keeps three promises, without Dagster:

1. `scan_folder` hands out a file only once it is complete (same size and mtime as on the
   previous tick, not empty, not a temporary name) and only once per content: a copy under
   another name with the same content (byte for byte, or re-saved with other line endings, a
   byte-order mark or trailing blank lines: see `file_sha256`) is reported as a duplicate, once,
   and never handed out.
2. `parse_feedback_file` never raises on a bad file: every data row ends up in exactly one of
   `outcomes`, `quarantined` (with a reason naming file, row and column) or `unknown_leads`;
   file-level problems are one extra quarantine row with `row_number` 0.
3. `resolve_conflicts` keeps one outcome per lead (the latest `outcome_at`, deterministic
   tie-breaks) and records every lead whose outcomes disagreed.

Cursor-state contract (what the sensor stores between ticks, a JSON-serialisable dict)::

    {"version": 1,
     "processed": {sha256: file name first handed out},    # forever: the idempotence guarantee
     "pending":   {file name: [size, mtime_ns]},           # files waiting to settle
     "settled":   {file name: [size, mtime_ns]}}           # files already handed out or reported

Its size is one entry per processed content plus one per file currently in the folder (names
that leave the folder are dropped); no file contents are stored.

How a sensor uses it, once per tick::

    result = scan_folder(folder, json.loads(context.cursor) if context.cursor else None)
    for f in result.ready:  # request *every* ready file in this tick
        yield RunRequest(run_key=f.content_hash, run_config=...)  # pass f.path and f.content_hash
    context.update_cursor(json.dumps(result.state))  # pending/duplicates: log them, nothing to run

The returned state already counts `ready` files as processed, so the next tick never returns
them again. If a tick fails before the cursor is stored, the next tick returns the same files
and Dagster skips the repeated `run_key`s. A file whose run then fails stays processed: re-run
it from the UI rather than expecting the sensor to retry. `mark_processed` records files loaded
outside the sensor (a manual backfill) so the sensor will not start them again. A file rewritten
in place with new content is a new content hash and is handed out again once it settles.
"""

from __future__ import annotations

import csv
import fnmatch
import hashlib
import io
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from leadscore_assets.lib.column_names import snake_case

STATE_VERSION = 1
TEMPORARY_NAME_PATTERNS = ("*.tmp", "*.part", "*.crdownload", ".*", "~*")

OUTCOME_LABELS_DEFAULT = {"won": 1, "replied": 1, "lost": 0, "no_reply": 0}
REQUIRED_COLUMNS = ("lead_id", "outcome", "outcome_at")
OPTIONAL_COLUMNS = ("source",)
OUTCOME_COLUMNS = [
    "lead_id", "outcome", "label", "outcome_at", "source", "file", "content_hash", "row_number", "received_at",
]
QUARANTINE_COLUMNS = [
    "file", "content_hash", "row_number", "lead_id", "outcome", "outcome_at", "source", "raw_record", "reason",
]
RESOLUTION_COLUMNS = [
    "lead_id", "chosen_outcome", "chosen_outcome_at", "chosen_file", "chosen_row", "candidates", "overridden", "rule",
]

# An outcome time later than this after the file was received is a typo (2062 for 2026); it would
# otherwise win every future conflict for that lead.
FUTURE_TOLERANCE = timedelta(days=1)
RAW_RECORD_MAX_CHARS = 1000


# --------------------------------------------------------------------------------------------
# 1. Readiness and idempotence
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeedbackFile:
    path: Path
    content_hash: str  # sha256 hex digest of the normalised content (file_sha256): the sensor's run_key
    size: int
    duplicate_of: str | None = None  # for duplicates: the file name first processed with this content


@dataclass
class ScanResult:
    ready: list[FeedbackFile]  # complete, never-seen content: request one run each
    pending: list[Path]  # present but not ready yet (first seen, still changing, or empty)
    duplicates: list[FeedbackFile]  # complete but the same content as processed content; reported once
    state: dict  # the new cursor state to store


def is_temporary_name(name: str) -> bool:
    """Names that downloaders, editors and sync tools use while a file is still being written."""
    lowered = name.lower()
    return any(fnmatch.fnmatchcase(lowered, pattern) for pattern in TEMPORARY_NAME_PATTERNS)


def empty_state() -> dict:
    return {"version": STATE_VERSION, "processed": {}, "pending": {}, "settled": {}}


def _copy_state(state: dict | None) -> dict:
    """A fresh copy (inputs are never mutated) that tolerates a JSON round trip."""
    if not state:
        return empty_state()
    if state.get("version") != STATE_VERSION:
        raise ValueError(f"feedback cursor state has version {state.get('version')!r}, expected {STATE_VERSION}")
    return {
        "version": STATE_VERSION,
        "processed": dict(state.get("processed", {})),
        "pending": {name: list(stat) for name, stat in state.get("pending", {}).items()},
        "settled": {name: list(stat) for name, stat in state.get("settled", {}).items()},
    }


def mark_processed(state: dict | None, files: Iterable[FeedbackFile]) -> dict:
    """Return a new state in which the files' contents count as processed (never ready again)."""
    new_state = _copy_state(state)
    for f in files:
        new_state["processed"].setdefault(f.content_hash, f.path.name)
    return new_state


_TRAILING_BLANK_LINES = re.compile(rb"\n[ \t\n]*\Z")  # the last line end and blank lines after it


def canonical_content(data: bytes) -> bytes:
    """The bytes of a feedback file as its content, whatever it was saved with: a UTF-8 byte-order
    mark dropped (UTF-16 re-encoded as UTF-8), CRLF and CR line ends as LF, and trailing blank (or
    whitespace-only) lines dropped, keeping one final line end. Lines with content are kept as
    they are: a trailing tab can be an empty last field.

    A file already in that form (UTF-8 or ASCII, LF, no trailing blank lines: what pandas and most
    CRM exports write) is returned as is, so its hash stays the sha256 of its bytes. Binary data
    (NUL bytes) and bytes that are not valid UTF-16 after a UTF-16 mark are returned unchanged.
    """
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            data = data.decode("utf-16").encode("utf-8")
        except UnicodeDecodeError:
            return data
    if b"\x00" in data:
        return data
    text = data.removeprefix(b"\xef\xbb\xbf").replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return _TRAILING_BLANK_LINES.sub(b"\n", text)


def file_sha256(path: Path) -> str:
    """The file's content hash: sha256 of `canonical_content`, so the same outcomes re-saved with
    CRLF line ends, a byte-order mark or trailing blank lines hash alike and never count twice.
    (A last line without a line end stays distinct from one with it: that keeps the hash of such
    files, already stored as run keys, unchanged.)"""
    return hashlib.sha256(canonical_content(path.read_bytes())).hexdigest()


QUIET_S = 3.0  # a file untouched this long when first seen is complete: no need to wait a tick


def scan_folder(
    folder: Path, state: dict | None, pattern: str = "*.csv", quiet_s: float = QUIET_S, now: float | None = None,
) -> ScanResult:
    """One sensor tick over the files directly in `folder` whose name matches `pattern`.

    A file is ready when it is not empty, its content hash was never processed, and either its
    size and mtime equal those seen on the previous tick or, first seen, it has not been written
    to for `quiet_s` seconds (so settling does not cost a whole extra tick). A missing folder is
    an empty scan.
    """
    now = time.time() if now is None else now
    old = _copy_state(state)
    new = empty_state() | {"processed": old["processed"]}
    ready: list[FeedbackFile] = []
    pending: list[Path] = []
    duplicates: list[FeedbackFile] = []

    candidates = sorted(folder.iterdir()) if folder.is_dir() else []
    for path in candidates:
        name = path.name
        if is_temporary_name(name) or not fnmatch.fnmatchcase(name.lower(), pattern.lower()):
            continue
        try:
            if not path.is_file():
                continue
            stat = path.stat()
        except OSError:  # removed between listing and stat
            continue
        seen_now = [stat.st_size, stat.st_mtime_ns]
        if old["settled"].get(name) == seen_now:
            new["settled"][name] = seen_now
            continue
        quiet = name not in old["pending"] and now - stat.st_mtime >= quiet_s
        if stat.st_size == 0 or (old["pending"].get(name) != seen_now and not quiet):
            new["pending"][name] = seen_now
            pending.append(path)
            continue
        try:
            content_hash = file_sha256(path)
            after = path.stat()
        except OSError:
            continue
        if [after.st_size, after.st_mtime_ns] != seen_now:  # written to while we were hashing
            new["pending"][name] = [after.st_size, after.st_mtime_ns]
            pending.append(path)
            continue
        new["settled"][name] = seen_now
        first_name = new["processed"].get(content_hash)
        found = FeedbackFile(path=path, content_hash=content_hash, size=stat.st_size, duplicate_of=first_name)
        if first_name is None:
            ready.append(found)
            new["processed"][content_hash] = name
        elif first_name != name:  # same name, same bytes: only touched, nothing to report
            duplicates.append(found)
    return ScanResult(ready=ready, pending=pending, duplicates=duplicates, state=new)


# --------------------------------------------------------------------------------------------
# 2. Parsing with quarantine
# --------------------------------------------------------------------------------------------


@dataclass
class FeedbackBatch:
    outcomes: pd.DataFrame  # OUTCOME_COLUMNS: valid rows for known leads
    quarantined: pd.DataFrame  # QUARANTINE_COLUMNS: raw values + reason; row_number 0 = whole-file problem
    unknown_leads: pd.DataFrame  # OUTCOME_COLUMNS: valid rows whose lead_id is not a known lead
    data_rows: int = 0  # non-blank data rows read = outcome + quarantined (row_number > 0) + unknown rows


@dataclass
class _Record:
    row_number: int
    fields: list[str]
    problem: str | None = None  # why the record itself cannot be trusted (not CSV, ragged)


@dataclass
class _Table:
    header: list[str] | None = None
    records: list[_Record] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # file-level
    delimiter: str = ","


_UNDECODABLE = re.compile("[\udc80-\udcff]")  # bytes kept by errors="surrogateescape"
_TIMESTAMP_SHAPE = re.compile(r"^\d{4}[-/]?\d{2}[-/]?\d{2}")  # ISO-like, year first: rejects 'now', '20/04/2026'
_OUTCOME_SEPARATORS = re.compile(r"[\s\-]+")


def _readable(value: str) -> str:
    """Undecodable bytes shown as U+FFFD so the value can be stored and printed."""
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _decode(data: bytes) -> tuple[str | None, list[str]]:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16"), []
        except UnicodeDecodeError as err:
            return None, [f"file starts with a UTF-16 byte-order mark but is not valid UTF-16 ({err.reason})"]
    text = data.decode("utf-8-sig", errors="surrogateescape")
    if "\x00" in text:
        return None, ["file is binary (contains NUL bytes), not a CSV text file"]
    problems = []
    bad = _UNDECODABLE.findall(text)
    if bad:
        first_line = text[: _UNDECODABLE.search(text).start()].count("\n") + 1
        problems.append(
            f"file is not valid UTF-8: {len(bad)} undecodable byte(s), first on line {first_line}"
            " (rows with such bytes in a used column are quarantined)"
        )
    return text, problems


def _sniff_delimiter(text: str) -> str:
    first_line = next((line for line in text.splitlines() if line.strip()), "")
    counts = {d: first_line.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def _read_table(data: bytes) -> _Table:
    """Split bytes into a header and numbered data records without ever raising."""
    if not data:
        return _Table(problems=["file is empty (no header row)"])
    text, problems = _decode(data)
    table = _Table(problems=problems)
    if text is None:
        return table
    table.delimiter = _sniff_delimiter(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=table.delimiter, strict=True)
    row_number, last_line = 0, 0
    while True:
        try:
            fields = next(reader)
            problem = None
        except StopIteration:
            break
        except csv.Error as err:
            fields = []
            first, last = last_line + 1, reader.line_num
            lines = f"line {first}" if first == last else f"lines {first}-{last}"
            hint = " (unclosed quote?)" if "end of data" in str(err) else ""
            problem = f"is not valid CSV ({lines}: {err}{hint})"
        last_line = reader.line_num
        if table.header is None and not problem:
            if any(f.strip() for f in fields):
                table.header = fields
            continue  # leading blank lines before the header
        if table.header is None:
            table.problems.append(f"header row {problem}")
            table.header = []
            continue
        row_number += 1
        if problem is None and not any(f.strip() for f in fields):
            continue  # blank row: keeps its number, is not a data row
        width = len(table.header)
        ragged = len(fields) < width or any(f.strip() for f in fields[width:])  # blank trailing extras are fine
        if problem is None and ragged:
            problem = f"has {len(fields)} values but the header has {width} columns"
        table.records.append(_Record(row_number=row_number, fields=fields, problem=problem))
    if table.header is None:
        table.problems.append("file has no header row (only blank lines)")
    return table


@dataclass
class _Columns:
    """Where the known columns sit in the header, and what is wrong with the header."""

    positions: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def raw_values(self, record: _Record) -> dict[str, str | None]:
        """The record's values for every known column, as read (None if absent)."""
        return {
            col: record.fields[i] if (i := self.positions.get(col)) is not None and i < len(record.fields) else None
            for col in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)
        }


def _column_positions(header: list[str]) -> _Columns:
    """Map canonical names to header positions: `Lead ID`, `leadId`, ` LEAD_ID ` -> lead_id."""
    wanted = {c.replace("_", ""): c for c in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)}
    columns = _Columns()
    for i, name in enumerate(header):
        canonical = wanted.get(snake_case(_readable(name)).replace("_", ""))
        if canonical is None:
            continue
        if canonical in columns.positions:
            first, second = _readable(header[columns.positions[canonical]]), _readable(name)
            columns.problems.append(f"columns {first!r} and {second!r} both mean '{canonical}' (ambiguous)")
        else:
            columns.positions[canonical] = i
    shown_header = ", ".join(map(_readable, header))[:200]
    for col in REQUIRED_COLUMNS:
        if col not in columns.positions:
            columns.problems.append(f"required column '{col}' is missing (header: {shown_header})")
    return columns


def _normalise_outcome(value: str) -> str:
    return _OUTCOME_SEPARATORS.sub("_", value.strip().lower())


def _to_utc_naive(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def parse_feedback_file(
    path: Path,
    content_hash: str,
    known_lead_ids: set[str] | None,
    outcome_labels: dict[str, int] = OUTCOME_LABELS_DEFAULT,
    received_at: datetime | None = None,
    default_source: str | None = None,
) -> FeedbackBatch:
    """Parse one feedback CSV into outcomes, quarantine and unknown leads; never raises on content.

    `known_lead_ids=None` skips the known-lead check. `received_at` defaults to the file's mtime
    (stable across re-parses); tz-aware times are converted to UTC and made naive, naive times are
    taken as UTC. `source` falls back to `default_source`, then to the folder name.
    """
    file_name = path.name
    labels = {_normalise_outcome(k): v for k, v in outcome_labels.items()}
    try:
        table = _read_table(path.read_bytes())
        received_at = received_at or datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except OSError as err:  # vanished or unreadable: still a quarantine row, not an exception
        table = _Table(problems=[f"file cannot be read ({err.strerror or err})"])
        received_at = received_at or datetime.now(UTC)
    received_at = _to_utc_naive(received_at)
    columns = _column_positions(table.header) if table.header is not None else _Columns()
    check = _RowCheck(file_name, table, columns, labels, received_at)

    outcomes, quarantined = [], []
    for record, outcome_at in zip(table.records, _parse_outcome_times(table.records, columns), strict=True):
        values, reasons = check(record, outcome_at)
        if reasons:
            raw = {col: _readable(v) if v is not None else None for col, v in columns.raw_values(record).items()}
            raw_record = _readable(table.delimiter.join(record.fields))[:RAW_RECORD_MAX_CHARS] or None
            quarantined.append({"file": file_name, "content_hash": content_hash, "row_number": record.row_number,
                                **raw, "raw_record": raw_record, "reason": "; ".join(reasons)})
            continue
        outcome = _normalise_outcome(values["outcome"])
        outcomes.append({
            "lead_id": values["lead_id"],
            "outcome": outcome,
            "label": labels[outcome],
            "outcome_at": outcome_at,
            "source": values.get("source") or default_source or path.parent.name,
            "file": file_name,
            "content_hash": content_hash,
            "row_number": record.row_number,
            "received_at": received_at,
        })

    file_problems = [*table.problems, *columns.problems]
    if not table.records and table.header is not None and not file_problems:
        file_problems.append("file has a header but no data rows")
    if file_problems:
        quarantined.insert(0, {"file": file_name, "content_hash": content_hash, "row_number": 0,
                               "reason": f"{file_name}: " + "; ".join(file_problems)})

    valid = _outcome_frame(outcomes)
    is_known = valid["lead_id"].isin(known_lead_ids) if known_lead_ids is not None else valid["lead_id"].notna()
    return FeedbackBatch(
        outcomes=valid[is_known].reset_index(drop=True),
        quarantined=_quarantine_frame(quarantined),
        unknown_leads=valid[~is_known].reset_index(drop=True),
        data_rows=len(table.records),
    )


def _parse_outcome_times(records: list[_Record], columns: _Columns) -> pd.Series:
    """All outcome_at values in one vectorised parse; NaT where invalid ('now' and 'today' parse, so
    a year-first shape is required first). Aware times become UTC, then naive; naive ones are UTC."""
    texts = pd.Series([(columns.raw_values(r)["outcome_at"] or "").strip() for r in records], dtype=object)
    shaped = texts.str.match(_TIMESTAMP_SHAPE) & ~texts.str.contains(_UNDECODABLE)
    parsed = pd.to_datetime(texts.where(shaped), format="ISO8601", utc=True, errors="coerce")
    return parsed.dt.tz_localize(None)


@dataclass
class _RowCheck:
    """Why one data row cannot be used; each reason names file, row and (when it applies) column."""

    file_name: str
    table: _Table
    columns: _Columns
    labels: dict[str, int]
    received_at: datetime

    def __call__(self, record: _Record, outcome_at: pd.Timestamp) -> tuple[dict[str, str], list[str]]:
        where = f"{self.file_name} row {record.row_number}"
        if record.problem:
            return {}, [f"{where}: {record.problem}"]
        if self.columns.problems:
            return {}, [f"{where}: {'; '.join(self.columns.problems)} (whole file quarantined)"]
        values = {col: value.strip() for col, value in self.columns.raw_values(record).items() if value is not None}
        reasons = []

        def fail(col: str, message: str) -> None:
            header_name = _readable(self.table.header[self.columns.positions[col]].strip())
            reasons.append(f"{where} column {header_name!r}: {message}")

        for col, value in values.items():
            if _UNDECODABLE.search(value):
                fail(col, f"value {_readable(value)[:40]!r} contains bytes that are not valid UTF-8")
            elif not value and col in REQUIRED_COLUMNS:
                fail(col, "value is blank (required)")
        outcome, stamp_text = values["outcome"], values["outcome_at"]
        if outcome and not _UNDECODABLE.search(outcome) and _normalise_outcome(outcome) not in self.labels:
            expected = ", ".join(sorted(self.labels))
            fail("outcome", f"value {outcome[:40]!r} is not a known outcome (expected one of: {expected})")
        if stamp_text and not _UNDECODABLE.search(stamp_text):
            if pd.isna(outcome_at):
                fail("outcome_at", f"value {stamp_text[:40]!r} is not a valid timestamp")
            elif outcome_at > self.received_at + FUTURE_TOLERANCE:
                fail("outcome_at", f"value {stamp_text[:40]!r} is later than the file's receipt"
                                   f" ({self.received_at:%Y-%m-%d %H:%M} UTC)")
        return values, reasons


def _outcome_frame(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=OUTCOME_COLUMNS)
    return df.astype({
        "lead_id": object, "outcome": object, "label": "int64", "outcome_at": "datetime64[ns]", "source": object,
        "file": object, "content_hash": object, "row_number": "int64", "received_at": "datetime64[ns]",
    })


def _quarantine_frame(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame([dict.fromkeys(QUARANTINE_COLUMNS) | row for row in rows], columns=QUARANTINE_COLUMNS)
    return df.astype({c: object for c in QUARANTINE_COLUMNS} | {"row_number": "int64"})


# --------------------------------------------------------------------------------------------
# 3. Conflict resolution
# --------------------------------------------------------------------------------------------


_TIE_BREAK_NOTES = {
    "outcome_at": "",
    "received_at": " (tie: latest received_at)",
    "file": " (tie: last file name)",
    "row_number": " (tie: last row in file)",
}


OVERRIDDEN_SHOWN = 5


def _compact_candidates(others: pd.DataFrame) -> str:
    """`lost @ 2026-05-01 00:00 (fb_011.csv#1); ...`, newest first, at most OVERRIDDEN_SHOWN of them."""
    shown = [f"{r.outcome} @ {r.outcome_at:%Y-%m-%d %H:%M} ({r.file}#{r.row_number})"
             for r in others.head(OVERRIDDEN_SHOWN).itertuples()]
    if len(others) > OVERRIDDEN_SHOWN:
        shown.append(f"+{len(others) - OVERRIDDEN_SHOWN} more")
    return "; ".join(shown)


def resolve_conflicts(outcomes: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One outcome per lead: the latest `outcome_at`; ties by latest `received_at`, file name, row.

    The same (content_hash, row_number) seen twice (a file parsed again) counts once. A lead is
    listed in the resolutions table when its candidates carry more than one distinct outcome;
    the rule names the tie-break when `outcome_at` alone did not decide.
    """
    order = ["lead_id", "outcome_at", "received_at", "file", "row_number"]
    if outcomes.empty:
        return outcomes.copy().reset_index(drop=True), pd.DataFrame(columns=RESOLUTION_COLUMNS)
    candidates = outcomes.drop_duplicates(subset=["content_hash", "row_number"])
    candidates = candidates.sort_values(order, na_position="first", kind="stable").reset_index(drop=True)
    is_chosen = ~candidates["lead_id"].duplicated(keep="last")
    resolved = candidates[is_chosen].reset_index(drop=True)

    distinct = candidates.groupby("lead_id")["outcome"].transform("nunique")
    resolutions = []
    for lead_id, group in candidates[distinct > 1].groupby("lead_id", sort=True):
        chosen, others = group.iloc[-1], group.iloc[:-1].iloc[::-1]  # others newest first
        runner_up = others.iloc[0]
        decided_by = next((key for key in order[1:] if runner_up[key] != chosen[key]), "row_number")
        rule = "latest outcome_at" + _TIE_BREAK_NOTES[decided_by]
        resolutions.append({
            "lead_id": lead_id,
            "chosen_outcome": chosen["outcome"],
            "chosen_outcome_at": chosen["outcome_at"],
            "chosen_file": chosen["file"],
            "chosen_row": int(chosen["row_number"]),
            "candidates": len(group),
            "overridden": _compact_candidates(others),
            "rule": rule,
        })
    return resolved, pd.DataFrame(resolutions, columns=RESOLUTION_COLUMNS)
