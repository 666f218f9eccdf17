"""The features asset's split check, on a real (tiny) pipeline run: too few labelled leads
block the run at the features, naming the short split, before any model is trained."""

import dagster as dg

from leadscore_assets.demo_data import linkedin
from leadscore_assets.testing.runs import materialize_project, warehouse_file


def test_too_few_labelled_leads_block_at_the_features_naming_the_short_split(tmp_path, linkedin_config):
    linkedin.write(tmp_path, rows=60, seed=5)  # a handful of positives: the newest (test) leads hold none
    result = materialize_project(linkedin_config, tmp_path, raise_on_error=False)
    assert not result.success
    failed = {e.check_name: e.description for e in result.get_asset_check_evaluations() if not e.passed}
    assert set(failed) == {"splits_have_both_classes"}, failed
    assert "test has 0 positives (needs 2, 2 short)" in failed["splits_have_both_classes"]
    materialized = {e.asset_key.path[-1] for e in result.get_asset_materialization_events()}
    assert "features" in materialized  # written, to be inspected in the staged copy
    assert not materialized & {"candidate_models", "evaluation_report", "champion_model", "published"}
    assert not warehouse_file(tmp_path, "linkedin").exists()  # nothing published
    check = next(e for e in result.get_asset_check_evaluations() if e.check_name == "splits_have_both_classes")
    assert check.asset_key == dg.AssetKey(["linkedin", "features"])
    assert check.metadata["labelled_by_split"].value["test"]["positives"] == 0
