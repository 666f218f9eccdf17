"""The call list file the sales team opens: formulas from the source arrive as text, never live."""

import csv
import io

import pandas as pd

from leadscore_assets.lib.scoring.call_list import call_list, write_call_list
from leadscore_assets.lib.scoring.explain import REASON_COLUMNS
from leadscore_assets.lib.scoring.spreadsheet import FORMULA_TRIGGERS

HOSTILE = ['=HYPERLINK("http://evil.example","Click")', "+cmd|' /C calc'!A0", "@SUM(1+1)", "-2+3",
           "\t=2+2", "\r=1+1", " =1+1", "-5"]


def _written(calls: pd.DataFrame) -> tuple[str, bytes]:
    """The list's CSV text and Parquet bytes, as `write_call_list` writes them into streams."""
    csv_out, parquet_out = io.StringIO(newline=""), io.BytesIO()
    write_call_list(calls, csv_out, parquet_out)
    return csv_out.getvalue(), parquet_out.getvalue()


def _scores_and_rows(n: int):
    ids = [f"L{i}" for i in range(n)]
    scores = pd.DataFrame({"lead_id": ids, "probability": [1 - i / (n + 1) for i in range(n)],
                           "decile": [1 + i % 10 for i in range(n)], "grade": ["A"] * n, "contact": [True] * n,
                           **{c: ["job_title = ceo raises the score"] * n for c in REASON_COLUMNS}})
    rows = pd.DataFrame({"lead_id": ids, "company_name": HOSTILE[:n], "job_title": HOSTILE[::-1][:n],
                         "location": ["Paris"] * (n - 1) + ["-2+3"], "company_size": [-1] * n})
    return scores, rows


def test_every_cell_starting_with_a_trigger_is_written_with_a_leading_quote(linkedin_config):
    scores, rows = _scores_and_rows(len(HOSTILE))
    calls = call_list(scores, rows, linkedin_config)
    csv_text, parquet = _written(calls)
    written = list(csv.reader(io.StringIO(csv_text, newline="")))
    header, body = written[0], written[1:]
    text = {"lead_id", "company_name", "job_title", "location", "grade", *REASON_COLUMNS}
    for row in body:
        for column, cell in zip(header, row):
            if column in text:  # no text cell a spreadsheet would run: each begins with the quote
                assert not cell.lstrip(" \t\r\n").startswith(FORMULA_TRIGGERS), (column, cell)
            elif cell.startswith("-"):  # a negative number in a numeric column stays a number
                float(cell)
    by_column = dict(zip(header, zip(*body)))
    assert sorted(by_column["company_name"]) == sorted("'" + v for v in HOSTILE)
    assert "'\t=2+2" in by_column["company_name"]  # the tab is kept behind the quote, not trimmed into a live =2+2
    assert set(by_column["company_size"]) == {"-1"} and all(float(p) > 0 for p in by_column["probability"])
    # read back as a person's tools would: numbers are numbers, text is the neutralised text
    back = pd.read_csv(io.StringIO(csv_text))
    assert back.company_size.tolist() == [-1] * len(HOSTILE) and back.probability.dtype == float
    # the Parquet copy is for machines: raw values
    assert pd.read_parquet(io.BytesIO(parquet)).company_name.tolist() == calls.company_name.tolist()
    assert set(calls.company_name) == set(HOSTILE)


def test_text_fields_are_quoted_and_numbers_are_not(linkedin_config):
    scores, rows = _scores_and_rows(2)
    first = _written(call_list(scores, rows, linkedin_config))[0].splitlines()[1]
    assert first.startswith('1,"L0",') and ',"\'=HYPERLINK(' in first
