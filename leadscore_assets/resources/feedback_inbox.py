"""The feedback inbox: which CRM outcome files in a folder are complete and new (I/O).

Outcome files are dropped by people and CRM exports into one folder per source
(`data/feedback/<source>/*.csv`). Nothing tells us when a file is finished, and the same export
is often dropped twice under different names. `scan_folder` hands out a file only once it is
complete (untouched for QUIET_S when first seen, or the same size and mtime as on the previous
tick; not empty, not a temporary name) and only once per content: a copy under another name
with the same content (byte for byte, or re-saved with other line endings, a byte-order mark or
trailing blank lines: see `canonical_content`) is reported as a duplicate, once, never handed out.
`read_feedback_file` reads one file for `lib.feedback_parsing`. `feedback_folder` is the YAML's
`feedback.folder` under the data folder, refused when it resolves outside it (symlinks followed);
a file in the folder that is a symlink resolving outside the data folder is refused too, never read.

Cursor-state contract (what the sensor stores between ticks, a JSON-serialisable dict)::

    {"version": 1,
     "processed": {sha256: file name first handed out},    # forever: the idempotence guarantee
     "pending":   {file name: [size, mtime_ns]},           # files waiting to settle
     "settled":   {file name: [size, mtime_ns]}}           # files already handed out or reported

Its size is one entry per processed content plus one per file currently in the folder (names
that leave the folder are dropped); no file contents are stored. The returned state already
counts `ready` files as processed, so the next tick never returns them again. If a tick fails
before the cursor is stored, the next tick returns the same files and Dagster skips the
repeated `run_key`s. `mark_processed` records files loaded outside the sensor (a manual
backfill). A file rewritten in place with new content is a new content hash.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from leadscore_assets.lib.data_paths import inside_data_dir
from leadscore_assets.lib.feedback_parsing import OUTCOME_LABELS_DEFAULT, FeedbackBatch, parse_feedback

STATE_VERSION = 1
TEMPORARY_NAME_PATTERNS = ("*.tmp", "*.part", "*.crdownload", ".*", "~*")


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
    refused: list[Path] = field(default_factory=list)  # symlinks resolving outside the data folder: never read


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


def feedback_folder(data_dir: str | Path, folder: str) -> Path:
    """The project's `feedback.folder` under `data_dir`; `DataPathError` (naming the YAML key, the
    path and the data folder) when it resolves outside the data folder, symlinks followed."""
    return inside_data_dir(data_dir, folder, ("feedback", "folder"))


QUIET_S = 3.0  # a file untouched this long when first seen is complete: no need to wait a tick


def scan_folder(
    folder: Path, state: dict | None, pattern: str = "*.csv", quiet_s: float = QUIET_S, now: float | None = None,
    data_dir: Path | None = None,
) -> ScanResult:
    """One sensor tick over the files directly in `folder` whose name matches `pattern`.

    A file is ready when it is not empty, its content hash was never processed, and either its
    size and mtime equal those seen on the previous tick or, first seen, it has not been written
    to for `quiet_s` seconds (so settling does not cost a whole extra tick). A missing folder is
    an empty scan. A file that resolves outside `data_dir` (default: `folder`), a symlink pointing
    out, is never hashed or read: it is listed in `refused`.
    """
    now = time.time() if now is None else now
    old = _copy_state(state)
    new = empty_state() | {"processed": old["processed"]}
    ready: list[FeedbackFile] = []
    pending: list[Path] = []
    duplicates: list[FeedbackFile] = []
    refused: list[Path] = []
    root = Path(data_dir if data_dir is not None else folder).resolve()

    candidates = sorted(folder.iterdir()) if folder.is_dir() else []
    for path in candidates:
        name = path.name
        if is_temporary_name(name) or not fnmatch.fnmatchcase(name.lower(), pattern.lower()):
            continue
        try:
            if not path.is_file():
                continue
            if not path.resolve().is_relative_to(root):
                refused.append(path)
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
    return ScanResult(ready=ready, pending=pending, duplicates=duplicates, state=new, refused=refused)


def read_feedback_file(
    path: Path,
    content_hash: str,
    known_lead_ids: set[str] | None,
    outcome_labels: dict[str, int] = OUTCOME_LABELS_DEFAULT,
    received_at: datetime | None = None,
    default_source: str | None = None,
) -> FeedbackBatch:
    """Read and parse one outcome file; never raises on content or on a file that vanished.
    `received_at` defaults to the file's mtime (stable across re-parses); `source` falls back to
    `default_source`, then to the folder name."""
    try:
        data, problem = path.read_bytes(), None
        received_at = received_at or datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except OSError as err:  # vanished or unreadable: still a quarantine row, not an exception
        data, problem = b"", f"file cannot be read ({err.strerror or err})"
        received_at = received_at or datetime.now(UTC)
    return parse_feedback(data, path.name, content_hash, known_lead_ids, outcome_labels, received_at,
                          default_source or path.parent.name, unreadable=problem)
