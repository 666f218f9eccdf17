"""The served model (lib/serving.py): raw leads in, the pipeline's own answer out.

Every shipped project is run once on small demo data (few candidates, no search); its registered
champion is then loaded as MLflow serves it (`mlflow.pyfunc.load_model("models:/...@champion")`)
and must answer ~200 of the project's raw rows (labelled and open leads) as `lead_scores` did:
the same probability to 1e-9, decile, grade, contact flag and reasons (and expected revenue
where the project has a revenue stage), in a batch and one lead at a time (the one-lead path).
"""

import mlflow
import numpy as np
import pandas as pd
import pytest

from leadscore_assets.demo_data import byo_table, email_crm, linkedin, saas_crm, web_sessions
from leadscore_assets.lib.config import load_project_config
from leadscore_assets.lib.evaluation import deciles
from leadscore_assets.lib.registry import load_version
from leadscore_assets.lib.serving import (
    REASON_COLUMNS,
    InvalidRequest,
    RawColumns,
    _as_any_typed,
    _describe,
    decile_cut_points,
    deciles_from_cut_points,
    signature,
)
from leadscore_assets.lib.validation import FILE, LINEAGE, ROW, validate
from leadscore_assets_tests.conftest import DEFS_DIR, materialize_project, warehouse_file

CANDIDATES = {"web_sessions": ["dummy", "lightgbm"]}  # a tree model: TreeSHAP reasons served too
PROJECTS = {  # project: (demo writer, rows)
    "linkedin": (linkedin.write, 1500),
    "email_crm": (email_crm.write, 2500),
    "saas_crm": (saas_crm.write, 2000),
    "web_sessions": (web_sessions.write, 12000),
    "byo_example": (byo_table.write, 5000),
}
SAMPLE = 200


def fast(config):
    """The project's own config with two candidates and no search: cheap, and still a real champion."""
    models = config.models.model_copy(update={
        "candidates": CANDIDATES.get(config.name, ["dummy", "logistic_regression"]), "search": config.models.search.model_copy(update={"n_trials": 0})})
    return config.model_copy(update={"models": models})


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


def assert_same_as_lead_scores(scores: pd.DataFrame, answer: pd.DataFrame):
    """The answers equal `lead_scores` (indexed by lead id) for their leads."""
    assert answer.error.isna().all(), answer.error.dropna().head().tolist()
    expected = scores.loc[answer.lead_id.astype(str)]
    np.testing.assert_allclose(answer.probability.astype(float), expected.probability, rtol=0, atol=1e-9)
    for column in ["decile", "grade", "contact"]:
        assert answer[column].tolist() == expected[column].tolist(), column
    for column in REASON_COLUMNS:
        assert answer[column].fillna("-").tolist() == expected[column].fillna("-").tolist(), column
    if "expected_order_value" in expected:
        np.testing.assert_allclose(answer.expected_order_value.astype(float), expected.expected_order_value, atol=1e-9)
        np.testing.assert_allclose(answer.expected_revenue.astype(float), expected.expected_revenue, atol=1e-9)


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


def test_one_lead_path_decides_as_validate_on_every_kind_of_raw_row(served):
    """The one-lead path against `validate` on single rows, quarantined raw rows included."""
    scorer = served.scorer
    if scorer.one is None:
        pytest.skip("the project's rules are not covered by the one-lead path")
    raw = served.raw
    bad = raw[~raw[ROW].isin(served.valid_rows._row_number)]
    rows = pd.concat([bad.head(60), raw.sample(60, random_state=2)])
    for _, row in rows.iterrows():
        record = row.drop(LINEAGE).to_dict()
        one = pd.DataFrame([record]).assign(**{ROW: 1, FILE: "request"})
        result = validate(one, scorer.config)
        typed, failures, _ = scorer.one.validate(record)
        assert (typed is not None) == (len(result.valid) == 1), (failures, result.quarantined._quarantine_reason.tolist())
        if typed is None:
            assert "; ".join(failures) == result.quarantined._quarantine_reason.iloc[0]
        else:
            general = scorer.features(result.valid)[scorer.fs.columns]
            pd.testing.assert_frame_equal(scorer.one.features(typed)[scorer.fs.columns], general, check_dtype=False)


def test_clean_batch_path_decides_as_validate_on_every_kind_of_raw_row(served):
    """The clean-batch path against `validate` on batches of raw rows: it types a batch of valid
    leads as `validate` does (and their features are the general path's), and declines a batch
    holding any lead `validate` quarantines, or a source it does not take (typed columns)."""
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
        batch = batch.reset_index(drop=True)
        result = validate(batch.assign(**{ROW: np.arange(1, len(batch) + 1), FILE: "request"}), scorer.config)
        typed = scorer.batch.typed(batch)
        if len(result.valid) < len(batch) or not text_only:  # a lead to report, or a typed source: declined
            assert typed is None, result.quarantined._quarantine_reason.tolist()
            continue
        taken += 1
        pd.testing.assert_frame_equal(typed, result.valid[list(scorer.config.columns)])
        pd.testing.assert_frame_equal(scorer.features(typed)[scorer.fs.columns],
                                      scorer.features(result.valid)[scorer.fs.columns])
    assert taken or not text_only


def test_load_version_gives_the_sklearn_pipeline_inside_the_served_model(served):
    model = load_version(f"leadscore-{served.project}", "champion")
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
                                             r"is not a valid datetime \(not a date\)") as refused:
        linkedin_served.model.predict(record)
    assert "tuesday" not in refused.value.serialize_as_json()  # the refused value is not repeated


# ---------------------------------------------------------------------------------------------
# Pure parts
# ---------------------------------------------------------------------------------------------


def test_answer_records_are_what_pandas_gives():
    """MLflow writes the answer as `to_dict(orient="records")`: `Answers` builds them faster, the same."""
    from leadscore_assets.lib.serving import Answers

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
    from leadscore_assets.lib.serving import date_references, days_since_columns

    config = load_project_config(DEFS_DIR / "email_crm" / "defs.yaml")
    assert days_since_columns(config) == ["optin_time"]
    assert date_references(config, {"optin_time": pd.Timestamp("2026-01-01")}) == {"optin_time": "2026-06-30T00:00:00"}
    features = config.features.model_copy(update={"reference_date": None})
    undated = config.model_copy(update={"features": features})
    assert date_references(undated, {"optin_time": pd.Timestamp("2026-05-04 10:00")}) == {
        "optin_time": "2026-05-04T10:00:00"}
    assert date_references(undated, {}) == {"optin_time": None}  # no validated value: nothing to count from
