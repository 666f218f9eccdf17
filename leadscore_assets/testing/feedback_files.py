"""Outcome files as the feedback tests write them into a feedback folder, and parsed as the inbox
would hand them over (the folder itself is a fixture of the tests)."""

from datetime import datetime
from pathlib import Path

from leadscore_assets.lib.labels.feedback_parsing import parse_feedback

HEADER = "lead_id,outcome,outcome_at\n"
RECEIVED = datetime(2026, 6, 1, 12, 0)


def write(folder: Path, name: str, content: str | bytes) -> Path:
    path = folder / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def parse(path: Path, known: set[str] | None = None, **kwargs):
    """Parse a written file's bytes as the inbox would hand them over."""
    kwargs.setdefault("received_at", RECEIVED)
    kwargs.setdefault("default_source", path.parent.name)  # as the inbox falls back to the folder name
    return parse_feedback(path.read_bytes(), path.name, kwargs.pop("content_hash", f"hash-{path.name}"), known,
                          **kwargs)
