"""Validation: raw rows in, typed valid rows and a quarantine with reasons out.

`validate` is the one validation of the product: the pipeline's `validated_contacts`, the served
model (one lead or a batch), daily scoring and Spark (through the served model) all call it.

Contract: every raw row ends up in exactly one of the two outputs, and each quarantined row
carries a reason naming the file, row, lead id (when the row has a valid one), column and rule:
"export.csv row 2 (lead 'a2') column 'company_size': is not a valid integer (not a number)". No
cell value is ever written into a reason, whatever its column (reasons reach the warehouse's
quarantine table, logs and the UI, and a free-text cell can hold an email or a phone number):
only what is wrong with it, in words that do not depend on the value.

- `rules.py`: what a value must be and how a failure is worded (normalise, types, checks);
- `in_full.py`: the full route, every failure named;
- `shortcuts.py`: two routes that answer only when every row is valid (one record; a clean
  batch of text), fast enough for a served lead; held to the full route by tests.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from leadscore_assets.lib.project.config import ProjectConfig
from leadscore_assets.lib.validation.in_full import lead_part, validate_in_full
from leadscore_assets.lib.validation.rules import (
    COLLAPSED, FILE, LINEAGE, NULL_TOKENS, REASON, ROW, ValidationResult, normalise, redacted,
)
from leadscore_assets.lib.validation.shortcuts import clean_batch, one_record

__all__ = ["COLLAPSED", "FILE", "LINEAGE", "NULL_TOKENS", "REASON", "ROW", "ValidationResult", "lead_part", "normalise",
           "redacted", "validate", "validate_in_full"]

SHORTCUT_ROWS = 10_000  # a larger file is seldom clean throughout: the full route at once


def validate(raw: pd.DataFrame, config: ProjectConfig, now: datetime | pd.Timestamp | None = None) -> ValidationResult:
    """Split raw rows (with `_row_number`, `_source_file`) into typed valid rows and quarantine.

    Row-level failures quarantine the row; table-level failures (a missing column) quarantine
    every row, because no row can be trusted, and are returned as `table_errors`. A date later
    than the load time `now` (default: the current UTC time; naive times are UTC) plus
    `validation.future_tolerance_hours` is a row failure of its column.

    The answer is `validate_in_full`'s; a shortcut gives it when it can vouch that every row is
    valid (`shortcuts.py`).
    """
    if len(raw) == 1:
        result = one_record(raw, config, now)
    elif 1 < len(raw) <= SHORTCUT_ROWS:
        result = clean_batch(raw, config, now)
    else:
        result = None
    return result if result is not None else validate_in_full(raw, config, now)
