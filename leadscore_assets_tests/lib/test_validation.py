import pandas as pd

from leadscore_assets.lib.validation import REASON, ROW, normalise, snake_case, validate


def _raw(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows).astype(object)
    df.insert(0, ROW, range(1, len(df) + 1))
    df["_source_file"] = "export.csv"
    return df


def _row(**over):
    base = {
        "_id": "a1", "email": "x@y.com", "emailStatus": "deliverable", "firstName": "A", "lastName": "B",
        "phone": "1", "picture": "p", "linkedinUrl": "u", "companyName": "c", "jobTitle": " CEO ",
        "industry": "retail", "companySize": "12", "location": "paris, france", "campaignName": "q1",
        "createdAt": "2026-01-05T08:00:00.000Z", "status": "Done", "lastState": "linkedinReplied",
        "lastStateAt": "", "stepsCompleted": "2",
    }
    return base | over


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
        _row(),  # duplicate id of row 1
        _row(_id="a5", status="archived"),
        _row(_id="a6", createdAt=""),
    ])
    result = validate(raw, linkedin_config)
    assert list(result.valid[ROW]) == [1]
    reasons = dict(zip(result.quarantined[ROW], result.quarantined[REASON]))
    assert set(reasons) == {2, 3, 4, 5, 6}
    assert "export.csv row 2 column 'company_size' value 'twelve': is not a valid integer" in reasons[2]
    assert "export.csv row 3 column 'email'" in reasons[3] and "not-an-email" not in reasons[3]  # personal data masked
    assert "duplicate id (kept first seen at row 1)" in reasons[4]
    assert "column 'status' value 'archived'" in reasons[5]
    assert "column 'created_at'" in reasons[6] and "required" in reasons[6]


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
