"""daily_scores on a real web_sessions run: a day's partition scores exactly that day's sessions,
as `lead_scores` scores them, and a backfill of several days is one run writing one file a day."""

import dagster as dg
import duckdb
import pandas as pd
import pytest

from leadscore_assets.assets.daily_scoring import daily_scores_file
from leadscore_assets.components.lead_scoring_project import project_definitions
from leadscore_assets.demo_data import web_sessions
from leadscore_assets.lib.project.config import load_project_config
from leadscore_assets.resources import build_resources
from leadscore_assets.resources.warehouse import Warehouse
from leadscore_assets.testing.parity import assert_same_as_lead_scores
from leadscore_assets.testing.runs import DEFS_DIR, fast, materialize_project, warehouse_file

pytestmark = pytest.mark.slow  # a web_sessions run and three scoring runs: `pytest -m slow`

RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


@pytest.fixture(scope="module")
def web_run(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("daily_scores")
    web_sessions.write(data_dir, rows=12000, seed=5)
    config = fast(load_project_config(DEFS_DIR / "web_sessions" / "defs.yaml"))
    assert materialize_project(config, data_dir).success
    with duckdb.connect(str(warehouse_file(data_dir, "web_sessions")), read_only=True) as conn:
        scores = conn.execute("SELECT * FROM web_sessions.lead_scores").df().set_index("lead_id")
    sessions = duckdb.sql(f"SELECT session_id, started_at::DATE::VARCHAR AS day "
                          f"FROM '{data_dir / 'web_sessions' / 'sessions.parquet'}'").df()
    return config, data_dir, scores, sessions


def score_days(config, data_dir, first: str, last: str | None = None) -> dg.ExecuteInProcessResult:
    defs = dg.Definitions.merge(project_definitions(config), dg.Definitions(resources=build_resources(data_dir)))
    job = defs.resolve_job_def("web_sessions_daily_scoring")
    if last is None:
        return job.execute_in_process(partition_key=first, instance=dg.DagsterInstance.ephemeral())
    return job.execute_in_process(tags={RANGE_START: first, RANGE_END: last}, instance=dg.DagsterInstance.ephemeral())


def day_file(data_dir, config, day: str) -> pd.DataFrame:
    return pd.read_parquet(daily_scores_file(Warehouse(directory=str(data_dir / "warehouse")), config, day))


def assert_as_lead_scores(answer: pd.DataFrame, scores: pd.DataFrame) -> None:
    valid = answer[answer.error.isna()]
    assert len(valid) >= 0.9 * len(answer), answer.error.dropna().head().tolist()
    assert_same_as_lead_scores(scores, valid)


def test_a_day_scores_exactly_that_days_sessions_as_lead_scores_does(web_run):
    config, data_dir, scores, sessions = web_run
    day = sessions.day.value_counts().index[0]
    result = score_days(config, data_dir, day)
    assert result.success
    answer = day_file(data_dir, config, day)
    assert sorted(answer.lead_id.astype(str)) == sorted(sessions[sessions.day == day].session_id)
    assert_as_lead_scores(answer, scores)
    assert {"visitor_id"} & set(answer.columns) == set()  # personal data never reaches the scores
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert meta["leads"].value == len(answer) and meta["days"].value == 1


def test_a_backfill_of_several_days_is_one_run_writing_a_file_per_day(web_run):
    config, data_dir, scores, sessions = web_run
    days = sorted(sessions.day.unique())[10:13]
    result = score_days(config, data_dir, days[0], days[-1])
    assert result.success
    for day in days:
        answer = day_file(data_dir, config, day)
        assert len(answer) == (sessions.day == day).sum() > 0
        assert_as_lead_scores(answer, scores)


def test_a_day_without_sessions_writes_an_empty_file(web_run):
    config, data_dir, _, sessions = web_run
    quiet = "2026-08-01"
    assert quiet not in set(sessions.day)
    assert score_days(config, data_dir, quiet).success
    assert len(day_file(data_dir, config, quiet)) == 0
