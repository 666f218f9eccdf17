"""validate_table: a raw table larger than BATCH_ROWS is validated in partitions by id, and the
tables and totals it writes are the single pass's, row for row."""

import duckdb
import pandas as pd
import pytest

from leadscore_assets.assets import validated_tables
from leadscore_assets.assets.tables import QUARANTINED_CONTACTS, RAW_CONTACTS, VALIDATED_CONTACTS
from leadscore_assets.lib.project.config import RowRule
from leadscore_assets.lib.validation import COLLAPSED, REASON, ROW, validate
from leadscore_assets.testing.lemlist_rows import lemlist_row as _row

LOADED = pd.Timestamp("2026-06-01 12:00", tz="UTC")


def _rows() -> list[dict]:
    """Repeated ids (written alike once trimmed, some less complete), exact copies, rows breaking
    a type, a check, a row rule or a future date, null and written-out null ids."""
    rows = []
    for i in range(30):
        rows.append(_row(_id=f"b{i}", companyName=f"c{i}", stepsCompleted=str(i % 5)))
    rows += [
        _row(), _row(),  # an exact copy
        _row(jobTitle="CTO", picture=""),  # a1 again, less complete
        _row(_id=" a1\t", jobTitle="CFO"),  # a1 again once trimmed (a tab)
        _row(_id="\u00a0a1", phone="2"),  # a1 again (str.strip takes the no-break space too)
        _row(_id="b3", phone="", picture="", linkedinUrl=""),  # b3 again, less complete
        _row(_id="b4", lastStateAt="2026-01-06T08:00:00Z"),  # b4 again, more complete
        _row(_id="a7", companySize="twelve"), _row(_id="a7", companySize="twelve"),  # bad, and copied
        _row(_id="a8", status="archived"),
        _row(_id="a9", stepsCompleted="9"),  # breaks the row rule
        _row(_id="a10", createdAt="2027-01-01T00:00:00Z"),  # in the future
        _row(_id=""), _row(_id="NULL"), _row(_id=" n/a ", jobTitle="x"), _row(_id=None),  # no id
        _row(_id="NULL", jobTitle="y"), _row(_id="", jobTitle="y"),  # no id, exact copies once normalised
        _row(_id="B5"), _row(_id="b30"),
    ]
    return rows


def _config(config, deduplicate: str, declared: bool):
    update = {
        "normalise": config.normalise.model_copy(update={"deduplicate": deduplicate}),
        "validation": config.validation.model_copy(update={"row_rules": [
            RowRule(name="few_steps", expression="steps_completed IS NULL OR steps_completed < 8")]}),
    }
    if not declared:
        update["columns"] = {}
    return config.model_copy(update=update)


def _warehouse(config, rows: list[dict], types: dict | None = None) -> duckdb.DuckDBPyConnection:
    raw = pd.DataFrame(rows).astype(object).astype(types or {})
    raw.insert(0, ROW, range(1, len(raw) + 1))
    raw["_source_file"] = "export.csv"
    conn = duckdb.connect()
    conn.execute(f"CREATE SCHEMA {config.name}")
    conn.register("_raw", raw)
    conn.execute(f"CREATE TABLE {RAW_CONTACTS.of(config)} AS SELECT * FROM _raw")
    conn.unregister("_raw")
    return conn


def _validated(config, rows, batch_rows, monkeypatch, types=None):
    monkeypatch.setattr(validated_tables, "BATCH_ROWS", batch_rows)
    conn = _warehouse(config, rows, types)
    outcome = validated_tables.validate_table(conn, config, RAW_CONTACTS.of(config), LOADED)
    tables = [conn.execute(f"SELECT * FROM {t.of(config)}").df() for t in (VALIDATED_CONTACTS, QUARANTINED_CONTACTS)]
    types = [conn.execute(f"DESCRIBE {t.of(config)}").df() for t in (VALIDATED_CONTACTS, QUARANTINED_CONTACTS)]
    conn.close()
    return outcome, tables, types


@pytest.mark.parametrize("batch_rows", [7, 4, 3])  # other partitions: ids written alike must meet in each
@pytest.mark.parametrize("deduplicate,declared", [("first", True), ("most_complete", True), ("first", False)])
def test_partitions_by_id_write_what_the_single_pass_writes(linkedin_config, monkeypatch, deduplicate, declared,
                                                            batch_rows):
    config, rows = _config(linkedin_config, deduplicate, declared), _rows()
    once, once_tables, once_types = _validated(config, rows, 10_000, monkeypatch)
    parts, part_tables, part_types = _validated(config, rows, batch_rows, monkeypatch)

    assert once.partitions == 1 and parts.partitions == -(-len(rows) // batch_rows)
    for single, partitioned in zip(once_tables, part_tables):  # same rows, same order, same values
        pd.testing.assert_frame_equal(partitioned, single)
    for single, partitioned in zip(once_types, part_types):
        pd.testing.assert_frame_equal(partitioned, single)
    assert list(parts.failure_counts.items()) == list(once.failure_counts.items())
    for field in ("raw_rows", "valid_rows", "quarantined_rows", "collapsed", "table_errors"):
        assert getattr(parts, field) == getattr(once, field), field
    pd.testing.assert_frame_equal(parts.valid_head, once.valid_head)
    pd.testing.assert_frame_equal(parts.reasons_head, once.reasons_head)
    assert parts.resolved.columns == once.resolved.columns

    # the single pass is `validate` on the whole table, as the asset always ran it
    raw = pd.DataFrame(rows).astype(object)
    raw.insert(0, ROW, range(1, len(raw) + 1))
    raw["_source_file"] = "export.csv"
    result = validate(raw, once.resolved, LOADED)
    assert once.failure_counts == result.failure_counts and once.valid_rows == len(result.valid)
    quarantined = part_tables[1].set_index(ROW)
    assert dict(quarantined[REASON]) == dict(zip(result.quarantined[ROW], result.quarantined[REASON]))
    # what the rows exercise is there: repeats across partitions' worth of rows, copies, nulls
    assert result.failure_counts["lead_id:duplicate"] >= 4 and result.failure_counts["exact_duplicate:collapsed"] >= 3
    assert quarantined[COLLAPSED].sum() == once.collapsed >= 3
    assert "rule:few_steps" in result.failure_counts


def test_a_missing_column_is_one_table_error_in_partitions(linkedin_config, monkeypatch):
    config = _config(linkedin_config, "first", True)
    rows = [{k: v for k, v in r.items() if k != "campaignName"} for r in _rows()]
    once, once_tables, _ = _validated(config, rows, 10_000, monkeypatch)
    parts, part_tables, _ = _validated(config, rows, 7, monkeypatch)
    assert parts.partitions > 1 and parts.valid_rows == 0 and parts.quarantined_rows == len(rows)
    assert parts.table_errors == once.table_errors == ["export.csv: required column 'campaign_name' is missing"]
    for single, partitioned in zip(once_tables, part_tables):
        pd.testing.assert_frame_equal(partitioned, single)


def test_a_table_not_in_row_order_is_validated_at_once(linkedin_config, monkeypatch):
    config = _config(linkedin_config, "first", True)
    monkeypatch.setattr(validated_tables, "BATCH_ROWS", 7)
    conn = _warehouse(config, _rows())
    conn.execute(f"CREATE OR REPLACE TABLE {RAW_CONTACTS.of(config)} AS "
                 f"SELECT * FROM {RAW_CONTACTS.of(config)} ORDER BY {ROW} DESC")
    assert validated_tables.validate_table(conn, config, RAW_CONTACTS.of(config), LOADED).partitions == 1


@pytest.mark.parametrize("batch_rows", [7, 3])
def test_partitions_of_a_typed_table_read_columns_as_the_whole_table(linkedin_config, monkeypatch, batch_rows):
    """A Parquet source keeps its types: integer ids, and columns with a null in some partitions
    only (DuckDB reads those nullable there, plain elsewhere) validate and quarantine alike."""
    config = _config(linkedin_config, "most_complete", True)
    ids, rows = {}, []
    for i, r in enumerate(_rows()):
        text = (r["_id"] or "").strip().lower()
        ident = None if text in ("", "null", "n/a") else ids.setdefault(text, len(ids) + 1)
        rows.append(r | {"_id": ident, "companySize": None if i == 40 else (i if i % 9 else -i),
                         "phone": None if i == 41 else i % 4, "stepsCompleted": i % 10})
    rows += [rows[-1], rows[-1]]  # exact copies
    types = {"_id": "Int64", "companySize": "Int64", "phone": "Int64", "stepsCompleted": "int64"}

    once, once_tables, once_types = _validated(config, rows, 10_000, monkeypatch, types)
    parts, part_tables, part_types = _validated(config, rows, batch_rows, monkeypatch, types)
    assert parts.partitions > 1
    for single, partitioned in [*zip(once_tables, part_tables), *zip(once_types, part_types)]:
        pd.testing.assert_frame_equal(partitioned, single)
    assert list(parts.failure_counts.items()) == list(once.failure_counts.items())
    assert once.failure_counts["lead_id:duplicate"] >= 4 and once.quarantined_rows > once.collapsed >= 2
