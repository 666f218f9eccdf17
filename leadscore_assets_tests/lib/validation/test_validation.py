import pandas as pd

from leadscore_assets.lib.project.column_names import snake_case
from leadscore_assets.lib.validation import COLLAPSED, REASON, ROW, normalise, validate
from leadscore_assets.testing.lemlist_rows import lemlist_row as _row


def _raw(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows).astype(object)
    df.insert(0, ROW, range(1, len(df) + 1))
    df["_source_file"] = "export.csv"
    return df


def test_snake_case_handles_lemlist_names():
    assert snake_case("lastStateAt") == "last_state_at"
    assert snake_case("_id") == "id"
    assert snake_case(" Company Size ") == "company_size"


def test_normalise_trims_lowercases_and_blanks_to_null(linkedin_config):
    df = normalise(_raw([_row()]), linkedin_config)
    assert df.loc[0, "job_title"] == "ceo"
    assert df.loc[0, "status"] == "done"
    assert pd.isna(df.loc[0, "last_state_at"])


def test_every_row_lands_once_with_a_reason_naming_file_row_and_column(linkedin_config):
    raw = _raw([
        _row(),
        _row(_id="a2", companySize="twelve"),
        _row(_id="a3", email="not-an-email"),
        _row(jobTitle="CTO"),  # same id as row 1, different content: a conflict
        _row(_id="a5", status="archived"),
        _row(_id="a6", createdAt=""),
    ])
    result = validate(raw, linkedin_config)
    assert list(result.valid[ROW]) == [1]
    reasons = dict(zip(result.quarantined[ROW], result.quarantined[REASON]))
    assert set(reasons) == {2, 3, 4, 5, 6}
    assert reasons[2] == "export.csv row 2 (lead 'a2') column 'company_size': is not a valid integer (not a number)"
    assert "export.csv row 3 (lead 'a3') column 'email'" in reasons[3] and "not-an-email" not in reasons[3]
    assert "export.csv row 4 (lead 'a1') column 'lead_id': duplicate id (kept first seen at row 1)" in reasons[4]
    assert reasons[5] == ("export.csv row 5 (lead 'a5') column 'status': "
                          "fails check: one of ['done', 'inprogress', 'reviewed', 'paused']")  # the allowed set: config
    assert "column 'created_at'" in reasons[6] and "required" in reasons[6]
    assert not any("twelve" in r or "archived" in r for r in reasons.values())  # no cell value in a reason


def test_all_failures_of_a_row_are_reported_at_once(linkedin_config):
    result = validate(_raw([_row(companySize="-3", status="archived", emailStatus="bogus")]), linkedin_config)
    reason = result.quarantined.loc[0, REASON]
    assert reason.count("export.csv row 1") == 3


def test_missing_column_quarantines_every_row_as_a_table_error(linkedin_config):
    raw = _raw([_row(), _row(_id="a2")]).drop(columns=["campaignName"])
    result = validate(raw, linkedin_config)
    assert result.valid.empty and len(result.quarantined) == 2
    assert result.table_errors == ["export.csv: required column 'campaign_name' is missing"]
    assert result.quarantined[REASON].str.startswith("export.csv row ").all()


def test_types_are_coerced(linkedin_config):
    v = validate(_raw([_row()]), linkedin_config).valid
    assert str(v.company_size.dtype) == "Int64" and v.company_size[0] == 12
    assert str(v.created_at.dtype).startswith("datetime64")


def test_column_order_is_enforced_when_configured(linkedin_config):
    ordered = linkedin_config.model_copy(update={"validation": linkedin_config.validation.model_copy(update={"ordered_columns": True})})
    raw = _raw([_row()])
    assert validate(raw, ordered).valid.shape[0] == 1
    swapped = raw[[ROW, "email", "_id", *[c for c in raw.columns if c not in (ROW, "email", "_id")]]]
    result = validate(swapped, ordered)
    assert result.valid.empty and "columns out of order" in result.table_errors[0]


def test_exact_duplicate_rows_collapse_into_the_first_and_are_counted(linkedin_config):
    raw = _raw([_row(), _row(_id="a2"), _row(), _row(jobTitle="CTO")])
    result = validate(raw, linkedin_config)
    assert list(result.valid[ROW]) == [1, 2]
    q = result.quarantined.set_index(ROW)
    assert "exact duplicate of row 1 (collapsed" in q.loc[3, REASON] and bool(q.loc[3, COLLAPSED])
    assert "duplicate id (kept first seen at row 1)" in q.loc[4, REASON] and not bool(q.loc[4, COLLAPSED])
    assert result.failure_counts["exact_duplicate:collapsed"] == 1


def test_written_out_nulls_are_missing_so_a_null_id_is_quarantined(linkedin_config):
    result = validate(_raw([_row(), _row(_id="NULL"), _row(_id="N/A", jobTitle="x")]), linkedin_config)
    assert list(result.valid[ROW]) == [1]
    reasons = dict(zip(result.quarantined[ROW], result.quarantined[REASON]))
    assert "column 'lead_id'" in reasons[2] and "required" in reasons[2]
    assert "column 'lead_id'" in reasons[3]


# --- dates in the future ------------------------------------------------------------------------

LOADED = pd.Timestamp("2026-06-01 12:00", tz="UTC")


def test_future_dates_are_quarantined_per_column_naming_the_load_time(linkedin_config):
    raw = _raw([
        _row(),
        _row(_id="a2", createdAt="2031-05-01T10:00:00Z"),
        _row(_id="a3", lastStateAt="2062-01-01"),
        _row(_id="a4", createdAt="2026-06-02T08:00:00Z"),  # within the 24 h tolerance (clock skew, time zones)
    ])
    result = validate(raw, linkedin_config, now=LOADED)
    assert list(result.valid[ROW]) == [1, 4]
    reasons = dict(zip(result.quarantined[ROW], result.quarantined[REASON]))
    assert reasons[2] == ("export.csv row 2 (lead 'a2') column 'created_at': is in the future: "
                          "a date more than 24 h after the load time (2026-06-01 12:00 UTC)")
    assert reasons[3].startswith("export.csv row 3 (lead 'a3') column 'last_state_at': is in the future")
    assert not any("2031" in r or "2062" in r for r in reasons.values())  # the date is a value: not shown
    assert result.failure_counts["created_at:future"] == 1 and result.failure_counts["last_state_at:future"] == 1


def test_future_tolerance_and_load_time_come_from_config_and_caller(linkedin_config):
    strict = linkedin_config.model_copy(update={
        "validation": linkedin_config.validation.model_copy(update={"future_tolerance_hours": 0})})
    raw = _raw([_row(createdAt="2026-06-01T13:00:00Z")])
    assert validate(raw, strict, now=LOADED).valid.empty
    assert len(validate(raw, linkedin_config, now=LOADED).valid) == 1
    assert len(validate(raw, strict, now=pd.Timestamp("2026-06-01 15:00")).valid) == 1  # naive: taken as UTC
    assert len(validate(raw, strict, now=pd.Timestamp("2026-06-01 16:00", tz="Europe/Paris")).valid) == 1
    assert len(validate(_raw([_row(createdAt="2020-01-01T00:00:00Z")]), strict).valid) == 1  # default: the clock
    assert validate(_raw([_row(createdAt="2999-01-01T00:00:00Z")]), strict).valid.empty


# --- the common path of clean batches (cheaper, same answers) -----------------------------------


def _reference_normalise(raw: pd.DataFrame, config) -> pd.DataFrame:
    """normalise() as pandas column operations: what the one-pass text path must reproduce."""
    from leadscore_assets.lib.validation import LINEAGE, NULL_TOKENS

    df = raw.rename(columns=config.naming.columns([c for c in raw.columns if c not in LINEAGE]))
    for col in df.columns:
        if col not in LINEAGE and df[col].dtype == object:
            s = df[col].str.strip()
            df[col] = s.mask((s == "") | s.isin(NULL_TOKENS))
    for col in config.normalise.lowercase:
        if col in df.columns:
            df[col] = df[col].str.lower()
    return df


def test_normalise_text_path_gives_what_the_column_operations_give(linkedin_config):
    import numpy as np

    values = [" CEO ", "ceo", "", "  ", "NULL", "none", "N/A", "nan", None, np.nan, pd.NA, "\tX\n", "İSTANBUL", "#N/A",
              np.str_(" Ab ")]
    rows = [_row(_id=f"a{i}", jobTitle=v, industry=values[(i + 3) % len(values)], email=values[(i + 5) % len(values)])
            for i, v in enumerate(values)]
    raw = _raw(rows)
    raw["companySize"] = [5, " 7 ", None, 2.5, True, "x", *["1"] * (len(values) - 6)]  # not all text: pandas path
    got, expected = normalise(raw, linkedin_config), _reference_normalise(raw, linkedin_config)
    pd.testing.assert_frame_equal(got, expected)
    for col in got.columns:  # None stays None, blanks become NaN: the same objects, not only equal ones
        assert [type(v) for v in got[col]] == [type(v) for v in expected[col]], col


def test_text_columns_are_typed_as_python_strings_or_none(linkedin_config):
    """pandera checks text columns as `object` columns; that they hold only `str` and None is
    `_coerce`'s doing, for text sent as text and for numbers sent for a text column alike."""
    raw = _raw([_row(), _row(_id="a2", location=" "), _row(_id="a3")])
    raw["companyName"] = pd.array([12, None, 7], dtype="Int64")  # a typed source's numbers
    valid = validate(raw, linkedin_config).valid
    assert len(valid) == 3
    for col, spec in linkedin_config.columns.items():
        if spec.type == "string":
            assert all(v is None or type(v) is str for v in valid[col]), col
    assert valid.company_name.tolist() == ["12", None, "7"] and valid.location[1] is None


def test_quarantine_shortcuts_still_catch_repeats(linkedin_config):
    """Unique ids skip the exact-duplicate hashing and the repeated-id ordering; repeats do not."""
    unique = validate(_raw([_row(), _row(_id="a2"), _row(_id="a3")]), linkedin_config)
    assert len(unique.valid) == 3 and unique.quarantined.empty and not unique.failure_counts
    result = validate(_raw([_row(), _row(_id=" a1 ")]), linkedin_config)  # the same id once trimmed: a copy
    assert list(result.valid[ROW]) == [1] and "exact duplicate of row 1" in result.quarantined[REASON][0]


def test_pandera_schema_is_built_once_per_column_rules(linkedin_config):
    from leadscore_assets.lib.validation.rules import pandera_schema

    assert pandera_schema(linkedin_config) is pandera_schema(linkedin_config.model_copy())
    stricter = linkedin_config.model_copy(update={"columns": {
        **linkedin_config.columns, "company_size": linkedin_config.columns["company_size"].model_copy(update={"min": 5})}})
    assert pandera_schema(stricter) is not pandera_schema(linkedin_config)
    assert validate(_raw([_row(companySize="3")]), stricter).valid.empty
    assert len(validate(_raw([_row(companySize="3")]), linkedin_config).valid) == 1


def test_schema_shortcut_never_passes_what_pandera_refuses(linkedin_config):
    """`passes_schema` lets `validate` skip pandera on a clean table; on every kind of failure
    pandera reports it must say no, so pandera runs and names it."""
    import pandera.pandas as pa

    from leadscore_assets.lib.validation.rules import LINEAGE, pandera_schema, passes_schema

    clean = validate(_raw([_row(), _row(_id="a2", lastStateAt="2026-01-06T08:00:00Z"), _row(_id="a3")]),
                     linkedin_config).valid.drop(columns=LINEAGE)
    assert passes_schema(clean, linkedin_config)
    broken = {
        "null where required": ("campaign_name", [None, "q1", "q1"]),
        "repeated unique": ("lead_id", ["a1", "a1", "a3"]),
        "pattern": ("email", ["x@y.com", "not an email", "x@y.com"]),
        "allowed": ("email_status", ["deliverable", "bouncy", "risky"]),
        "min": ("company_size", pd.array([12, 0, 3], dtype="Int64")),
        "dtype": ("company_size", [12.0, 1.0, 3.0]),
        "text not typed": ("job_title", [1, 2, 3]),
    }
    for case, (col, values) in broken.items():
        table = clean.assign(**{col: values})
        assert not passes_schema(table, linkedin_config), case
        try:
            pandera_schema(linkedin_config).validate(table, lazy=True)
        except pa.errors.SchemaErrors:
            continue
        raise AssertionError(f"{case}: pandera passes it, the case tests nothing")


# --- no cell value in a reason ------------------------------------------------------------------

EMAIL, PHONE = "jane.doe@example.com", "+33 6 12 34 56 78"


def test_reasons_name_row_lead_column_and_rule_but_never_a_value(linkedin_config):
    """Free text in the wrong column (a note with an email and a phone) is quarantined with a
    reason naming file, row, lead, column and rule; no bad value, nor any part of it, is quoted."""
    long_note = f"met at expo, reach me at {EMAIL} {PHONE} " * 8  # overlong, in a categorical column
    bad = {
        2: {"companySize": f"call me {PHONE}"},  # text in an integer column
        3: {"createdAt": EMAIL},  # an email in a date column
        4: {"status": long_note},  # overlong value breaking a categorical domain
        5: {"emailStatus": f"ring {PHONE}"},  # bad categorical
        6: {"stepsCompleted": "-7"},  # below the minimum
        7: {"companySize": "2.5"},  # not a whole number
        8: {"lastStateAt": "2031-05-01T10:00:00Z"},  # in the future
        9: {"email": f"{EMAIL} {PHONE}"},  # a personal-data column failing its pattern
        10: {"_id": f"{EMAIL} {PHONE}", "companySize": "lots"},  # an id that is free text: not quoted
    }
    rows = [_row()] + [_row(**{"_id": f"a{n}"} | over) for n, over in sorted(bad.items())]
    result = validate(_raw(rows), linkedin_config, now=LOADED)
    assert list(result.valid[ROW]) == [1]
    reasons = dict(zip(result.quarantined[ROW], result.quarantined[REASON]))
    assert set(reasons) == set(bad)
    expected = {
        2: "export.csv row 2 (lead 'a2') column 'company_size': is not a valid integer (not a number)",
        3: "export.csv row 3 (lead 'a3') column 'created_at': is not a valid datetime (not a date)",
        4: ("export.csv row 4 (lead 'a4') column 'status': "
            "fails check: one of ['done', 'inprogress', 'reviewed', 'paused']"),
        5: ("export.csv row 5 (lead 'a5') column 'email_status': "
            "fails check: one of ['deliverable', 'risky', 'unknown', 'undeliverable']"),
        6: "export.csv row 6 (lead 'a6') column 'steps_completed': fails check: >= 0",
        7: "export.csv row 7 (lead 'a7') column 'company_size': is not a valid integer (not a whole number)",
        8: ("export.csv row 8 (lead 'a8') column 'last_state_at': is in the future: "
            "a date more than 24 h after the load time (2026-06-01 12:00 UTC)"),
        9: "export.csv row 9 (lead 'a9') column 'email': fails check: does not match the expected format",
    }
    for row, reason in expected.items():
        assert reasons[row] == reason
    assert reasons[10].startswith("export.csv row 10 column ") and "(lead" not in reasons[10]
    assert "column 'company_size': is not a valid integer (not a number)" in reasons[10]
    values = [v for over in bad.values() for v in over.values()]
    for reason in reasons.values():
        for secret in [EMAIL, PHONE, "jane", "example.com", "+33", "12 34", "call me", "ring +", "met at", *values]:
            assert secret.lower() not in reason.lower(), (secret, reason)
        assert "value" not in reason
    assert all(len(r) < 200 for r in reasons.values())  # the overlong value did not travel either


def test_a_rule_that_fails_on_a_value_does_not_quote_it(linkedin_config):
    """DuckDB's conversion errors quote the value they could not convert: the error does not."""
    from leadscore_assets.lib.project.config import RowRule

    rule = RowRule(name="numeric_company", expression="CAST(company_name AS INTEGER) > 0")
    config = linkedin_config.model_copy(update={
        "validation": linkedin_config.validation.model_copy(update={"row_rules": [rule]})})
    try:
        validate(_raw([_row(companyName=f"{EMAIL} {PHONE}")]), config)
    except ValueError as err:
        message = str(err)
        assert "numeric_company" in message or "CAST(company_name AS INTEGER)" in message
        assert "jane" not in message and "+33" not in message and err.__cause__ is None
    else:
        raise AssertionError("a rule that cannot be evaluated must be refused")


def test_each_missing_column_is_its_own_table_error(linkedin_config):
    result = validate(_raw([_row()]).drop(columns=["jobTitle", "emailStatus"]), linkedin_config)
    assert result.table_errors == ["export.csv: required column 'email_status' is missing",
                                   "export.csv: required column 'job_title' is missing"]


def test_a_column_of_nulls_only_validates_as_blank_values(linkedin_config):
    """What the served model sends validate for a personal column a request leaves out."""
    personal = ["email", "firstName", "lastName", "phone", "picture", "linkedinUrl"]
    blank = validate(_raw([_row(**{c: "" for c in personal})]), linkedin_config).valid
    nulls = validate(_raw([_row(**{c: None for c in personal})]), linkedin_config).valid
    pd.testing.assert_frame_equal(nulls, blank)
