"""CSV files a person opens in a spreadsheet: no cell is ever read as a formula.

A company name, job title or location comes from whoever filled in a form or an export; a value
like `=HYPERLINK(...)`, `+cmd|' /C calc'!A0` or `@SUM(...)` would run when the sales team opens
the call list in Excel, LibreOffice or Google Sheets. Following OWASP's CSV-injection guidance, a
text cell that begins with `=`, `+`, `-`, `@`, a tab or a carriage return (also after leading
whitespace, which some spreadsheet imports trim) gets a leading single quote, and every text field
is written quoted. Only text is touched: numbers (a negative probability difference, a count)
stay numbers. Neutralise last, right before writing: nothing after it may trim the value.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def neutralise_cell(value: object) -> object:
    """`value` with a leading `'` when a spreadsheet would read it as a formula; non-text unchanged.
    (`-5` as text is prefixed too: that is OWASP's rule, and a text column is no place for sums.)"""
    if not isinstance(value, str) or not value:
        return value
    if value.startswith(FORMULA_TRIGGERS) or value.lstrip().startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


def neutralise_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy whose text columns (object / string dtype) are neutralised; numeric columns as they were."""
    out = frame.copy()
    for column in out.columns:
        if pd.api.types.is_object_dtype(out[column]) or pd.api.types.is_string_dtype(out[column]):
            out[column] = out[column].map(neutralise_cell, na_action="ignore")
    return out


def write_spreadsheet_csv(frame: pd.DataFrame, path: Path) -> Path:
    """`frame` as a CSV a person can open safely: text neutralised and quoted, numbers bare."""
    neutralise_frame(frame).to_csv(path, index=False, quoting=csv.QUOTE_NONNUMERIC)
    return path
