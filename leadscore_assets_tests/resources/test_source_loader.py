"""Source CSVs as they arrive: cut short, delimited with something else, not UTF-8."""

import json
from pathlib import Path

import duckdb
import pytest

from leadscore_assets.lib.project.config import ProjectConfig
from leadscore_assets.lib.sources.csv_text import SourceFileError
from leadscore_assets.resources.source_loader import SourceTargets, load_source, read_csv_as_text
from leadscore_assets.lib.validation import FILE, ROW

HEADER = "id,name,status,created_at,source\n"


def _config(**source) -> ProjectConfig:
    return ProjectConfig.model_validate({
        "name": "t",
        "source": source or {"path": "contacts.csv"},
        "id_column": "id",
        "label": {"positive": "status = 'won'", "negative": "status = 'lost'"},
    })


def _write(tmp_path: Path, content: str | bytes, name: str = "contacts.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def _load(tmp_path: Path, config: ProjectConfig | None = None):
    """load_source into an in-memory warehouse: (counts, raw rows, source quarantine, notes logged)."""
    conn = duckdb.connect()
    notes: list[str] = []
    config = config or _config()
    counts = load_source(conn, config, tmp_path, SourceTargets.scratch(config.name), log=notes.append)
    raw = conn.execute(f"SELECT * FROM t.raw_contacts ORDER BY {ROW}").df()
    quarantine = conn.execute(f"SELECT * FROM t.quarantined_source_rows ORDER BY {ROW}").df()
    return counts, raw, quarantine, notes


# --- a record cut short -------------------------------------------------------------------------


def test_last_record_cut_short_is_quarantined_with_its_row_and_never_validated(tmp_path):
    _write(tmp_path, HEADER + "1,a,won,2026-01-28T10:00,web\n2,b,lost,2026-01-28T11:00,ads\n3,c,won,2026-01-29T18")
    counts, raw, quarantine, _ = _load(tmp_path)
    assert list(raw[ROW]) == [1, 2]
    assert quarantine[["source_table", ROW, FILE, "reason"]].to_dict("records") == [{
        "source_table": "contacts", ROW: 3, FILE: "contacts.csv",
        "reason": "contacts.csv row 3: record cut short: 4 of 5 fields, no line end",
    }]
    values = json.loads(quarantine.raw_values.item())
    assert values["id"] == "3" and values["created_at"] == "2026-01-29T18" and values["source"] is None
    assert counts["contacts"] == 3 and counts["contacts_cut_short"] == 1  # every input row in one place


def test_record_cut_short_inside_a_quoted_value(tmp_path):
    # a quoted line break earlier in the file does not confuse where the last record starts
    _write(tmp_path, HEADER + '1,"Jane\nDoe",won,2026-01-28,web\n2,"Acme, In')
    _, raw, quarantine, _ = _load(tmp_path)
    assert list(raw[ROW]) == [1] and raw.name.item() == "Jane\nDoe"
    assert quarantine.reason.item() == (
        "contacts.csv row 2: record cut short: 2 of 5 fields, no line end; ends inside a quoted value")


def test_last_line_without_line_end_but_all_fields_is_a_row(tmp_path):
    _write(tmp_path, HEADER + "1,a,won,2026-01-28T10:00,web\n2,b,lost,2026-01-29T18:00,ads")
    counts, raw, quarantine, _ = _load(tmp_path)
    assert list(raw[ROW]) == [1, 2] and raw.source.tolist() == ["web", "ads"]
    assert quarantine.empty and "contacts_cut_short" not in counts


def test_header_alone_without_line_end_has_no_rows_to_cut(tmp_path):
    result = read_csv_as_text(_write(tmp_path, "id,name,status"))
    assert result.frame.empty and result.cut_short == {}


def test_a_cut_short_crlf_file(tmp_path):
    result = read_csv_as_text(_write(tmp_path, HEADER.replace("\n", "\r\n") + "1,a,won,2026-01-28,web\r\n2,b"))
    assert result.cut_short == {2: "contacts.csv row 2: record cut short: 2 of 5 fields, no line end"}
    assert list(result.frame[ROW]) == [1, 2] and result.frame.loc[1, "status"] is None  # missing, not blank


# --- delimiter ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("delimiter", "shown"), [(";", "';'"), ("\t", "tab"), ("|", "'|'")])
def test_other_delimiter_is_sniffed_read_and_reported(tmp_path, delimiter, shown):
    rows = ["id,name,city".replace(",", delimiter), "1,Ann,Paris, France".replace(",", delimiter, 2),
            "2,Bob,Lyon".replace(",", delimiter)]
    _write(tmp_path, "\n".join(rows) + "\n")
    counts, raw, _, notes = _load(tmp_path)
    assert [c for c in raw.columns if c not in (ROW, FILE)] == ["id", "name", "city"]
    assert raw.city.tolist() == ["Paris, France", "Lyon"] and counts["contacts"] == 2
    assert notes == [f"contacts.csv: delimiter {shown} found (3 columns), not the configured ',': read with {shown}"]


def test_ambiguous_delimiter_fails_naming_the_file_and_what_was_found(tmp_path):
    _write(tmp_path, "id;name|city\n1;Ann|Paris\n2;Bob|Lyon\n")
    with pytest.raises(SourceFileError, match=r"contacts\.csv: the configured delimiter ',' finds a single column.*"
                                              r"';' \(2 columns\), '\|' \(2 columns\).*ambiguous"):
        _load(tmp_path)


def test_a_real_single_column_file_is_left_alone(tmp_path):
    result = read_csv_as_text(_write(tmp_path, "id\n1\n2\n"))
    assert list(result.frame["id"]) == ["1", "2"] and result.notes == []


def test_configured_delimiter_that_splits_the_header_is_kept(tmp_path):
    result = read_csv_as_text(_write(tmp_path, "id;name\n1;a,b\n"), delimiter=";")
    assert result.frame["name"].tolist() == ["a,b"] and result.notes == []


def test_csv_table_read_by_duckdb_has_its_delimiter_sniffed_too(tmp_path):
    _write(tmp_path, "id;status\n1;won\n2;lost\n", "companies.csv")
    config = _config(tables={"companies": {"kind": "csv", "path": "companies.csv"}},
                     query="SELECT _row_number, _source_file, id, status FROM companies")
    counts, raw, _, notes = _load(tmp_path, config)
    assert counts["raw_contacts"] == 2 and raw.status.tolist() == ["won", "lost"]
    assert notes == ["companies.csv: delimiter ';' found (2 columns), not the configured ',': read with ';'"]


# --- encoding -----------------------------------------------------------------------------------


def test_windows_1252_file_is_read_as_such_and_reported_with_row_and_column(tmp_path):
    _write(tmp_path, "id,name,city\n1,Ann,Paris\n2,Bob,Montr\xe9al\n3,Zo\xeb,Caf\u20ac\n".encode("cp1252"))
    _, raw, _, notes = _load(tmp_path)
    assert raw.city.tolist() == ["Paris", "Montréal", "Caf€"] and raw.name.tolist() == ["Ann", "Bob", "Zoë"]
    assert notes == ["contacts.csv: not valid UTF-8 (first bad byte 0xE9 at row 2, column 'city'); "
                     "read as Windows-1252 (cp1252)"]


def test_undecodable_file_fails_naming_file_row_and_column(tmp_path):
    _write(tmp_path, b"id,name,city\n1,Ann,Paris\n2,Bo\x81b,Lyon\n")
    with pytest.raises(SourceFileError, match=r"contacts\.csv: not valid UTF-8 \(first bad byte 0x81 at row 2, "
                                              r"column 'name'\) and not Windows-1252 either"):
        read_csv_as_text(tmp_path / "contacts.csv")


def test_bad_byte_in_a_header_is_located_in_the_header(tmp_path):
    result = read_csv_as_text(_write(tmp_path, b"id,caf\xe9\n1,x\n"))
    assert list(result.frame.columns) == [ROW, "id", "café", FILE]
    assert "first bad byte 0xE9 at the header, column 2" in result.notes[0]


def test_utf8_with_byte_order_mark_and_crlf_reads_cleanly(tmp_path):
    result = read_csv_as_text(_write(tmp_path, "\ufeffid,city\r\n1,Montréal\r\n".encode()))
    assert list(result.frame.columns) == [ROW, "id", "city", FILE]
    assert result.frame.city.tolist() == ["Montréal"] and result.notes == [] and result.cut_short == {}


def test_binary_file_is_refused(tmp_path):
    with pytest.raises(SourceFileError, match=r"contacts\.csv: file is binary"):
        read_csv_as_text(_write(tmp_path, b"PK\x03\x04\x00\x00binary"))


# --- only files inside the data folder are read -------------------------------------------------


def test_a_symlink_to_a_file_outside_the_data_folder_is_refused(tmp_path):
    data_dir, outside = tmp_path / "data", tmp_path / "elsewhere"
    data_dir.mkdir(), outside.mkdir()
    secret = _write(outside, HEADER + "1,a,won,2026-01-28T10:00,web\n", "secret.csv")
    (data_dir / "contacts.csv").symlink_to(secret)
    with pytest.raises(SourceFileError) as err:
        _load(data_dir)
    message = str(err.value)
    assert "source.path 'contacts.csv'" in message and str(secret) in message
    assert f"outside the data folder {data_dir.resolve()}" in message


def test_a_symlinked_table_of_a_query_source_is_refused_naming_its_key(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    _write(data_dir, "id,status\n1,won\n", "companies.csv")
    _write(tmp_path, "id,status\n9,won\n", "other.csv")
    (data_dir / "events.csv").symlink_to(tmp_path / "other.csv")
    config = _config(tables={"companies": {"path": "companies.csv"}, "events": {"path": "events.csv"}},
                     query="SELECT _row_number, _source_file, id, status FROM companies")
    with pytest.raises(SourceFileError, match=r"source.tables.events.path 'events.csv' resolves to .*other.csv, "
                                              r"outside the data folder"):
        _load(data_dir, config)


def test_a_symlink_inside_the_data_folder_is_read(tmp_path):
    _write(tmp_path, HEADER + "1,a,won,2026-01-28T10:00,web\n", "export_v2.csv")
    (tmp_path / "contacts.csv").symlink_to(tmp_path / "export_v2.csv")
    counts, raw, _, _ = _load(tmp_path)
    assert counts["contacts"] == 1 and raw.name.tolist() == ["a"]


def test_a_query_reading_a_file_is_refused_even_when_the_config_was_built_in_code(tmp_path):
    _write(tmp_path, "id,status\n1,won\n", "companies.csv")
    config = _config(tables={"companies": {"path": "companies.csv"}},
                     query="SELECT _row_number, _source_file, id, status FROM companies")
    sneaky = config.source.model_copy(update={"query": "SELECT * FROM read_csv('/etc/passwd')"})
    with pytest.raises(SourceFileError, match=r"source.query reads read_csv\('/etc/passwd'\); a query may read "
                                              r"only the declared tables: companies"):
        _load(tmp_path, config.model_copy(update={"source": sneaky}))


def test_a_row_rule_that_cannot_convert_a_value_fails_without_quoting_it(tmp_path):
    """DuckDB's conversion error quotes the value ("Could not convert string 'jane@x.com'"): redacted."""
    _write(tmp_path, HEADER + "1,jane@x.com,won,2026-01-02,web\n")
    config = _config(path="contacts.csv", row_rules=[{"name": "numeric_name", "expression": "CAST(name AS INTEGER) > 0"}])
    with pytest.raises(SourceFileError, match="a row rule of source table 'contacts' is invalid") as failed:
        _load(tmp_path, config)
    assert "jane" not in str(failed.value) and failed.value.__cause__ is None and failed.value.__suppress_context__
