"""A CSV export read as text, before anything is coerced: decoding, delimiter and a cut-short
last record (pure: takes the file's bytes).

Decoded as UTF-8 (a byte-order mark is dropped); a file that is not UTF-8 but decodes whole as
Windows-1252 is read as such, with a note naming the row and column of the first byte that was
not UTF-8, and anything else fails naming that row and column. When the configured delimiter
finds one column but another (`,;\\t|`) splits the header and its rows alike, that one is used,
with a note; when several could be meant, it fails. A last record cut short (no line end, fewer
fields than the header, or inside an open quote: a half-written export) is returned with its
reason, to be quarantined rather than validated.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from leadscore_assets.lib.validation.personal_data import contains_personal_data
from leadscore_assets.lib.validation import FILE, ROW

DELIMITERS = ",;\t|"  # what a CSV export is delimited by, in practice
SNIFF_BYTES, _SNIFF_RECORDS = 65_536, 20  # how much of a file shows its delimiter
_MARK = "\ue000"  # a private-use character, never a delimiter or quote: marks a position while parsing
_UNDECODABLE = re.compile("[\udc80-\udcff]")  # bytes kept by errors="surrogateescape"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


class SourceFileError(ValueError):
    """The source file is missing, empty or unreadable: nothing can be validated."""


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
    header = next(_iter_records(text[:SNIFF_BYTES], configured), None)
    if header is None or len(header) > 1:
        return configured, None
    sample = "\n".join([line for line in text[:SNIFF_BYTES].splitlines() if line.strip()][:_SNIFF_RECORDS])
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
    counted as `_row_number` counts them) or "the header, column 2". Never a value: a header name
that looks like personal data (a file without a header row) is given by its position."""
    records = _records(text[:position] + _MARK, delimiter)
    index = len(records) - 1
    column = next((i for i, value in enumerate(records[-1]) if _MARK in value), len(records[-1]) - 1)
    if index == 0:
        return f"the header, column {column + 1}"
    header = records[0]
    name = _readable(header[column]).strip() if column < len(header) else ""
    if contains_personal_data(name) or len(name) > 40:  # not a header but a record (a file without one)
        name = ""
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


def csv_as_text(path: Path, data: bytes, delimiter: str = ",") -> CsvText:
    """A CSV file's bytes as text: every value a string, blanks kept as empty strings, numbered
    data rows (`path` names the file in rows and messages; it is not read)."""
    text, delimiter, notes = _decode(path, data, delimiter)
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
