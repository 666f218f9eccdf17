"""A CSV read as text: its notes and reasons name rows and columns, never a value."""

from pathlib import Path

from leadscore_assets.lib.sources.csv_text import csv_as_text

EMAIL, PHONE = "jane.doe@example.com", "+33 6 12 34 56 78"


def test_a_non_utf8_byte_is_located_by_row_and_header_name():
    text = csv_as_text(Path("export.csv"), "id,city\nL1,Paris\nL2,Orl\xe9ans\n".encode("cp1252"))
    assert text.notes == ["export.csv: not valid UTF-8 (first bad byte 0xE9 at row 2, column 'city'); "
                          "read as Windows-1252 (cp1252)"]


def test_a_headerless_file_does_not_quote_its_first_record_as_a_column_name():
    data = f"L1,{EMAIL},{PHONE}\nL2,Orl\xe9ans,x\n".encode("cp1252")  # no header row: row 1 is read as one
    notes = " ".join(csv_as_text(Path("export.csv"), data).notes)
    assert "row 1, column 2" in notes
    assert "jane" not in notes and "+33" not in notes and "Orl" not in notes


def test_a_record_cut_short_is_named_by_row_without_its_values():
    data = f'id,note,phone\nL1,ok,1\nL2,"met at expo, {EMAIL}'.encode()
    text = csv_as_text(Path("export.csv"), data)
    assert text.cut_short == {2: "export.csv row 2: record cut short: 2 of 3 fields, no line end; "
                                 "ends inside a quoted value"}
