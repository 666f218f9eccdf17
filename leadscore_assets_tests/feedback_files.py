"""Shared by the feedback tests: a feedback folder and outcome files written into it."""

from datetime import datetime
from pathlib import Path

import pytest

from leadscore_assets.lib.feedback_parsing import parse_feedback

HEADER = "lead_id,outcome,outcome_at\n"
RECEIVED = datetime(2026, 6, 1, 12, 0)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A project's feedback folder, as `data/feedback/<project>/` (the source falls back to its name)."""
    path = tmp_path / "feedback" / "linkedin"
    path.mkdir(parents=True)
    return path


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
