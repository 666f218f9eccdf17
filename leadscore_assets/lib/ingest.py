"""Read a source file verbatim: every value as text, plus its file and 1-based data row number."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from leadscore_assets.lib.config import SourceSpec
from leadscore_assets.lib.validation import FILE, ROW


class SourceFileError(ValueError):
    """The source file is missing, empty or unreadable: nothing can be validated."""


def read_source(path: Path, spec: SourceSpec) -> pd.DataFrame:
    if not path.exists():
        raise SourceFileError(
            f"{path}: source file not found (generate demo data with `python -m leadscore_assets.demo_data all`)"
        )
    if path.stat().st_size == 0:
        raise SourceFileError(f"{path}: file is empty (no header row)")
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, sep=spec.delimiter)
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise SourceFileError(f"{path}: cannot parse as CSV: {err}") from err
    raw.insert(0, ROW, range(1, len(raw) + 1))
    raw[FILE] = path.name
    return raw
