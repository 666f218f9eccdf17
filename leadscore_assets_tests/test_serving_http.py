"""The champion served over HTTP by MLflow's own scoring server (`mlflow models serve`).

One small linkedin run registers and promotes its model; the real server is started on
loopback for `models:/leadscore-linkedin@champion` (`--env-manager local`: this venv) and asked
for one lead, a batch with an invalid lead and a request with no valid lead.
"""

import json
import urllib.error
import urllib.request
from pathlib import Path

import duckdb
import pytest

from leadscore_assets.demo_data import linkedin
from leadscore_assets.lib.project.config import load_project_config
from leadscore_assets.testing.runs import DEFS_DIR, fast, materialize_project, warehouse_file
from leadscore_assets.testing.servers import model_server, raw_records, request

pytestmark = pytest.mark.slow  # a real `mlflow models serve` process: `pytest -m slow`


@pytest.fixture(scope="module")
def served_linkedin(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("http_linkedin")
    linkedin.write(data_dir, rows=1500, seed=5)
    assert materialize_project(fast(load_project_config(DEFS_DIR / "linkedin" / "defs.yaml")), data_dir).success
    tracking_uri = f"sqlite:///{data_dir / 'mlflow' / 'mlflow.db'}"
    with model_server("models:/leadscore-linkedin@champion", tracking_uri, data_dir / "server.log") as base:
        yield base, data_dir


def test_the_served_champion_answers_over_http(served_linkedin):
    base, data_dir = served_linkedin
    assert request(f"{base}/health")[0] == 200 and request(f"{base}/ping")[0] == 200
    records = raw_records(data_dir, "linkedin", 4)
    with duckdb.connect(str(warehouse_file(data_dir, "linkedin")), read_only=True) as conn:
        scores = conn.execute("SELECT * FROM linkedin.lead_scores").df().set_index("lead_id")

    status, body = request(f"{base}/invocations", {"dataframe_records": records[:1]})
    assert status == 200, body
    (lead,) = body["predictions"]
    expected = scores.loc[lead["lead_id"]]
    assert abs(lead["probability"] - expected.probability) <= 1e-9
    assert (lead["decile"], lead["grade"], lead["contact"]) == (expected.decile, expected.grade, expected.contact)
    assert [lead[f"reason_{i}_up"] for i in (1, 2, 3)] == [expected[f"reason_{i}_up"] for i in (1, 2, 3)]
    assert lead["error"] is None and "email" not in lead and "first_name" not in lead

    # a batch with one invalid lead: the others are scored, the bad one named with its field and rule
    batch = [dict(r) for r in records]
    batch[2]["companySize"] = "lots"
    status, body = request(f"{base}/invocations", {"dataframe_records": batch, "params": {"reasons": False}})
    assert status == 200, body
    answers = body["predictions"]
    assert [a["probability"] is None for a in answers] == [False, False, True, False]
    bad_id = batch[2]["_id"].strip()
    assert answers[2]["lead_id"] == bad_id
    assert answers[2]["error"] == (f"lead '{bad_id}' (request row 3): column 'company_size': "
                                   "is not a valid integer (not a number)")
    assert "lots" not in json.dumps(body)  # the refused value is not repeated
    assert all(a["reason_1_up"] is None for a in answers)  # reasons off
    assert abs(answers[0]["probability"] - scores.loc[answers[0]["lead_id"]].probability) <= 1e-9

    # no valid lead: 400 naming lead, field and rule (and nothing else of the request)
    refused = [dict(r) for r in records[:2]]
    refused[0]["createdAt"] = "yesterday"
    refused[1]["email"] = "someone(at)example"
    status, body = request(f"{base}/invocations", {"dataframe_records": refused})
    assert status == 400, body
    assert body["error_code"] == "INVALID_PARAMETER_VALUE"
    first = refused[0]["_id"].strip()
    assert f"lead '{first}' (request row 1): column 'created_at': must be an ISO 8601 date" in body["message"]
    assert "(request row 2): column 'email': fails check: does not match the expected format" in body["message"]
    assert {(e["lead_id"], e["field"]) for e in body["errors"]} == {(first, "created_at"),
                                                                     (refused[1]["_id"].strip(), "email")}
    text = json.dumps(body)
    personal = [refused[0][c] for c in ("firstName", "lastName", "email") if len(str(refused[0][c] or "")) > 3]
    assert "yesterday" not in text and "someone(at)example" not in text and not [v for v in personal if v in text]  # no personal data

    # a required column missing: 400 naming it
    status, body = request(f"{base}/invocations",
                           {"dataframe_records": [{k: v for k, v in records[0].items() if k != "jobTitle"}]})
    assert status == 400 and "required column 'job_title' is missing" in body["message"], body


# ---------------------------------------------------------------------------------------------
# Wrong types, oversized values and unreadable bodies: short 4xx, nothing of the request
# (issue #22 items 5 and 9), from `mlflow models serve` and from `python -m leadscore_assets.serve`
# ---------------------------------------------------------------------------------------------


def post(url: str, body: bytes, content_type: str = "application/json", timeout: float = 60) -> tuple[int, str]:
    """(status, raw answer text) of a POST of `body` as it is."""
    req = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


@pytest.fixture(scope="module")
def served_by_us(served_linkedin):
    """The same champion, from the documented entry point (`python -m leadscore_assets.serve`)."""
    _, data_dir = served_linkedin
    tracking_uri = f"sqlite:///{data_dir / 'mlflow' / 'mlflow.db'}"
    with model_server("models:/leadscore-linkedin@champion", tracking_uri, data_dir / "ours.log", ours=True) as base:
        yield base


def assert_short_and_silent(status: int, text: str, record: dict, expected_status=range(400, 500)):
    assert status in expected_status, (status, text[:300])
    assert len(text) < 500, text[:600]
    for value in (record["email"], record["phone"], record["firstName"], record["lastName"], "stack_trace", "Traceback"):
        assert str(value) not in text, (value, text)


def check_requests_are_typed_bounded_and_never_echoed(base: str, data_dir: Path):
    records = raw_records(data_dir, "linkedin", 3)
    with duckdb.connect(str(warehouse_file(data_dir, "linkedin")), read_only=True) as conn:
        scores = conn.execute("SELECT * FROM linkedin.lead_scores").df().set_index("lead_id")
    record = records[0]
    url = f"{base}/invocations"

    # a good request: 200, the batch's scores
    status, body = request(url, {"dataframe_records": records})
    assert status == 200, body
    for lead in body["predictions"]:
        assert lead["error"] is None and abs(lead["probability"] - scores.loc[lead["lead_id"]].probability) <= 1e-9

    # one lead of a wrong type, or too long: a short 400 naming row, field and rule
    for column, value, rule in [("companySize", [1, 2], "must be a single value"),
                                ("industry", {"name": "Retail", "phone": record["phone"]}, "must be a single value"),
                                ("createdAt", 12345, "must be an ISO 8601 date"),
                                ("jobTitle", "x" * 5_000_000, "is longer than 4,096 characters")]:
        status, text = post(url, json.dumps({"dataframe_records": [{**record, column: value}]}).encode())
        assert_short_and_silent(status, text, record)
        assert "(request row 1)" in text and rule in text and "xxxxxxxxxx" not in text and "12345" not in text, text

    # in a batch, the others are scored as before
    batch = [{**records[0], "companySize": [1, 2]}, records[1], {**records[2], "createdAt": 12345}]
    status, body = request(url, {"dataframe_records": batch, "params": {"reasons": False}})
    assert status == 200, body
    first, second, third = body["predictions"]
    assert first["probability"] is None and "(request row 1): column 'company_size': must be a single value" in first["error"]
    assert third["probability"] is None and "(request row 3): column 'created_at': must be an ISO 8601" in third["error"]
    assert second["error"] is None and abs(second["probability"] - scores.loc[second["lead_id"]].probability) <= 1e-9

    # bodies MLflow cannot read: short 4xx, no part of the body
    malformed = ('{"dataframe_records": [{"_id": "L1", "email": "%s", "phone": "%s", "firstName": "%s",'
                 % (record["email"], record["phone"], record["firstName"])).encode()
    status, text = post(url, malformed)
    assert_short_and_silent(status, text, record)
    assert "not valid JSON" in text and "dataframe_records" not in text and "L1" not in text, text
    status, text = post(url, b'{"dataframe_records": [{"companySize": 12345678901}], "phone": 33612345678')
    assert_short_and_silent(status, text, record)
    assert "33612345678" not in text and "12345678901" not in text, text
    status, text = post(url, json.dumps({"records": [record]}).encode())
    assert_short_and_silent(status, text, record)
    status, text = post(url, json.dumps({"dataframe_records": [record], "params": {"reasons": "maybe"}}).encode())
    assert_short_and_silent(status, text, record)
    assert "maybe" not in text and "params" in text, text
    status, text = post(url, f"_id,email\nL1,{record['email']}\n".encode(), content_type="text/csv")
    assert_short_and_silent(status, text, record, expected_status=[415])


def test_served_requests_are_typed_bounded_and_never_echoed(served_linkedin):
    """`mlflow models serve`: the model's checks, and the guard its `load_context` installs."""
    base, data_dir = served_linkedin
    check_requests_are_typed_bounded_and_never_echoed(base, data_dir)


def test_the_serve_entry_point_also_bounds_bodies_before_reading_them(served_linkedin, served_by_us):
    _, data_dir = served_linkedin
    assert request(f"{served_by_us}/ping")[0] == 200
    check_requests_are_typed_bounded_and_never_echoed(served_by_us, data_dir)
    record = raw_records(data_dir, "linkedin", 1)[0]
    from leadscore_assets.serve import MAX_BODY_BYTES

    status, text = post(f"{served_by_us}/invocations",
                        json.dumps({"dataframe_records": [record] * (MAX_BODY_BYTES // 400)}).encode())
    assert_short_and_silent(status, text, record, expected_status=[413])
    status, text = post(f"{served_by_us}/nowhere", b"{}")
    assert_short_and_silent(status, text, record, expected_status=[404, 405])


# ---------------------------------------------------------------------------------------------
# Personal-data columns are optional; each missing required column its own error (issue #24 item 5)
# ---------------------------------------------------------------------------------------------

PERSONAL = ("email", "firstName", "lastName", "phone", "picture", "linkedinUrl")  # linkedin's `personal_data`


def test_a_lead_without_its_personal_columns_is_answered_over_http(served_linkedin):
    base, data_dir = served_linkedin
    records = raw_records(data_dir, "linkedin", 3)
    without = [{k: v for k, v in r.items() if k not in PERSONAL} for r in records]
    empty = [{**r, **{k: None for k in PERSONAL}} for r in records]
    status, body = request(f"{base}/invocations", {"dataframe_records": without})
    assert status == 200, body
    status, expected = request(f"{base}/invocations", {"dataframe_records": empty})
    assert status == 200 and body == expected  # read as empty personal values
    assert all(a["error"] is None for a in body["predictions"])

    status, body = request(f"{base}/invocations", {"dataframe_records": [
        {k: v for k, v in r.items() if k not in ("jobTitle", "emailStatus")} for r in without[:1]]})
    assert status == 400, body
    assert [(e["field"], e["rule"]) for e in body["errors"]] == [
        ("email_status", "required column is missing"), ("job_title", "required column is missing")]
