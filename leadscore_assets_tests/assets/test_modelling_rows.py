"""A features table larger than `models.max_rows`: the modelling steps learn from and judge on a
stratified sample, say so on their pages, and every lead is still scored."""

import duckdb
import pytest

from leadscore_assets.demo_data import linkedin
from leadscore_assets.testing.runs import fast, materialize_project, warehouse_file

pytestmark = pytest.mark.slow
MAX_ROWS = 900


@pytest.fixture(scope="module")
def sampled_run(tmp_path_factory, linkedin_config):
    data_dir = tmp_path_factory.mktemp("sampled")
    linkedin.write(data_dir, rows=2500, seed=5)
    config = fast(linkedin_config)
    config = config.model_copy(update={"models": config.models.model_copy(update={"max_rows": MAX_ROWS})})
    return materialize_project(config, data_dir), data_dir


def page(result, asset: str) -> dict:
    [event] = [m for m in result.get_asset_materialization_events()
               if m.asset_key.path == ["linkedin", asset]]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def test_each_modelling_step_names_the_sample_it_used(sampled_run):
    result, data_dir = sampled_run
    assert result.success
    with duckdb.connect(str(warehouse_file(data_dir, "linkedin")), read_only=True) as conn:
        total = conn.execute("SELECT count(*) FROM linkedin.features").fetchall()[0][0]
    assert total > MAX_ROWS
    for asset in ("candidate_models", "evaluation_report", "champion_model", "drift_reports", "data_profile"):
        said = page(result, asset)["modelling_rows"]
        assert f"of {total:,} rows" in said and f"max_rows = {MAX_ROWS:,}" in said, (asset, said)


def test_every_lead_is_scored_though_the_model_saw_a_sample(sampled_run):
    _, data_dir = sampled_run
    with duckdb.connect(str(warehouse_file(data_dir, "linkedin")), read_only=True) as conn:
        leads = conn.execute("SELECT count(*) FROM linkedin.features").fetchall()[0][0]
        scored = conn.execute("SELECT count(DISTINCT lead_id) FROM linkedin.lead_scores").fetchall()[0][0]
        held_out = conn.execute("SELECT held_out_rows FROM linkedin.model_decisions").fetchall()[-1][0]
        test_rows = conn.execute("SELECT count(*) FROM linkedin.features WHERE split = 'test'").fetchall()[0][0]
    assert scored == leads
    assert 0 < held_out < test_rows  # the champion comparison judged on the sample's test rows
