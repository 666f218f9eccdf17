"""Broken exports: quarantined with reasons, and a blocking check stops everything downstream."""

import duckdb
import pandas as pd
import pytest

from leadscore_assets.demo_data import linkedin
from leadscore_assets.testing.runs import materialize_project, warehouse_file


def _write_export(data_dir, mutate) -> None:
    export, _ = linkedin.generate(rows=300, seed=3)
    path = data_dir / "linkedin" / "lemlist_export.csv"
    path.parent.mkdir(parents=True)
    mutate(export, path)


def _materialized(result) -> set[str]:
    return {e.asset_key.path[-1] for e in result.get_asset_materialization_events()}


def _failed_checks(result) -> set[str]:
    return {e.check_name for e in result.get_asset_check_evaluations() if not e.passed}


def _quarantine(data_dir, run_id) -> pd.DataFrame:
    """From the blocked run's staged copy: nothing was published, the reasons stay inspectable."""
    assert not warehouse_file(data_dir, "linkedin").exists()
    with duckdb.connect(str(warehouse_file(data_dir, "linkedin", run_id)), read_only=True) as conn:
        return conn.execute("SELECT * FROM linkedin.quarantined_contacts").df()


def missing_column(export, path):
    export.drop(columns=["campaignName"]).to_csv(path, index=False)


def wrong_types(export, path):
    export["companySize"] = "about " + export["companySize"].astype(str)
    export["createdAt"] = "last tuesday"
    export.to_csv(path, index=False)


def duplicated_ids(export, path):
    """Every id three times with different content: conflicts, not copies (copies collapse)."""
    copies = [export.assign(jobTitle=export.jobTitle.astype(str) + suffix) for suffix in ("", " (2)", " (3)")]
    pd.concat(copies).to_csv(path, index=False)


@pytest.mark.parametrize(
    ("mutate", "failing_check", "reason"),
    [
        (missing_column, "schema_matches_config", "required column 'campaign_name' is missing"),
        (wrong_types, "quarantine_within_limits", "column 'created_at': is not a valid datetime (not a date)"),
        (duplicated_ids, "quarantine_within_limits", "duplicate id (kept first seen at row"),
    ],
)
def test_broken_export_is_quarantined_and_blocks_downstream(tmp_path, linkedin_config, mutate, failing_check, reason):
    _write_export(tmp_path, mutate)
    result = materialize_project(linkedin_config, tmp_path, raise_on_error=False)
    assert not result.success
    assert failing_check in _failed_checks(result)
    done = _materialized(result)
    assert {"raw_contacts", "validated_contacts", "quarantined_contacts"} <= done
    assert not done & {"labels", "features", "candidate_models", "champion_model", "lead_scores"}
    quarantine = _quarantine(tmp_path, result.run_id)
    assert quarantine._quarantine_reason.str.contains(reason, regex=False).any()
    assert quarantine._quarantine_reason.str.contains("lemlist_export.csv row ").all()


def test_empty_file_fails_at_ingestion_naming_the_file(tmp_path, linkedin_config):
    _write_export(tmp_path, lambda export, path: path.write_text(""))
    result = materialize_project(linkedin_config, tmp_path, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "lemlist_export.csv: file is empty" in failure.event_specific_data.user_failure_data.description
    assert not _materialized(result)


def test_header_only_file_blocks_on_too_few_rows(tmp_path, linkedin_config):
    _write_export(tmp_path, lambda export, path: export.head(0).to_csv(path, index=False))
    result = materialize_project(linkedin_config, tmp_path, raise_on_error=False)
    assert "quarantine_within_limits" in _failed_checks(result)
    assert "labels" not in _materialized(result)
