"""The whole LinkedIn graph materialized in-process on real DuckDB and MLflow stores."""

import json
from pathlib import Path

import duckdb
import mlflow
import pandas as pd
import pytest

from leadscore_assets.assets.tables import declared
from leadscore_assets.lib.features.frame import feature_set
from leadscore_assets.testing.runs import warehouse_file
from leadscore_assets.lib.scoring.registry import load_version

PII_VALUES_SAMPLE = 20


@pytest.fixture(scope="module")
def run(linkedin_run):
    return linkedin_run


@pytest.fixture(scope="module")
def warehouse(run):
    _, data_dir = run
    conn = duckdb.connect(str(warehouse_file(data_dir, "linkedin")), read_only=True)
    yield conn
    conn.close()


def test_run_succeeds_and_every_check_passes(run):
    result, _ = run
    assert result.success
    evaluations = result.get_asset_check_evaluations()
    assert {e.check_name for e in evaluations} >= {
        "schema_matches_config", "ids_unique", "rows_accounted_for", "quarantine_within_limits",
        "positive_rate_plausible", "no_personal_data", "beats_dummy_baseline",
    }
    assert all(e.passed for e in evaluations), [e.check_name for e in evaluations if not e.passed]


def test_every_raw_row_is_validated_or_quarantined_once(warehouse):
    raw = warehouse.execute("SELECT _row_number FROM linkedin.raw_contacts").df()
    valid = warehouse.execute("SELECT _row_number FROM linkedin.validated_contacts").df()
    quarantined = warehouse.execute("SELECT _row_number, _quarantine_reason FROM linkedin.quarantined_contacts").df()
    seen = pd.concat([valid._row_number, quarantined._row_number])
    assert sorted(seen) == sorted(raw._row_number)
    assert len(quarantined) > 0  # the demo export is messy on purpose
    named = r"lemlist_export\.csv row \d+( \(lead '[^']+'\))?( column '|: exact duplicate of row \d+)"
    assert quarantined._quarantine_reason.str.contains(named).all()


def test_duplicates_and_bad_emails_are_quarantined_with_reasons(warehouse):
    quarantined = warehouse.execute("SELECT * FROM linkedin.quarantined_contacts").df()
    reasons = quarantined._quarantine_reason
    copies = quarantined[quarantined._collapsed_duplicate]  # the export repeats ~1% of rows verbatim
    assert len(copies) > 0 and copies._quarantine_reason.str.contains("exact duplicate of row").all()
    kept = warehouse.execute("SELECT count(DISTINCT lead_id) FROM linkedin.validated_contacts").fetchall()[0][0]
    assert kept == warehouse.execute("SELECT count(*) FROM linkedin.validated_contacts").fetchall()[0][0]
    assert reasons.str.contains("column 'email'").any()
    # email values are personal data: the reason names the column, never the value
    assert not reasons.str.contains("@").any()


def test_labels_leave_open_leads_unlabelled(warehouse):
    df = warehouse.execute("""
        SELECT v.status, v.last_state, l.label FROM linkedin.validated_contacts v
        JOIN linkedin.labels l ON l.lead_id = v.lead_id""").df()
    assert (df.loc[df.last_state.isin(["linkedinreplied", "linkedininterested"]), "label"] == 1).all()
    open_leads = df[(df.status != "done") & ~df.last_state.isin(["linkedinreplied", "linkedininterested"])]
    assert len(open_leads) > 0 and open_leads.label.isna().all()


def test_features_hold_no_personal_or_post_outcome_data(warehouse, linkedin_config):
    cols = set(warehouse.execute("SELECT * FROM linkedin.features LIMIT 0").df().columns)
    assert not cols & {*linkedin_config.personal_data, *linkedin_config.features.exclude}
    assert set(feature_set(linkedin_config).columns) <= cols


def test_out_of_time_split_puts_newest_leads_in_test(warehouse):
    df = warehouse.execute("""
        SELECT f.split, v.created_at FROM linkedin.features f JOIN linkedin.validated_contacts v USING (lead_id)
        WHERE f.split <> 'unlabelled'""").df()
    assert df[df.split == "train"].created_at.max() <= df[df.split == "validation"].created_at.min()
    assert df[df.split == "validation"].created_at.max() <= df[df.split == "test"].created_at.min()
    assert warehouse.execute("SELECT count(*) FROM linkedin.features WHERE split='train' AND label IS NULL").fetchall()[0][0] == 0


def test_champion_alias_is_loadable_and_beats_dummy(run, warehouse, linkedin_config):
    _, data_dir = run
    uri = f"sqlite:///{data_dir / 'mlflow' / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri, registry_uri=uri)
    version = client.get_model_version_by_alias(linkedin_config.registered_model_name, "champion")
    # the sklearn pipeline inside the served model
    model = load_version(linkedin_config.registered_model_name, "champion", client)
    features = warehouse.execute("SELECT * FROM linkedin.features WHERE split='test'").df()
    p = model.predict_proba(features[feature_set(linkedin_config).columns])[:, 1]
    assert ((p >= 0) & (p <= 1)).all()
    auc, dummy_auc = warehouse.execute("SELECT test_roc_auc, dummy_test_roc_auc FROM linkedin.evaluation_report").fetchall()[0]
    assert auc > dummy_auc + 0.05
    assert version.tags["leadscore.run_id"] == warehouse.execute("SELECT run_id FROM linkedin.evaluation_report").fetchall()[0][0]


def test_scores_cover_every_lead_without_personal_data(warehouse, linkedin_config):
    scores = warehouse.execute("SELECT * FROM linkedin.lead_scores").df()
    assert len(scores) == warehouse.execute("SELECT count(*) FROM linkedin.validated_contacts").fetchall()[0][0]
    reason_cols = {f"reason_{i}_{d}" for i in (1, 2, 3) for d in ("up", "down")}
    assert set(scores.columns) == {"lead_id", "probability", "decile", "grade", "contact", "threshold",
                                   "reasons_up", "reasons_down", "model_name", "model_version", "scored_at", *reason_cols}
    assert not set(scores.columns) & set(linkedin_config.personal_data)
    assert scores.decile.between(1, 10).all()
    top = scores[scores.decile == 1].probability.min()
    assert top >= scores[scores.decile == 2].probability.max()


def test_contact_flag_and_grades_follow_the_champions_threshold(warehouse):
    scores = warehouse.execute("SELECT probability, contact, grade, threshold FROM linkedin.lead_scores").df()
    t = scores.threshold.iloc[0]
    assert 0 < t < 1
    assert (scores.contact == (scores.probability >= t)).all()
    assert set(scores.loc[scores.contact, "grade"]) <= {"A", "B"}
    assert set(scores.loc[~scores.contact, "grade"]) <= {"C", "D"}


def test_reasons_name_real_features_with_the_sign_of_their_contribution(warehouse):
    feature_names = set(warehouse.execute("SELECT feature FROM linkedin.feature_schema").df().feature)
    scores = warehouse.execute("SELECT reasons_up, reasons_down, reason_1_up FROM linkedin.lead_scores").df()
    ups = [r for cell in scores.reasons_up for r in json.loads(cell)]
    downs = [r for cell in scores.reasons_down for r in json.loads(cell)]
    assert ups and downs
    assert {f for r in ups + downs for f in r["features"]} <= feature_names
    assert {r["feature"] for r in ups + downs} <= feature_names | {"created_at"}  # linkedin's one expanded date
    assert all(r["contribution"] > 0 and r["direction"] == "up" for r in ups)
    assert all(r["contribution"] < 0 and r["direction"] == "down" for r in downs)
    # created_at's weekday and hour read as one reason about that date, never as two parts
    assert any(r["feature"] == "created_at" and set(r["features"]) == {"created_at_weekday", "created_at_hour"}
               for r in ups + downs)
    first = scores.reason_1_up.dropna()
    assert first.str.match(r"^(?:[A-Z][a-z ]+(?: is .+|: .+| given| not given)|No [a-z ]+) \(raises the score\)$").all()
    assert not first.str.contains("_").any()  # words, not column names


def test_first_model_is_promoted_and_the_decision_recorded(warehouse, run, linkedin_config):
    decisions = warehouse.execute("SELECT * FROM linkedin.model_decisions").df()
    assert list(decisions.decision) == ["promoted"]
    assert "no champion yet" in decisions.reason.iloc[0]
    _, data_dir = run
    client = mlflow.MlflowClient(f"sqlite:///{data_dir / 'mlflow' / 'mlflow.db'}")
    version = client.get_model_version_by_alias(linkedin_config.registered_model_name, "champion")
    assert version.tags["leadscore.decision"] == "promoted"
    assert float(version.tags["leadscore.threshold"]) > 0


def test_evaluation_report_has_calibration_threshold_and_model_card(run):
    result, data_dir = run
    mat = next(e for e in result.get_asset_materialization_events()
               if e.asset_key.path[-1] == "evaluation_report").materialization
    meta = mat.metadata
    assert meta["calibration"].value in {"none", "sigmoid", "isotonic"}
    assert "## Decision threshold" in meta["model_card"].value and "95% CI" in meta["model_card"].value
    report_dir = meta["report_dir"].value
    for png in ("roc", "precision_recall", "calibration", "lift", "confusion_matrix", "feature_importance",
                "reliability", "shap_summary"):
        assert (Path(report_dir) / f"{png}.png").stat().st_size > 1000, png


def test_no_personal_data_in_mlflow_params_or_artifacts(run, warehouse):
    _, data_dir = run
    pii = warehouse.execute(
        f"SELECT email, first_name || ' ' || last_name, phone, linkedin_url FROM linkedin.validated_contacts "
        f"LIMIT {PII_VALUES_SAMPLE}").fetchall()
    needles = {v for row in pii for v in row if v}
    uri = f"sqlite:///{data_dir / 'mlflow' / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert runs
    for r in runs:
        text = " ".join(f"{k}={v}" for k, v in r.data.params.items())
        assert not any(n in text for n in needles)
        for col in ("email", "first_name", "last_name", "phone", "picture", "linkedin_url"):
            assert col not in r.data.params.get("features", "").split(",")
    artifacts = data_dir / "mlflow" / "artifacts"
    for path in artifacts.rglob("*"):
        if path.is_file() and path.suffix in {".json", ".csv", ".txt", ".yaml", ".md", ""}:
            content = path.read_text(errors="ignore")
            assert not any(n in content for n in needles), path


def test_every_table_written_is_declared_in_the_warehouse_contract(warehouse, linkedin_config):
    """Each table is an asset in the lineage (assets/tables.py): nothing is written behind it."""
    written = {r[0] for r in warehouse.execute(
        "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'linkedin'").fetchall()}
    contract = declared(linkedin_config)
    assert written - {t.name for t in contract} == set()
    # what a run without feedback files leaves unwritten: the history of landed files only
    assert {t.name for t in contract} - written <= {t.name for t in contract if t.history}
