"""The served model (lib/scoring/serving.py): raw leads in, the pipeline's own answer out.

Every shipped project is run once on small demo data (few candidates, no search); its registered
champion is then loaded as MLflow serves it (`mlflow.pyfunc.load_model("models:/...@champion")`)
and must answer ~200 of the project's raw rows (labelled and open leads) as `lead_scores` did:
the same probability to 1e-9, decile, grade, contact flag and reasons (and expected revenue
where the project has a revenue stage), in a batch and one lead at a time (the one-lead path).
"""

import json

import mlflow
import numpy as np
import pandas as pd
import pytest

from leadscore_assets.demo_data import byo_table, email_crm, linkedin, saas_crm, web_sessions
from leadscore_assets.lib.project.config import load_project_config
from leadscore_assets.lib.evaluation.metrics import deciles
from leadscore_assets.lib.scoring.registry import load_version
from leadscore_assets.lib.scoring.serving import (
    REASON_COLUMNS,
    InvalidRequest,
    RawColumns,
    _as_any_typed,
    _describe,
    signature,
)
from leadscore_assets.lib.scoring.scorer import decile_cut_points, deciles_from_cut_points
from leadscore_assets.lib.validation import FILE, LINEAGE, ROW, validate, validate_in_full
from leadscore_assets.lib.validation.shortcuts import clean_batch, one_record
from leadscore_assets.testing.parity import assert_same_as_lead_scores
from leadscore_assets.testing.runs import DEFS_DIR, fast, materialize_project, warehouse_file

PROJECTS = {  # project: (demo writer, rows)
    "linkedin": (linkedin.write, 1500),
    "email_crm": (email_crm.write, 2500),
    "saas_crm": (saas_crm.write, 2000),
    "web_sessions": (web_sessions.write, 12000),
    "byo_example": (byo_table.write, 5000),
}
SAMPLE = 200


class Served:
    """One project's run: its published tables and its champion as MLflow loads it for serving."""

    def __init__(self, project: str, data_dir):
        import duckdb

        self.project, self.data_dir = project, data_dir
        self.tracking_uri = f"sqlite:///{data_dir / 'mlflow' / 'mlflow.db'}"
        mlflow.set_tracking_uri(self.tracking_uri)
        # the registry too: a run (MlflowStore) sets it for the process, to the last project run here
        mlflow.set_registry_uri(self.tracking_uri)
        self.model = mlflow.pyfunc.load_model(f"models:/leadscore-{project}@champion")
        with duckdb.connect(str(warehouse_file(data_dir, project)), read_only=True) as conn:
            self.raw = conn.execute(f"SELECT * FROM {project}.raw_contacts").df()
            self.valid_rows = conn.execute(f"SELECT _row_number, {self.scorer.config.id_column} AS lead_id "
                                           f"FROM {project}.validated_contacts").df()
            self.scores = conn.execute(f"SELECT * FROM {project}.lead_scores").df().set_index("lead_id")
            self.splits = conn.execute(f"SELECT lead_id, split FROM {project}.features").df().set_index("lead_id").split

    @property
    def scorer(self):
        return self.model.unwrap_python_model().scorer

    def records(self, n: int = SAMPLE, seed: int = 0) -> pd.DataFrame:
        """Raw rows (the source's own columns) of n validated leads, open ones included."""
        rows = self.valid_rows.assign(split=self.splits.reindex(self.valid_rows.lead_id.astype(str)).to_numpy())
        open_ = rows[rows.split == "unlabelled"].sample(min(n // 4, (rows.split == "unlabelled").sum()), random_state=seed)
        rest = rows.drop(open_.index).sample(n - len(open_), random_state=seed)
        chosen = pd.concat([open_, rest])._row_number
        return self.raw.set_index(ROW).loc[chosen].reset_index().drop(columns=LINEAGE)


@pytest.fixture(scope="module", params=[
    # linkedin in the fast set (the session's linkedin_run); every other project in the slow set
    "linkedin", *(pytest.param(p, marks=pytest.mark.slow) for p in PROJECTS if p != "linkedin")])
def served(request, tmp_path_factory):
    project = request.param
    if project == "linkedin":
        return Served("linkedin", request.getfixturevalue("linkedin_run")[1])
    writer, rows = PROJECTS[project]
    data_dir = tmp_path_factory.mktemp(f"serving_{project}")
    writer(data_dir, rows=rows, seed=5)
    config = fast(load_project_config(DEFS_DIR / project / "defs.yaml"))
    result = materialize_project(config, data_dir, raise_on_error=False)
    assert result.success, [e.check_name for e in result.get_asset_check_evaluations() if not e.passed]
    return Served(project, data_dir)


def test_served_champion_answers_raw_leads_as_lead_scores(served):
    records = served.records()
    answer = served.model.predict(records)
    assert len(answer) == len(records)
    if (served.splits == "unlabelled").any():  # open leads answered too, where the project has them
        assert (served.splits.loc[answer.lead_id.astype(str)] == "unlabelled").any()
    assert_same_as_lead_scores(served.scores, answer)


def test_one_lead_at_a_time_answers_as_lead_scores(served):
    records = served.records(n=20, seed=1)
    answers = pd.concat([served.model.predict(records.iloc[[i]]) for i in range(len(records))], ignore_index=True)
    assert_same_as_lead_scores(served.scores, answers)
    without = served.model.predict(records.iloc[[0]], params={"reasons": False})
    assert without.probability.iloc[0] == answers.probability.iloc[0] and without[REASON_COLUMNS].isna().all(axis=None)


def assert_same_validation(fast, full):
    pd.testing.assert_frame_equal(fast.valid, full.valid)
    pd.testing.assert_frame_equal(fast.quarantined, full.quarantined)
    assert (fast.table_errors, fast.failure_counts) == (full.table_errors, full.failure_counts)


def test_validate_on_one_record_answers_as_the_full_route_on_every_kind_of_raw_row(served):
    """`validate`'s one-record shortcut against `validate_in_full` on single rows, quarantined raw
    rows included, and `feature_rows` of a valid one against its general route (two rows)."""
    scorer = served.scorer
    raw = served.raw
    bad = raw[~raw[ROW].isin(served.valid_rows._row_number)]
    rows = pd.concat([bad.head(60), raw.sample(60, random_state=2)])
    vouched = 0
    for _, row in rows.iterrows():
        one = pd.DataFrame([row.drop(LINEAGE).to_dict()]).assign(**{ROW: 1, FILE: "request"})
        vouched += one_record(one, scorer.config, None) is not None
        result = validate(one, scorer.config)
        assert_same_validation(result, validate_in_full(one, scorer.config))
        if len(result.valid):  # its features: `feature_rows`' one-row route as its general one
            general = scorer.features(pd.concat([result.valid] * 2, ignore_index=True)).iloc[:1]
            pd.testing.assert_frame_equal(scorer.features(result.valid), general)
    assert vouched >= 30  # the shortcut takes the valid ones (60 sampled rows, most valid)


def test_validate_on_a_clean_batch_answers_as_the_full_route_on_every_kind_of_raw_row(served):
    """`validate`'s clean-batch shortcut against `validate_in_full` on batches of raw rows: it
    answers a batch of valid leads as the full route does, and declines a batch holding any
    lead the full route quarantines, or a source it does not take (typed columns)."""
    scorer = served.scorer
    raw = served.raw.drop(columns=LINEAGE)
    bad_rows = ~served.raw[ROW].isin(served.valid_rows._row_number).to_numpy()
    text_only = all(raw[c].dtype == object for c in raw.columns)
    good = raw[~bad_rows]
    batches = [good.sample(min(300, len(good)), random_state=seed) for seed in range(3)]
    batches += [pd.concat([good.head(20), raw.iloc[[i]]]) for i in np.flatnonzero(bad_rows)[:40]]  # a bad row each
    batches.append(pd.concat([good.head(20), good.iloc[[3]]]))  # a lead sent twice
    taken = 0
    for batch in batches:
        batch = batch.reset_index(drop=True).assign(**{ROW: np.arange(1, len(batch) + 1), FILE: "request"})
        full = validate_in_full(batch, scorer.config)
        fast = clean_batch(batch, scorer.config, None)
        if len(full.valid) < len(batch) or not text_only:  # a lead to report, or a typed source: declined
            assert fast is None, full.quarantined._quarantine_reason.tolist()
            continue
        taken += 1
        assert_same_validation(fast, full)
    assert taken or not text_only


def test_load_version_gives_the_sklearn_pipeline_inside_the_served_model(served):
    client = mlflow.MlflowClient(tracking_uri=served.tracking_uri, registry_uri=served.tracking_uri)
    model = load_version(f"leadscore-{served.project}", "champion", client)
    assert hasattr(model, "predict_proba") and not hasattr(model, "unwrap_python_model")
    x = served.scorer.features(served.scorer.config.model_copy() and _validated(served))
    np.testing.assert_array_equal(model.predict_proba(x[served.scorer.fs.columns]),
                                  served.scorer.pipeline.predict_proba(x[served.scorer.fs.columns]))


def _validated(served: Served) -> pd.DataFrame:
    records = served.records(n=20, seed=7)
    return validate(records.assign(**{ROW: range(1, 21), FILE: "request"}), served.scorer.config).valid


def test_personal_data_never_in_the_answer(served):
    config = served.scorer.config
    records = served.records(n=30, seed=3)
    answer = served.model.predict(records)
    assert not set(answer.columns) & {*config.personal_data, *served.scorer.raw_columns} - {config.id_column}
    written = " ".join(answer.astype(str).to_numpy().ravel())
    names = config.naming.columns(list(records.columns))
    for raw_name, name in names.items():
        if name in config.personal_data and name != config.id_column:
            for value in records[raw_name].dropna().astype(str):
                if len(value.strip()) > 3:
                    assert value.strip() not in written, name


# ---------------------------------------------------------------------------------------------
# Bad input (the linkedin export: text, with personal data)
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def linkedin_served(linkedin_run):
    return Served("linkedin", linkedin_run[1])


def test_a_batch_scores_its_valid_leads_and_reports_each_invalid_one(linkedin_served):
    records = linkedin_served.records(n=5, seed=4).astype(object)
    records.loc[1, "companySize"] = "lots"
    records.loc[3, "email"] = "jane.doe(at)example"
    answer = linkedin_served.model.predict(records)
    assert answer.probability.isna().tolist() == [False, True, False, True, False]
    lead_1, lead_3 = records.loc[1, "_id"].strip(), records.loc[3, "_id"].strip()
    assert answer.error[1] == (f"lead '{lead_1}' (request row 2): column 'company_size': "
                               "is not a valid integer (not a number)")
    assert answer.error[3] == (f"lead '{lead_3}' (request row 4): column 'email': fails check: "
                               "does not match the expected format")
    assert "jane.doe" not in answer.to_string() and "lots" not in answer.to_string()  # refused values never repeated
    assert answer.lead_id.tolist() == records["_id"].str.strip().tolist()
    ok = answer[answer.error.isna()]
    assert_same_as_lead_scores(linkedin_served.scores, ok.assign(decile=ok.decile.astype(int)))


def test_a_request_with_no_valid_lead_is_refused_naming_lead_field_and_rule(linkedin_served):
    records = linkedin_served.records(n=2, seed=5).astype(object)
    records["companySize"] = ["lots", "-3"]
    with pytest.raises(InvalidRequest) as refused:
        linkedin_served.model.predict(records)
    err = refused.value
    assert err.get_http_status_code() == 400
    lead = records.loc[0, "_id"].strip()
    assert f"lead '{lead}' (request row 1): column 'company_size': is not a valid integer (not a number)" in err.message
    assert "lots" not in err.serialize_as_json() and "-3" not in err.serialize_as_json()  # nor any refused value
    assert {(e["lead_id"], e["field"]) for e in err.json_kwargs["errors"]} == {
        (lead, "company_size"), (records.loc[1, "_id"].strip(), "company_size")}
    err.message = "Failed to predict data '<the request>'"  # what the scoring server does: ignored
    assert "request row 1" in err.message and "<the request>" not in err.serialize_as_json()

    with pytest.raises(InvalidRequest, match="required column 'job_title' is missing"):
        linkedin_served.model.predict(linkedin_served.records(n=1).drop(columns=["jobTitle"]))


def test_one_lead_invalid_is_refused_like_a_batch(linkedin_served):
    record = linkedin_served.records(n=1, seed=6).astype(object)
    record["createdAt"] = "next tuesday"
    with pytest.raises(InvalidRequest, match=r"\(request row 1\): column 'created_at': "
                                             r"must be an ISO 8601 date or datetime string") as refused:
        linkedin_served.model.predict(record)
    assert "tuesday" not in refused.value.serialize_as_json()  # the refused value is not repeated


# ---------------------------------------------------------------------------------------------
# Pure parts
# ---------------------------------------------------------------------------------------------


def test_answer_records_are_what_pandas_gives():
    """MLflow writes the answer as `to_dict(orient="records")`: `Answers` builds them faster, the same."""
    from leadscore_assets.lib.scoring.serving import Answers

    frame = pd.DataFrame({"lead_id": ["a", "b"], "probability": [0.25, 0.5], "decile": np.array([3, 1]),
                          "grade": ["C", "A"], "contact": [False, True], "reason_1_up": [None, "x"],
                          "error": pd.Series([None, None], dtype=object), "value": [np.nan, 2.0]})
    for answer in (frame, frame.astype(object)):
        records = Answers(answer).to_dict(orient="records")
        expected = pd.DataFrame(answer).to_dict(orient="records")
        assert records == expected or str(records) == str(expected)  # NaN != NaN
        assert [[type(v) for v in r.values()] for r in records] == [[type(v) for v in r.values()] for r in expected]
    assert str(Answers(frame).to_dict()) == str(frame.to_dict())  # any other orient: pandas itself


def test_decile_cut_points_reproduce_population_deciles():
    p = np.random.default_rng(0).random(1234)
    assert (deciles_from_cut_points(p, decile_cut_points(p)) == deciles(p)).all()
    cuts = decile_cut_points(p)
    assert deciles_from_cut_points(np.array([1.0, 0.0, cuts[0], cuts[8]]), cuts).tolist() == [1, 10, 1, 9]


def test_describe_names_lead_field_and_rule():
    reason = ("request row 12 (lead 'L1') column 'company_size': is not a valid integer (not a number); "
              "request row 12 (lead 'L1'): rule 'size_ok' (company_size > 0) is false")
    text, parts = _describe(reason, 12, "L1")
    assert text == ("lead 'L1' (request row 12): column 'company_size': is not a valid integer (not a number); "
                    "rule 'size_ok' (company_size > 0) is false")  # the lead named once
    assert [(p["field"], p["rule"]) for p in parts] == [
        ("company_size", "is not a valid integer (not a number)"),
        ("size_ok", "rule 'size_ok' (company_size > 0) is false")]
    # a reason with no lead part (the id failed or may not be quoted), and an id repr quotes with "
    text, parts = _describe("request row 3 column 'lead_id': fails check: field_uniqueness; "
                            "request row 3 (lead \"o'neil\") column 'x': is required (null)", 3, None)
    assert text == "lead with no id (request row 3): column 'lead_id': fails check: field_uniqueness; column 'x': is required (null)"
    assert [(p["field"], p["rule"]) for p in parts] == [("lead_id", "fails check: field_uniqueness"),
                                                        ("x", "is required (null)")]


# ---------------------------------------------------------------------------------------------
# The signature: text columns as strings (MLflow passes them through whole), the others any type
# ---------------------------------------------------------------------------------------------


def test_signature_types_text_columns_as_strings_and_the_others_as_any():
    from mlflow.types.schema import AnyType, DataType

    cols = RawColumns(["_id", "companySize", "createdAt", "score"],
                      {"_id": "VARCHAR", "companySize": "BIGINT", "createdAt": "TIMESTAMP", "score": "DOUBLE"})
    inputs = {c.name: c for c in signature(cols).inputs.inputs}
    assert inputs["_id"].type == DataType.string
    assert all(isinstance(inputs[c].type, AnyType) for c in ["companySize", "createdAt", "score"])
    assert not any(c.required for c in inputs.values())
    assert all(isinstance(c.type, AnyType) for c in signature(["a", "b"]).inputs.inputs)  # names only: any type
    assert list(cols) == ["_id", "companySize", "createdAt", "score"]  # what serving.json stores


def test_string_columns_are_rebuilt_as_an_any_column_is():
    """What MLflow's enforcement does to an `Any` column (a rebuild from its values), `_as_any_typed`
    does to a `string` column MLflow passed through: the model sees the same frame either way."""
    from mlflow.models.utils import _enforce_schema
    from mlflow.types.schema import AnyType, ColSpec, Schema

    frame = pd.DataFrame({
        "text": pd.Series([" a ", None, np.nan, "b"], dtype=object),
        "floats": pd.Series([1.0, np.nan, 3.0, 4.5], dtype=object),  # numbers sent for a text column
        "ints": pd.Series([1, None, 3, 4], dtype=object),
        "bools": pd.Series([True, None, False, True], dtype=object),
        "mixed": pd.Series(["x", 5, None, 2.5], dtype=object),
        "nulls": pd.Series([np.nan, None, None, np.nan], dtype=object),
        "typed": pd.Series(["a", pd.NA, "b", "c"], dtype="string"),
        "numbers": [1.5, 2.0, np.nan, 4.0],
    })
    any_typed = _enforce_schema(frame, Schema([ColSpec(AnyType(), c, required=False) for c in frame.columns]))
    ours = _as_any_typed(frame)
    pd.testing.assert_frame_equal(ours, any_typed)
    for col in frame.columns:
        assert [repr(v) for v in ours[col]] == [repr(v) for v in any_typed[col]], col
    assert _as_any_typed(ours) is ours or _as_any_typed(ours).equals(ours)  # a second rebuild changes nothing


def test_served_linkedin_champion_takes_text_columns_as_strings(linkedin_served):
    from mlflow.types.schema import DataType

    schema = linkedin_served.model.metadata.get_input_schema()
    assert {c.type for c in schema.inputs} == {DataType.string}  # a CSV source: every column text
    assert not any(c.required for c in schema.inputs)


def test_numbers_sent_for_text_columns_are_answered_as_the_text_would_be(linkedin_served):
    records = linkedin_served.records(n=6, seed=8).astype(object)
    as_text = linkedin_served.model.predict(records, params={"reasons": False})
    numbers = records.copy()
    numbers["companySize"] = [None if pd.isna(v) or not str(v).strip() else float(v) for v in records["companySize"]]
    numbers["companySize"] = numbers["companySize"].astype(object)  # as the scoring server hands it over
    as_numbers = linkedin_served.model.predict(numbers, params={"reasons": False})
    pd.testing.assert_frame_equal(as_numbers, as_text)


def test_date_references_are_the_configured_date_or_the_newest_validated_value():
    from leadscore_assets.lib.scoring.serving import date_references, days_since_columns

    config = load_project_config(DEFS_DIR / "email_crm" / "defs.yaml")
    assert days_since_columns(config) == ["optin_time"]
    assert date_references(config, {"optin_time": pd.Timestamp("2026-01-01")}) == {"optin_time": "2026-06-30T00:00:00"}
    features = config.features.model_copy(update={"reference_date": None})
    undated = config.model_copy(update={"features": features})
    assert date_references(undated, {"optin_time": pd.Timestamp("2026-05-04 10:00")}) == {
        "optin_time": "2026-05-04T10:00:00"}
    assert date_references(undated, {}) == {"optin_time": None}  # no validated value: nothing to count from


# ---------------------------------------------------------------------------------------------
# Served requests: JSON types per column and bounds (issue #22 items 5 and 9)
# ---------------------------------------------------------------------------------------------


def test_request_types_hold_each_column_to_its_declared_type():
    from leadscore_assets.lib.scoring.serving import MAX_VALUE_CHARS, NOT_SCALAR, TOO_LONG, RequestTypes

    config = load_project_config(DEFS_DIR / "linkedin" / "defs.yaml")
    types = RequestTypes(config)
    good = {"_id": "L1", "jobTitle": "CTO", "companySize": "12", "createdAt": "2026-03-25T20:12:00.000Z",
            "stepsCompleted": 3, "lastStateAt": " 2026-03-25 ", "picture": None}
    cases = [  # (column, value, rule or None)
        ("companySize", 12, None), ("companySize", 12.0, None), ("companySize", "lots", None),  # validate's to refuse
        ("companySize", [1, 2], NOT_SCALAR), ("companySize", {"n": 1}, NOT_SCALAR),
        ("companySize", True, "must be a number or a numeric string"),
        ("createdAt", "2026-03-25", None), ("createdAt", "2026-03-25 20:12:00+02:00", None), ("createdAt", "NULL", None),
        ("createdAt", 12345, "must be an ISO 8601 date"), ("createdAt", "12345", "must be an ISO 8601 date"),
        ("createdAt", "25/03/2026", "must be an ISO 8601 date"), ("createdAt", pd.Timestamp("2026-03-25"), None),
        ("jobTitle", "x" * MAX_VALUE_CHARS, None), ("jobTitle", "x" * (MAX_VALUE_CHARS + 1), TOO_LONG),
        ("jobTitle", 7, None), ("jobTitle", False, "must be a string"), ("jobTitle", ["CTO"], NOT_SCALAR),
        ("picture", {"url": "x"}, NOT_SCALAR), ("extra_field", [1], NOT_SCALAR), ("extra_field", 5, None),
        ("extra_field", "y" * (MAX_VALUE_CHARS + 1), TOO_LONG),
    ]
    canonical = {"companySize": "company_size", "createdAt": "created_at", "jobTitle": "job_title", "picture": "picture"}
    for column, value, rule in cases:
        record = {**good, column: value}
        frame = pd.DataFrame({k: pd.Series([v], dtype=object) for k, v in record.items()})
        failures = types.failures(frame)
        if rule is None:
            assert failures == {}, (column, value, failures)
        else:
            ((row, [(field, said)]),) = failures.items()
            assert row == 1 and said.startswith(rule) and field == canonical.get(column, column), (column, value, failures)
            assert str(value)[:20] not in said  # the rule, never the value
    assert types.failures(pd.DataFrame([good] * 3)) == {}
    # typed columns (a typed source in-process, or an `Any` column MLflow rebuilt)
    typed = pd.DataFrame({"_id": ["a", "b"], "companySize": [1, 2], "createdAt": pd.to_datetime(["2026-01-01", None]),
                          "lastStateAt": [1.7e9, np.nan], "jobTitle": [True, False]})
    assert types.failures(typed) == {1: [("last_state_at", types.failures(typed)[1][0][1]), ("job_title", "must be a string (or a number)")],
                                     2: [("job_title", "must be a string (or a number)")]}


def test_a_batch_refuses_each_lead_of_a_wrong_type_and_scores_the_others(linkedin_served):
    records = linkedin_served.records(n=6, seed=9).astype(object)
    phone, email = records.loc[3, "phone"], records.loc[3, "email"]
    records.at[0, "companySize"] = [1, 2]
    records.at[1, "industry"] = {"name": "Retail", "phone": phone}
    records.at[2, "createdAt"] = 12345
    records.at[3, "jobTitle"] = "x" * 5_000_000  # 5 MB
    answer = linkedin_served.model.predict(records, params={"reasons": False})
    assert answer.probability.isna().tolist() == [True, True, True, True, False, False]
    ids = records["_id"].str.strip().tolist()
    assert answer.lead_id.tolist() == ids
    assert answer.error[0] == (f"lead '{ids[0]}' (request row 1): column 'company_size': must be a single value "
                               "(a string, number, boolean or null), not a list or an object")
    assert answer.error[1].startswith(f"lead '{ids[1]}' (request row 2): column 'industry': must be a single value")
    assert answer.error[2].startswith(f"lead '{ids[2]}' (request row 3): column 'created_at': must be an ISO 8601 date")
    assert answer.error[3] == f"lead '{ids[3]}' (request row 4): column 'job_title': is longer than 4,096 characters"
    written = answer.to_string()
    assert "xxxxxxxxxx" not in written and "12345" not in written and "Retail" not in written
    assert str(phone) not in written and str(email) not in written
    ok = answer[answer.error.isna()]
    without = linkedin_served.model.predict(records.iloc[4:].reset_index(drop=True), params={"reasons": False})
    np.testing.assert_allclose(ok.probability.astype(float), without.probability.astype(float), rtol=0, atol=0)
    assert_same_as_lead_scores(linkedin_served.scores, linkedin_served.model.predict(records.iloc[4:].reset_index(drop=True)))


def test_a_request_of_wrong_types_only_is_refused_briefly(linkedin_served):
    from leadscore_assets.lib.scoring.serving import MAX_LEADS

    record = linkedin_served.records(n=1, seed=10).astype(object)
    lead = record.loc[0, "_id"].strip()
    for column, value in [("companySize", [1, 2]), ("industry", {"a": record.loc[0, "phone"]}), ("createdAt", 12345),
                          ("jobTitle", "y" * 5_000_000), ("_id", ["L1"])]:
        sent = record.copy()
        sent.at[0, column] = value
        with pytest.raises(InvalidRequest) as refused:
            linkedin_served.model.predict(sent)
        body = refused.value.serialize_as_json()
        assert refused.value.get_http_status_code() == 400 and len(body) < 500, (column, body)
        assert "request row 1" in body and "yyyyyyyyyy" not in body and "12345" not in body
        assert str(record.loc[0, "email"]) not in body and str(record.loc[0, "phone"]) not in body
        assert (lead in body) == (column != "_id")  # a refused id is not repeated either
    # too many leads: refused before any of them is read
    many = pd.concat([record] * (MAX_LEADS + 1), ignore_index=True)
    with pytest.raises(InvalidRequest, match=f"at most {MAX_LEADS:,} are scored per request"):
        linkedin_served.model.predict(many)


def test_a_refused_request_names_a_few_leads_and_bounds_its_errors(linkedin_served):
    from leadscore_assets.lib.scoring.serving import MAX_ERRORS, SHOWN_REFUSALS

    records = linkedin_served.records(n=40, seed=11).astype(object)
    records["companySize"] = "lots"
    with pytest.raises(InvalidRequest) as refused:
        linkedin_served.model.predict(records)
    err = refused.value
    assert err.message.count("request row") == SHOWN_REFUSALS and f"(and {40 - SHOWN_REFUSALS} more)" in err.message
    assert len(err.json_kwargs["errors"]) == MAX_ERRORS


def test_an_error_of_the_model_itself_is_a_short_500(linkedin_served, monkeypatch):
    from leadscore_assets.lib.scoring.serving import ScoringFailure

    record = linkedin_served.records(n=1, seed=12).astype(object)

    def broken(*args, **kwargs):
        raise KeyError(f"the value {record.loc[0, 'email']}")

    monkeypatch.setattr(linkedin_served.scorer.pipeline, "predict_proba", broken)
    with pytest.raises(ScoringFailure) as failed:
        linkedin_served.model.predict(record)
    assert failed.value.get_http_status_code() == 500
    body = failed.value.serialize_as_json()
    assert "KeyError" in body and str(record.loc[0, "email"]) not in body and len(body) < 300


# ---------------------------------------------------------------------------------------------
# The guard around MLflow's scoring server (leadscore_assets.serve), without a server
# ---------------------------------------------------------------------------------------------

MALFORMED = b'{"dataframe_records": [{"_id": "L1", "email": "jane.doe@example.com", "phone": "+33 6 12 34 56 78",'


def test_the_guard_answers_what_mlflow_cannot_read_briefly_and_without_the_body():
    from mlflow.exceptions import MlflowException
    from mlflow.pyfunc import scoring_server

    from leadscore_assets.serve import MAX_BODY_BYTES, guarded

    from types import SimpleNamespace

    model = SimpleNamespace(metadata=SimpleNamespace(), predict=lambda data, params=None: pd.DataFrame({"p": [0.5]}))
    guard = guarded(scoring_server.invocations)
    with pytest.raises(MlflowException) as plain:  # what MLflow answers by itself: the whole body
        scoring_server.invocations(MALFORMED, "application/json", model, None)
    assert "jane.doe@example.com" in plain.value.serialize_as_json()
    for body, content_type, status in [
        (MALFORMED, "application/json", 400), (b"\xff\xfe{}", "application/json", 400),
        (b'{"records": [{"email": "jane.doe@example.com"}]}', "application/json", 400),
        (b'[{"email": "jane.doe@example.com"}]', "application/json", 400),
        (b"_id,email\nL1,jane.doe@example.com\n", "text/csv", 415),
        (b"{}", "application/json; charset=latin-1", 415),
        (b'{"dataframe_records": [{"email": "jane.doe@example.com"}]}' + b" " * MAX_BODY_BYTES, "application/json", 413),
    ]:
        try:
            result = guard(body, content_type, model, None)
            answer, got = result.response, result.status
        except MlflowException as err:
            answer, got = err.serialize_as_json(), err.get_http_status_code()
        assert got == status, (body[:40], answer)
        assert len(answer) < 500 and "jane.doe" not in answer and "+33" not in answer and '"errors": []' in answer, answer
    ok = guard(b'{"dataframe_records": [{"a": 1}]}', "application/json; charset=utf-8", model, None)
    assert ok.status == 200 and json.loads(ok.response) == {"predictions": [{"p": 0.5}]}
    with pytest.raises(MlflowException) as refused:
        guard(MALFORMED, "application/json", model, None)
    assert "not valid JSON" in refused.value.message and "line 1" in refused.value.message


def test_the_middleware_bounds_bodies_and_replaces_foreign_error_answers():
    import asyncio

    from leadscore_assets.serve import BoundedRequests

    async def inner(scope, receive, send):
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        status = 200 if body == b"ok" else 500 if body == b"boom" else 400
        content = {200: b'{"predictions": []}', 500: b"Traceback ... jane.doe@example.com",
                   400: b'{"error_code": "INVALID_PARAMETER_VALUE", "message": "ours", "errors": []}'}[status]
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": content})

    def call(chunks, headers=()):
        sent = []
        queue = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]

        async def receive():
            return queue.pop(0) if queue else {"type": "http.disconnect"}

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": "/invocations", "headers": list(headers)}
        asyncio.run(BoundedRequests(inner, max_body=100)(scope, receive, send))
        return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])

    assert call([b"o", b"k"]) == (200, b'{"predictions": []}')
    assert call([b"x" * 60, b"y" * 60])[0] == 413  # counted while it arrives
    status, body = call([b"ok"], [(b"content-length", b"1000")])  # announced
    assert status == 413 and b"larger than" in body
    status, body = call([b"boom"])
    assert status == 500 and b"jane.doe" not in body and b"Traceback" not in body
    assert call([b"bad"]) == (400, b'{"error_code": "INVALID_PARAMETER_VALUE", "message": "ours", "errors": []}')


# ---------------------------------------------------------------------------------------------
# Personal-data columns are not required; each missing required column is its own error (#24 item 5)
# ---------------------------------------------------------------------------------------------


def _personal_sources(served: Served, columns) -> list[str]:
    """The request's names of the personal-data columns (the id aside)."""
    config = served.scorer.config
    return [raw for raw, name in config.naming.columns(list(columns)).items()
            if name in config.personal_data and name != config.id_column]


def test_a_lead_without_its_personal_columns_is_scored_as_one_with_them_empty(linkedin_served):
    served = linkedin_served
    records = served.records(n=8, seed=9).astype(object)
    personal = _personal_sources(served, records.columns)
    assert {served.scorer.config.naming.canonical(c) for c in personal} == {
        "email", "first_name", "last_name", "phone", "picture", "linkedin_url"}
    assert_same_as_lead_scores(served.scores, served.model.predict(records))  # sent: as the batch scored them

    without = records.drop(columns=personal)
    empty = records.assign(**{c: None for c in personal})
    expected = served.model.predict(empty)
    assert expected.error.isna().all()
    for request in (without, without.iloc[[0]], without.iloc[[3, 1]]):  # a batch, the one-lead path, any rows
        answer = served.model.predict(request)
        assert answer.error.isna().all(), answer.error.tolist()
        assert answer.lead_id.tolist() == request["_id"].str.strip().tolist()
        pd.testing.assert_frame_equal(answer.reset_index(drop=True),
                                      expected.iloc[[records.index.get_loc(i) for i in request.index]].reset_index(drop=True))
    # what the model reads of them: absent as a null value is read in the batch (has_<column> = 0)
    frame = served.scorer.features(validate(served.scorer.with_personal_columns(without.iloc[[0]]).assign(
        **{ROW: [1], FILE: "request"}), served.scorer.config).valid)
    flags = [c for c in served.scorer.fs.columns if c.startswith("has_")]
    assert flags and (frame[flags] == 0).all(axis=None)

    # an invalid lead among them is still named on its own, the others scored
    broken = without.copy()
    broken.loc[broken.index[2], "companySize"] = "lots"
    answer = served.model.predict(broken)
    assert answer.probability.isna().tolist() == [i == 2 for i in range(len(broken))]
    assert answer.error[2].endswith("column 'company_size': is not a valid integer (not a number)")


def test_each_missing_required_column_is_its_own_error(linkedin_served):
    records = linkedin_served.records(n=2, seed=10).astype(object)
    request = records.drop(columns=["jobTitle", "emailStatus", *_personal_sources(linkedin_served, records.columns)])
    for sent in (request, request.iloc[[0]]):
        with pytest.raises(InvalidRequest) as refused:
            linkedin_served.model.predict(sent)
        err = refused.value
        assert err.get_http_status_code() == 400
        assert "required column 'job_title' is missing" in err.message
        assert "required column 'email_status' is missing" in err.message
        assert "first_name" not in err.message and "email'" not in err.message  # personal columns not required
        ids = sent["_id"].str.strip().tolist()
        assert [(e["lead_id"], e["row"], e["field"], e["rule"]) for e in err.json_kwargs["errors"]] == [
            (lead, row, field, "required column is missing")
            for row, lead in enumerate(ids, start=1) for field in ("email_status", "job_title")]


def test_describe_gives_each_table_failure_its_own_error():
    reason = ("request row 2: required column 'email_status' is missing; required column 'job_title' is missing; "
              "column 'x' fails field_uniqueness (whole file quarantined)")
    text, parts = _describe(reason, 2, "L2")
    assert text == ("lead 'L2' (request row 2): required column 'email_status' is missing; required column "
                    "'job_title' is missing; column 'x' fails field_uniqueness (every lead of the request refused)")
    assert [(p["lead_id"], p["row"], p["field"], p["rule"]) for p in parts] == [
        ("L2", 2, "email_status", "required column is missing"), ("L2", 2, "job_title", "required column is missing"),
        ("L2", 2, "x", "column 'x' fails field_uniqueness")]


def test_personal_columns_not_sent_are_added_where_validation_expects_them():
    from leadscore_assets.lib.features.frame import FeatureSet
    from leadscore_assets.lib.scoring.serving import LeadScorer

    config = load_project_config(DEFS_DIR / "linkedin" / "defs.yaml")
    ordered = config.model_copy(update={"validation": config.validation.model_copy(update={"ordered_columns": True})})
    scorer = LeadScorer(config=ordered, fs=FeatureSet([], []), raw_columns=[], pipeline=None, threshold=0.5,
                        cut_points=[0.5] * 9, references={}, background=np.zeros((0, 0)))
    raw = pd.DataFrame([{"_id": "a1", "emailStatus": "deliverable", "phone": "+33 6", "companyName": "c",
                         "jobTitle": "ceo", "extra": 1}])
    added = scorer.with_personal_columns(raw)
    assert list(added.columns) == ["_id", "email", "emailStatus", "first_name", "last_name", "phone", "picture",
                                   "linkedin_url", "companyName", "jobTitle", "extra"]
    assert added[["email", "first_name", "last_name", "picture", "linkedin_url"]].isna().all(axis=None)
    assert added.drop(columns=["email", "first_name", "last_name", "picture", "linkedin_url"]).equals(raw)
    full = raw.assign(email="x@y.com", firstName="A", lastName="B", picture="p", linkedinUrl="u")
    assert scorer.with_personal_columns(full) is full  # every personal column sent: the request as it is
