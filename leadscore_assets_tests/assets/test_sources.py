"""Every shipped source materializes end to end from its YAML alone, and its validation catches
its own bad-input cases (quarantined rows with reasons) on its own demo data."""

import dagster as dg
import duckdb
import pandas as pd
import pytest

from leadscore_assets.components.lead_scoring_project import project_definitions
from leadscore_assets.demo_data import byo_table, email_crm, saas_crm, web_sessions
from leadscore_assets.lib.project.config import load_project_config
from leadscore_assets.resources.feedback_inbox import file_sha256
from leadscore_assets.resources import build_resources
from leadscore_assets.testing.runs import DEFS_DIR, feedback_run_config, materialize_project, warehouse_file

pytestmark = pytest.mark.slow  # a pipeline run per shipped source: `pytest -m slow`

FAST_MODELS = ["dummy", "logistic_regression", "lightgbm"]


def _fast(config):
    """The project's own config with fewer candidates and no search, to keep the suite quick."""
    models = config.models.model_copy(update={
        "candidates": FAST_MODELS, "search": config.models.search.model_copy(update={"n_trials": 0})})
    return config.model_copy(update={"models": models})


def _run(project: str, writer, rows: int, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp(project)
    writer(data_dir, rows=rows, seed=3)
    config = _fast(load_project_config(DEFS_DIR / project / "defs.yaml"))
    result = materialize_project(config, data_dir, raise_on_error=False)
    published = warehouse_file(data_dir, config.name)
    conn = duckdb.connect(str(published if published.exists() else warehouse_file(data_dir, config.name, result.run_id)),
                          read_only=True)
    return result, conn


def _reasons(conn, project: str) -> pd.Series:
    return conn.execute(f"SELECT _quarantine_reason FROM {project}.quarantined_contacts").df()._quarantine_reason


def _assert_complete_run(result, conn, project: str):
    failed = [e.check_name for e in result.get_asset_check_evaluations() if not e.passed]
    assert result.success, failed
    raw = conn.execute(f"SELECT count(*) FROM {project}.raw_contacts").fetchall()[0][0]
    valid = conn.execute(f"SELECT count(*) FROM {project}.validated_contacts").fetchall()[0][0]
    quarantined = conn.execute(f"SELECT count(*) FROM {project}.quarantined_contacts").fetchall()[0][0]
    scored = conn.execute(f"SELECT count(*) FROM {project}.lead_scores").fetchall()[0][0]
    assert raw == valid + quarantined and scored == valid
    auc, dummy = conn.execute(f"SELECT test_roc_auc, dummy_test_roc_auc FROM {project}.evaluation_report").fetchall()[0]
    assert auc > dummy + 0.05


@pytest.fixture(scope="module")
def email(tmp_path_factory):
    return _run("email_crm", email_crm.write, 3000, tmp_path_factory)


@pytest.fixture(scope="module")
def saas(tmp_path_factory):
    return _run("saas_crm", saas_crm.write, 2500, tmp_path_factory)


@pytest.fixture(scope="module")
def sessions(tmp_path_factory):
    return _run("web_sessions", web_sessions.write, 30000, tmp_path_factory)


@pytest.fixture(scope="module")
def byo(tmp_path_factory):
    return _run("byo_example", byo_table.write, 8000, tmp_path_factory)


def test_email_crm_end_to_end_with_its_own_rules(email):
    result, conn = email
    _assert_complete_run(result, conn, "email_crm")
    reasons = _reasons(conn, "email_crm")
    assert reasons.str.contains("column 'user_email'").any() and not reasons.str.contains("@").any()
    assert reasons.str.contains("column 'member_rating': fails check: (<= 5|>= 1)", regex=True).any()
    assert reasons.str.contains("column 'country_code': fails check", regex=False).any()
    assert not reasons.str.contains(" value '", regex=False).any()  # rules only, never the refused value
    assert reasons.str.contains("duplicate id").any()
    assert reasons.str.startswith("crm_database.sqlite:subscribers row ").all()
    features = conn.execute("SELECT feature, encoding FROM email_crm.feature_schema").df()
    enc = dict(zip(features.feature, features.encoding))
    assert enc["tags"] == "multi_hot" and enc["country_code"] == "target_encoded"
    assert {"optin_time_days_since", "optin_time_weekend", "optin_time_quarter"} <= set(enc)
    assert "made_purchase" not in enc and "last_changed" not in enc


def test_saas_crm_end_to_end_with_business_rules_and_usage_features(saas):
    result, conn = saas
    _assert_complete_run(result, conn, "saas_crm")
    reasons = _reasons(conn, "saas_crm")
    assert reasons.str.contains("rule 'customer_mrr_positive'").any()
    assert reasons.str.contains("rule 'alexa_rank_positive'").any()
    assert reasons.str.contains(r"duplicate id \(kept more complete row \d+\)", regex=True).any()
    usage = conn.execute("SELECT reason FROM saas_crm.quarantined_source_rows WHERE source_table = 'usage'").df()
    assert len(usage) > 0 and usage.reason.str.contains("rule 'actions_at_least_users'").all()
    features = set(conn.execute("SELECT feature FROM saas_crm.feature_schema").df().feature)
    assert {"total_actions", "total_users", "days_active", "activity_frequency", "recency_days"} <= features
    assert "mrr" not in features


def test_web_sessions_end_to_end_with_revenue(sessions):
    result, conn = sessions
    _assert_complete_run(result, conn, "web_sessions")
    reasons = _reasons(conn, "web_sessions")
    assert reasons.str.contains("column 'session_duration_s'").any() or reasons.str.contains("column 'pages_viewed'").any()
    rev = conn.execute("SELECT * FROM web_sessions.revenue_model").df().iloc[0]
    assert rev.test_rmse > 0 and -1 < rev.test_r2 <= 1 and rev.test_mape > 0
    scores = conn.execute("SELECT probability, expected_order_value, expected_revenue FROM web_sessions.lead_scores").df()
    assert (scores.expected_order_value > 0).all()
    assert ((scores.expected_revenue - scores.probability * scores.expected_order_value).abs() < 1e-9).all()
    assert "revenue" not in set(conn.execute("SELECT feature FROM web_sessions.feature_schema").df().feature)


def test_byo_table_is_typed_from_the_data(byo):
    result, conn = byo
    _assert_complete_run(result, conn, "byo_example")
    import json

    types = {r[0]: json.loads(r[1])["type"] for r in conn.execute("SELECT column_name, spec FROM byo_example.column_types").fetchall()}
    assert types["notes"] == "text" and types["signup_date"] == "datetime" and types["is_partner"] == "boolean"
    assert types["m01"] == "float" and types["segment"] == "string"
    features = set(conn.execute("SELECT feature FROM byo_example.feature_schema").df().feature)
    assert not features & {"notes", "contact_email", "outcome", "account_ref", "signup_date"}
    assert {"m01", "m25", "segment", "is_partner"} <= features


def _byo_config(**update):
    base = load_project_config(DEFS_DIR / "byo_example" / "defs.yaml")
    return _fast(base.model_copy(update=update))


def _failure_text(result) -> str:
    texts = []
    for e in result.all_events:
        if e.event_type_value == "STEP_FAILURE":
            data = e.event_specific_data
            texts.append((data.user_failure_data.description if data.user_failure_data else "") or data.error.message)
    return " ".join(texts)


def test_byo_yaml_mistakes_fail_with_the_column_named(tmp_path):
    byo_table.write(tmp_path, rows=2000, seed=1)
    result = materialize_project(_byo_config(personal_data=["contact_mail"]), tmp_path, raise_on_error=False)
    assert not result.success
    assert "personal_data names unknown column 'contact_mail'" in _failure_text(result)


def test_byo_label_expression_that_does_not_parse(tmp_path):
    byo_table.write(tmp_path, rows=2000, seed=1)
    base = load_project_config(DEFS_DIR / "byo_example" / "defs.yaml")
    bad = base.label.model_copy(update={"positive": "outcome == = 'converted'"})
    result = materialize_project(_byo_config(label=bad), tmp_path, raise_on_error=False)
    assert "label.positive: \"outcome == = 'converted'\" does not parse as SQL" in _failure_text(result)


def test_byo_label_with_no_positives_is_blocked(tmp_path):
    byo_table.write(tmp_path, rows=2000, seed=1)
    base = load_project_config(DEFS_DIR / "byo_example" / "defs.yaml")
    none = base.label.model_copy(update={"positive": "outcome = 'never'"})
    result = materialize_project(_byo_config(label=none), tmp_path, raise_on_error=False)
    failed = {e.check_name for e in result.get_asset_check_evaluations() if not e.passed}
    assert "positive_rate_plausible" in failed
    assert "candidate_models" not in {e.asset_key.path[-1] for e in result.get_asset_materialization_events()}


def test_email_crm_outcomes_from_the_crm_train_the_next_challenger(tmp_path):
    """The email CRM takes won/lost feedback from its YAML alone; the first file already teaches."""
    email_crm.write(tmp_path, rows=1500, seed=3)
    config = _fast(load_project_config(DEFS_DIR / "email_crm" / "defs.yaml"))
    assert materialize_project(config, tmp_path).success
    with duckdb.connect(str(warehouse_file(tmp_path, "email_crm")), read_only=True) as conn:
        ids = [r[0] for r in conn.execute(
            "SELECT mailchimp_id FROM email_crm.validated_contacts ORDER BY mailchimp_id LIMIT 120").fetchall()]
    outcomes = pd.DataFrame({"lead_id": ids, "outcome": ["won", "lost", "lost"] * 40,
                             "outcome_at": "2026-11-20T10:00:00Z"})
    path = tmp_path / config.feedback.folder / "crm_outcomes.csv"
    path.parent.mkdir(parents=True)
    outcomes.to_csv(path, index=False)
    defs = dg.Definitions.merge(project_definitions(config), dg.Definitions(resources=build_resources(tmp_path)))
    result = defs.resolve_job_def("email_crm_pipeline").execute_in_process(
        run_config=feedback_run_config(config, [path], [file_sha256(path)]),
        instance=dg.DagsterInstance.ephemeral())
    assert result.success
    with duckdb.connect(str(warehouse_file(tmp_path, "email_crm")), read_only=True) as conn:
        relabelled = conn.execute("SELECT count(*) FROM email_crm.labels WHERE label_source = 'crm_feedback'").fetchall()
        trained, held = conn.execute("SELECT feedback_rows_trained_on, feedback_rows_held_out "
                                     "FROM email_crm.model_decisions WHERE dagster_run_id = ?", [result.run_id]).fetchall()[0]
    assert relabelled == [(120,)] and held == 60 and trained == 60
