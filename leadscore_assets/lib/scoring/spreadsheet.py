"""CSV files a person opens in a spreadsheet: no cell is ever read as a formula.

A company name, job title or location comes from whoever filled in a form or an export; a value
like `=HYPERLINK(...)`, `+cmd|' /C calc'!A0` or `@SUM(...)` would run when the sales team opens
the call list in Excel, LibreOffice or Google Sheets. Following OWASP's CSV-injection guidance, a
text cell that begins with `=`, `+`, `-`, `@`, a tab or a carriage return (also after leading
whitespace, which some spreadsheet imports trim) gets a leading single quote, and every text field
is written quoted. Only text is touched: numbers (a negative probability difference, a count)
stay numbers. Neutralise last, right before writing: nothing after it may trim the value.

No file is opened here: the CSV is returned as text or written into a stream the caller opened
(resources/storage.py's `write_spreadsheet_csv` writes one to a path).
"""

from __future__ import annotations

import csv
from typing import Iterable, TextIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from leadscore_assets.lib.validation.rules import stripped_characters

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
            out[column] = neutralise_column(out[column])
    return out


def neutralise_column(column: pd.Series) -> pd.Series:
    """`column.map(neutralise_cell)`, found in Arrow: a column of text (or missing values) is searched
    for triggers at once and only the cells that need a quote are touched (a call list has millions of
    cells; one Python call each took 7 s of 472,871 leads). Any other column goes cell by cell."""
    values = column.to_numpy(dtype=object)
    try:
        text = pa.array(values, type=pa.string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeError):  # a number, bytes or date among the text
        return column.map(neutralise_cell, na_action="ignore")
    first = pc.utf8_slice_codeunits(text, 0, 1)
    stripped_first = pc.utf8_slice_codeunits(pc.utf8_ltrim(text, characters=stripped_characters()), 0, 1)
    triggers = pa.array(FORMULA_TRIGGERS)
    hit = pc.or_(pc.is_in(first, value_set=triggers), pc.is_in(stripped_first, value_set=triggers))
    rows = np.flatnonzero(pc.fill_null(hit, False).to_numpy(zero_copy_only=False))
    values = values.copy()  # object, as `map` gives it
    values[rows] = ["'" + v for v in values[rows]]
    return pd.Series(values, index=column.index, name=column.name, dtype=object)


def spreadsheet_csv(frame: pd.DataFrame) -> str:
    """`frame` as the text of a CSV a person can open safely: text neutralised and quoted, numbers bare."""
    return neutralise_frame(frame).to_csv(index=False, quoting=csv.QUOTE_NONNUMERIC)


def write_spreadsheet_csv(frame: pd.DataFrame, out: TextIO) -> None:
    """`spreadsheet_csv(frame)` written into `out`, a text stream the caller opened (a file opened
    with `newline=""`, encoding UTF-8, gives the bytes a spreadsheet reads)."""
    neutralise_frame(frame).to_csv(out, index=False, quoting=csv.QUOTE_NONNUMERIC)


def write_spreadsheet_csv_batches(frames: Iterable[pd.DataFrame], out: TextIO,
                                  timestamps: pd.DataFrame | None = None) -> None:
    """`frames` (same columns and dtypes, at least one) as one CSV written into the text stream `out`
    one frame at a time: the text `write_spreadsheet_csv` gives their concatenation, holding one
    frame in memory.

    pandas writes a datetime column in the finest precision any of its values needs (dates only when
    every value is midnight), a choice over the whole column: `timestamps` holds, for each datetime
    column, a value of the whole needing the finest one, so every frame's cells are written as the
    whole frame's would be."""
    header = True
    for frame in frames:
        out_frame = neutralise_frame(frame)
        for column in out_frame.columns:
            if timestamps is not None and column in timestamps and out_frame[column].dtype.kind == "M":
                witnessed = pd.concat([timestamps[column].astype(out_frame[column].dtype), out_frame[column]],
                                      ignore_index=True)
                text = witnessed.astype(str).iloc[len(timestamps):].to_numpy(dtype=object)
                out_frame[column] = pd.Series(text, index=out_frame.index, dtype=object).where(
                    out_frame[column].notna(), None)
        out_frame.to_csv(out, header=header, index=False, quoting=csv.QUOTE_NONNUMERIC)
        header = False
    if header:
        raise ValueError("no frame given: not even an empty one for the header")
