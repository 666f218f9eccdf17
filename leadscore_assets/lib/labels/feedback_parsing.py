"""CRM outcome files parsed: every data row ends in exactly one of `outcomes`, `quarantined`
(with a reason naming file, row and column) or `unknown_leads`; file-level problems are one extra
quarantine row with `row_number` 0. Takes bytes, returns frames: reading the file is
`resources/feedback_inbox.py`'s job.

Reasons name the file, row, lead (when its id may be quoted), column and rule, never a value:
"fb.csv row 4 (lead 'L4') column 'outcome_at': is not a valid timestamp (expected ISO 8601, year
first)". The raw values stay in the quarantine's own columns (to repair the row), not in its reason.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pandas as pd

from leadscore_assets.lib.project.column_names import snake_case
from leadscore_assets.lib.validation.personal_data import contains_personal_data

OUTCOME_LABELS_DEFAULT = {"won": 1, "replied": 1, "lost": 0, "no_reply": 0}
REQUIRED_COLUMNS = ("lead_id", "outcome", "outcome_at")
OPTIONAL_COLUMNS = ("source",)
OUTCOME_COLUMNS = [
    "lead_id", "outcome", "label", "outcome_at", "source", "file", "content_hash", "row_number", "received_at",
]
QUARANTINE_COLUMNS = [
    "file", "content_hash", "row_number", "lead_id", "outcome", "outcome_at", "source", "raw_record", "reason",
]

# An outcome time later than this after the file was received is a typo (2062 for 2026); it would
# otherwise win every future conflict for that lead.
FUTURE_TOLERANCE = timedelta(days=1)
RAW_RECORD_MAX_CHARS = 1000
MAX_SHOWN_ID = 64  # a longer lead id is free text: not quoted in a reason
MAX_SHOWN_NAME = 40  # a header name longer than this is cut in a reason


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


def _shown_name(name: str) -> str:
    """A header name as a reason may quote it: a header that holds personal data (a file without
    a header row, whose first record was read as one) is not quoted."""
    text = _readable(name).strip()
    if contains_personal_data(text):
        return "[not shown: looks like personal data]"
    return text if len(text) <= MAX_SHOWN_NAME else text[:MAX_SHOWN_NAME] + "..."


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
    shown_header = ", ".join(map(_shown_name, header))[:200]
    for col in REQUIRED_COLUMNS:
        if col not in columns.positions:
            columns.problems.append(f"required column '{col}' is missing (header: {shown_header})")
    return columns


def _normalise_outcome(value: str) -> str:
    return _OUTCOME_SEPARATORS.sub("_", value.strip().lower())


def _to_utc_naive(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def parse_feedback(
    data: bytes,
    file_name: str,
    content_hash: str,
    known_lead_ids: set[str] | None,
    outcome_labels: dict[str, int] = OUTCOME_LABELS_DEFAULT,
    received_at: datetime | None = None,
    default_source: str | None = None,
    unreadable: str | None = None,
) -> FeedbackBatch:
    """Parse one feedback file's bytes into outcomes, quarantine and unknown leads; never raises
    on content.

    `known_lead_ids=None` skips the known-lead check. `received_at` (default now): tz-aware times
    are converted to UTC and made naive, naive times are taken as UTC. `unreadable` says why the
    file could not be read (then every row is one file-level quarantine row).
    """
    labels = {_normalise_outcome(k): v for k, v in outcome_labels.items()}
    table = _Table(problems=[unreadable]) if unreadable else _read_table(data)
    received_at = _to_utc_naive(received_at or datetime.now(UTC))
    columns = _column_positions(table.header) if table.header is not None else _Columns()
    check = _RowCheck(file_name, table, columns, labels, received_at, known_lead_ids)

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
            "source": values.get("source") or default_source,
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
    known_lead_ids: set[str] | None = None

    def _lead(self, lead_id: str | None) -> str:
        """The " (lead 'L7')" of a row when the row's lead id may be quoted: a known lead's id (or, with no
        known ids, one that looks like an id: short, no email address or URL in it); else ""."""
        if not lead_id or _UNDECODABLE.search(lead_id) or len(lead_id) > MAX_SHOWN_ID:
            return ""
        known = lead_id in self.known_lead_ids if self.known_lead_ids is not None else True
        return f" (lead {lead_id!r})" if known and not contains_personal_data(lead_id, phones=False) else ""

    def __call__(self, record: _Record, outcome_at: pd.Timestamp) -> tuple[dict[str, str], list[str]]:
        where = f"{self.file_name} row {record.row_number}"
        if record.problem:
            return {}, [f"{where}: {record.problem}"]
        if self.columns.problems:
            return {}, [f"{where}: {'; '.join(self.columns.problems)} (whole file quarantined)"]
        values = {col: value.strip() for col, value in self.columns.raw_values(record).items() if value is not None}
        where += self._lead(values.get("lead_id"))
        reasons = []

        def fail(col: str, message: str) -> None:  # message: what is wrong, never the value
            header_name = _shown_name(self.table.header[self.columns.positions[col]])
            reasons.append(f"{where} column {header_name!r}: {message}")

        for col, value in values.items():
            if _UNDECODABLE.search(value):
                fail(col, "contains bytes that are not valid UTF-8")
            elif not value and col in REQUIRED_COLUMNS:
                fail(col, "is blank (required)")
        outcome, stamp_text = values["outcome"], values["outcome_at"]
        if outcome and not _UNDECODABLE.search(outcome) and _normalise_outcome(outcome) not in self.labels:
            expected = ", ".join(sorted(self.labels))
            fail("outcome", f"is not a known outcome (expected one of: {expected})")
        if stamp_text and not _UNDECODABLE.search(stamp_text):
            if pd.isna(outcome_at):
                fail("outcome_at", "is not a valid timestamp (expected ISO 8601, year first)")
            elif outcome_at > self.received_at + FUTURE_TOLERANCE:
                hours = FUTURE_TOLERANCE.total_seconds() / 3600
                fail("outcome_at", f"is later than the file's receipt: a time more than {hours:g} h after it was"
                                   f" received ({self.received_at:%Y-%m-%d %H:%M} UTC)")
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
