"""The feedback inbox: which CRM outcome files in a folder are complete and new (I/O).

Outcome files are dropped by people and CRM exports into one folder per source
(`data/feedback/<source>/*.csv`). Nothing tells us when a file is finished, and the same export
is often dropped twice under different names. `scan_folder` hands out a file only once it is
complete (untouched for QUIET_S when first seen, or the same size and mtime as on the previous
tick; not empty, not a temporary name) and only while its content has not landed: a copy under
another name with the same content (byte for byte, or re-saved with other line endings, a
byte-order mark or trailing blank lines: see `canonical_content`) is reported once, never handed
out twice while a landing of that content is in progress or done.
`read_feedback_file` reads one file for `lib.feedback_parsing`. `feedback_folder` is the YAML's
`feedback.folder` under the data folder, refused when it resolves outside it (symlinks followed);
a file in the folder that is a symlink resolving outside the data folder is refused too, never read.

Landed means published. Content counts as landed only when its hash is in the project's
*published* warehouse (`<project>.feedback_batches`, read by the sensor and passed in as
`landed`), never because a run was requested or started. Handed-out content waits in
`requested` until then; when its run ends without the content being published (failed, blocked,
cancelled, or never created within REQUEST_GRACE_S), it moves to `failed` and is handed out again
(`retry_delay_s`: at once the first time, then backing off), from its file or from any file in
the folder with the same content, under a new run key (`FeedbackFile.run_key`: the hash, then
`<hash>:attempt-<n>`), since Dagster skips a run key it has seen. A copy re-sent after a failure
is handed out at once as that retry (no backoff), never refused. Without `landed` (no warehouse to ask) nothing is
confirmed and nothing retried: handed-out content just stays requested.

Cursor-state contract (what the sensor stores between ticks, a JSON-serialisable dict)::

    {"version": 2,
     "landed":    {sha256: file name},        # in the published warehouse: never handed out again
     "requested": {sha256: {"file", "attempt", "since"}},          # handed out, not published yet
     "failed":    {sha256: {"file", "attempt", "run_id", "status", "retry_at"}},  # retried
     "pending":   {file name: [size, mtime_ns]},           # files waiting to settle
     "settled":   {file name: [size, mtime_ns]}}           # files already handed out or reported

Its size is one entry per content plus one per file currently in the folder (names that leave
the folder are dropped); no file contents are stored. A version-1 cursor (`processed`: every
hash ever handed out) is read as `requested` with attempt 1, so content handed out by the old
sensor whose run failed is found unpublished and retried. The returned state already counts
`ready` files as requested, so the next tick never returns them again while their run is in
flight. `mark_processed` records files loaded outside the sensor (a manual backfill) as landed.
A file rewritten in place with new content is a new content hash.
"""

from __future__ import annotations

import fnmatch
import hashlib
import math
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from leadscore_assets.lib.project.data_paths import inside_data_dir
from leadscore_assets.lib.labels.feedback_parsing import OUTCOME_LABELS_DEFAULT, FeedbackBatch, parse_feedback

STATE_VERSION = 2
TEMPORARY_NAME_PATTERNS = ("*.tmp", "*.part", "*.crdownload", ".*", "~*")
REQUEST_GRACE_S = 120.0  # a requested run not in the instance after this long never started: retried
RETRY_BACKOFF_S = 60.0  # the second retry waits this long after the failure, doubling up to RETRY_MAX_S
RETRY_MAX_S = 1800.0


def since(now: float) -> float:
    """When a request was handed out, in tenths of a second, never after `now`: rounded up, the
    next tick within 50 ms measured a negative age and kept waiting even with no grace at all."""
    return math.floor(now * 10) / 10


def run_key_for(content_hash: str, attempt: int) -> str:
    """The run key of one landing attempt: the content hash first (as before), then a new key per
    retry, since Dagster skips a run request whose run key it has already seen."""
    return content_hash if attempt <= 1 else f"{content_hash}:attempt-{attempt}"


def retry_delay_s(failed_attempts: int) -> float:
    """How long after its `failed_attempts`-th failure a landing is tried again: at once after the
    first (a busy project, a run killed by a deploy), then 60 s, 120 s, ... up to 30 min."""
    if failed_attempts <= 1:
        return 0.0
    return min(RETRY_BACKOFF_S * 2 ** (failed_attempts - 2), RETRY_MAX_S)


@dataclass(frozen=True)
class FeedbackFile:
    path: Path
    content_hash: str  # sha256 hex digest of the normalised content (file_sha256)
    size: int
    duplicate_of: str | None = None  # for duplicates: the file name first handed out with this content
    attempt: int = 1  # for ready files: which landing attempt of this content the run is (>1: a retry)
    retry_of: str | None = None  # for retries: the run id of the failed attempt, when there was a run
    landing: str = "landed"  # for duplicates: "landed" (published) or "in_progress" (its run not over yet)

    @property
    def run_key(self) -> str:
        return run_key_for(self.content_hash, self.attempt)


@dataclass(frozen=True)
class Landing:
    """Where handed-out content stands: its file, attempt, run key and (once known) run."""

    content_hash: str
    file: str
    attempt: int
    run_id: str | None = None
    status: str = ""  # the run's status, "run not created yet", or "never started"
    retry_at: float | None = None  # failed: when it is handed out again (if a file has the content)

    @property
    def run_key(self) -> str:
        return run_key_for(self.content_hash, self.attempt)


@dataclass(frozen=True)
class RunInfo:
    """The newest run of a landing's run key, as the Dagster instance has it."""

    run_id: str
    status: str  # DagsterRunStatus value: QUEUED, STARTED, SUCCESS, FAILURE, CANCELED, ...
    finished: bool


@dataclass
class ScanResult:
    ready: list[FeedbackFile]  # complete, unlanded content to request (new files and retries): one run each
    pending: list[Path]  # present but not ready yet (first seen, still changing, or empty)
    duplicates: list[FeedbackFile]  # complete, same content as landed or in-flight content; reported once
    state: dict  # the new cursor state to store
    refused: list[Path] = field(default_factory=list)  # symlinks resolving outside the data folder: never read
    landed: list[Landing] = field(default_factory=list)  # found in the published warehouse on this tick
    in_flight: list[Landing] = field(default_factory=list)  # requested, their run not over yet
    failed: list[Landing] = field(default_factory=list)  # found failed on this tick (retried when in `ready`)
    waiting: list[Landing] = field(default_factory=list)  # failed earlier: waiting for retry_at or a file


def is_temporary_name(name: str) -> bool:
    """Names that downloaders, editors and sync tools use while a file is still being written."""
    lowered = name.lower()
    return any(fnmatch.fnmatchcase(lowered, pattern) for pattern in TEMPORARY_NAME_PATTERNS)


def empty_state() -> dict:
    return {"version": STATE_VERSION, "landed": {}, "requested": {}, "failed": {}, "pending": {}, "settled": {}}


def _copy_state(state: dict | None) -> dict:
    """A fresh copy (inputs are never mutated) that tolerates a JSON round trip. A version-1 state
    (`processed`: handed out, landed or not) becomes `requested` with attempt 1 (run key = hash)
    and no settled files, so every file is looked at again and unpublished content retried."""
    if not state:
        return empty_state()
    version = state.get("version")
    if version == 1:
        return empty_state() | {
            "requested": {h: {"file": name, "attempt": 1, "since": 0.0} for h, name in state.get("processed", {}).items()},
            "pending": {name: list(stat) for name, stat in state.get("pending", {}).items()}}
    if version != STATE_VERSION:
        raise ValueError(f"feedback cursor state has version {version!r}, expected {STATE_VERSION}")
    return {
        "version": STATE_VERSION,
        "landed": dict(state.get("landed", {})),
        "requested": {h: dict(e) for h, e in state.get("requested", {}).items()},
        "failed": {h: dict(e) for h, e in state.get("failed", {}).items()},
        "pending": {name: list(stat) for name, stat in state.get("pending", {}).items()},
        "settled": {name: list(stat) for name, stat in state.get("settled", {}).items()},
    }


def requested_run_keys(state: dict | None) -> list[str]:
    """The run keys of every landing still waiting for its run (to look up before a scan)."""
    requested = _copy_state(state)["requested"]
    return [run_key_for(h, int(e.get("attempt", 1))) for h, e in requested.items()]


def mark_processed(state: dict | None, files: Iterable[FeedbackFile]) -> dict:
    """Return a new state in which the files' contents count as landed (never ready again)."""
    new_state = _copy_state(state)
    for f in files:
        new_state["landed"].setdefault(f.content_hash, f.path.name)
        new_state["requested"].pop(f.content_hash, None)
        new_state["failed"].pop(f.content_hash, None)
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
    data_dir: Path | None = None, landed: Mapping[str, str] | None = None,
    runs: Mapping[str, RunInfo | None] | None = None,
) -> ScanResult:
    """One sensor tick over the files directly in `folder` whose name matches `pattern`.

    A file is complete when it is not empty and either its size and mtime equal those seen on the
    previous tick or, first seen, it has not been written to for `quiet_s` seconds (so settling
    does not cost a whole extra tick). A complete file is ready when its content has neither
    landed nor a landing in flight. A missing folder is an empty scan. A file that resolves
    outside `data_dir` (default: `folder`), a symlink pointing out, is never hashed or read: it is
    listed in `refused`.

    `landed` is what the published warehouse holds (content hash -> file name); `runs` the newest
    run of each run key in `requested_run_keys(state)` (None: no such run). Read the runs first:
    a run publishes before it succeeds, so a success seen before reading `landed` is in it. Given
    both, requested content found in `landed` is landed; content whose run ended without it (or
    whose run never appeared) failed and is handed out again in `ready` with the next attempt.
    """
    now = time.time() if now is None else now
    old = _copy_state(state)
    new = empty_state() | {"landed": old["landed"]}
    pending: list[Path] = []
    refused: list[Path] = []
    fresh: list[FeedbackFile] = []  # complete files first seen complete on this tick, hashed
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
        fresh.append(FeedbackFile(path=path, content_hash=content_hash, size=stat.st_size))

    published = dict(landed or {})
    known = landed is not None and runs is not None  # can this tick tell landed from failed?
    landed_now: list[Landing] = []
    in_flight: list[Landing] = []
    failed_now: list[Landing] = []

    def land(content_hash: str, entry: dict) -> None:
        name = new["landed"].setdefault(content_hash, published.get(content_hash, entry["file"]))  # as published
        landed_now.append(Landing(content_hash, name, int(entry.get("attempt", 1)), entry.get("run_id")))

    # 1. where the landings handed out on earlier ticks stand
    for content_hash, entry in old["requested"].items():
        landing = Landing(content_hash, entry["file"], int(entry.get("attempt", 1)))
        if content_hash in new["landed"] or content_hash in published:
            land(content_hash, entry)
            continue
        info = runs.get(landing.run_key) if known else None
        if not known or (info is None and now - float(entry.get("since", 0.0)) < REQUEST_GRACE_S):
            new["requested"][content_hash] = entry
            in_flight.append(replace(landing, status="run not created yet" if known else "not checked"))
            continue
        if info is not None and not info.finished:
            new["requested"][content_hash] = entry
            in_flight.append(replace(landing, run_id=info.run_id, status=info.status))
            continue
        # over, and the content is not in the published warehouse: failed, blocked, cancelled, never started
        run_id, status = (info.run_id, info.status) if info is not None else (None, "never started")
        retry_at = float(int(now + retry_delay_s(landing.attempt)))  # whole seconds, never after now + delay
        new["failed"][content_hash] = {"file": landing.file, "attempt": landing.attempt, "run_id": run_id,
                                       "status": status, "retry_at": retry_at}
        failed_now.append(replace(landing, run_id=run_id, status=status, retry_at=retry_at))
    for content_hash, entry in old["failed"].items():
        if content_hash in new["landed"] or content_hash in published:  # landed by a manual run meanwhile
            land(content_hash, entry)
        else:
            new["failed"][content_hash] = entry

    # 2. the files complete since the last tick
    ready: list[FeedbackFile] = []
    duplicates: list[FeedbackFile] = []
    fresh_by_hash: dict[str, list[FeedbackFile]] = {}
    for f in fresh:
        name, content_hash = f.path.name, f.content_hash
        if content_hash in new["landed"] or content_hash in published:
            first = new["landed"].setdefault(content_hash, published.get(content_hash, name))
            if first != name:  # same name, same bytes: only touched, nothing to report
                duplicates.append(replace(f, duplicate_of=first, landing="landed"))
        elif content_hash in new["requested"]:
            first = new["requested"][content_hash]["file"]
            if first != name:
                duplicates.append(replace(f, duplicate_of=first, landing="in_progress"))
        elif content_hash in new["failed"]:
            fresh_by_hash.setdefault(content_hash, []).append(f)  # a copy of failed content: its retry
        else:
            ready.append(f)
            new["requested"][content_hash] = {"file": name, "attempt": 1, "since": since(now)}

    # 3. failed landings due again: handed out from their file, or any file with the same content
    waiting: list[Landing] = []
    hashes = {f.path.name: f.content_hash for f in fresh}  # each file hashed at most once per tick
    for content_hash, entry in list(new["failed"].items()):
        landing = Landing(content_hash, entry["file"], int(entry["attempt"]), entry.get("run_id"),
                          entry.get("status", ""), entry.get("retry_at"))
        due = float(entry.get("retry_at") or 0.0) <= now
        copies = fresh_by_hash.get(content_hash, [])  # re-sent by someone: tried at once, whatever the backoff
        found = copies[0] if copies else None
        if found is None and due and not entry.get("gone"):
            found = _file_with_content(folder, content_hash, entry["file"], new["settled"], hashes)
            if found is None:  # looked everywhere once; from now on only a re-sent copy revives it
                entry["gone"] = True
        if found is None:
            waiting.append(landing)
            continue
        attempt = landing.attempt + 1
        ready.append(replace(found, attempt=attempt, retry_of=entry.get("run_id")))
        new["requested"][content_hash] = {"file": found.path.name, "attempt": attempt, "since": since(now)}
        del new["failed"][content_hash]
        for copy in copies[1:]:
            duplicates.append(replace(copy, duplicate_of=found.path.name, landing="in_progress"))

    return ScanResult(ready=ready, pending=pending, duplicates=duplicates, state=new, refused=refused,
                      landed=landed_now, in_flight=in_flight, failed=failed_now, waiting=waiting)


def _file_with_content(folder: Path, content_hash: str, preferred: str, settled: Mapping[str, list],
                       hashes: dict[str, str]) -> FeedbackFile | None:
    """A complete file in the folder with this content: `preferred` if it still has it, else the
    first other complete file that does (hashed only now, once per tick: a retry whose file was
    renamed or replaced by a copy)."""
    names = ([preferred] if preferred in settled else []) + sorted(n for n in settled if n != preferred)
    for name in names:
        path = folder / name
        try:
            if name not in hashes:
                hashes[name] = file_sha256(path)
            if hashes[name] == content_hash:
                return FeedbackFile(path=path, content_hash=content_hash, size=path.stat().st_size)
        except OSError:
            continue
    return None


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
