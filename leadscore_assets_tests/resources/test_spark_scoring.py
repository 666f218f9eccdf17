"""Spark batch scoring (resources/spark_scoring.py): the champion through MLflow's `spark_udf`.

web_sessions is run once on 3,000 demo sessions (two candidates, no search); the registered
champion then scores every raw session on Spark in local mode and must answer as
`web_sessions.lead_scores` did: the same probability to 1e-9, decile, grade, contact flag and
expected order value, the sessions the run quarantined coming back with an `error` and null
scores. Reasons (off by default on Spark) are compared on a subset with reasons on. A batch with
no valid lead at all is refused by the model (as over HTTP), which stops the job: that is pinned
too. Needs Java; skipped, saying so, without it.
"""

import shutil

import duckdb
import numpy as np
import pandas as pd
import pytest

from leadscore_assets.demo_data import web_sessions
from leadscore_assets.lib.project.config import load_project_config
from leadscore_assets.lib.scoring.explain import REASON_COLUMNS
from leadscore_assets.testing.runs import DEFS_DIR, fast, materialize_project, warehouse_file

pytestmark = [
    pytest.mark.slow,
    pytest.mark.scale,
    pytest.mark.skipif(shutil.which("java") is None,
                       reason="Spark needs Java: apt-get install openjdk-17-jre-headless"),
]
pyspark = pytest.importorskip("pyspark", reason="pyspark is not installed (pip install -e '.[scale]')")

from leadscore_assets.resources.spark_scoring import RefusedBatch, local_spark, score, write_scores  # noqa: E402

SESSIONS = 3000


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """One web_sessions run: its data directory, tracking URI and published tables."""
    data_dir = tmp_path_factory.mktemp("spark_web_sessions")
    web_sessions.write(data_dir, rows=SESSIONS, seed=5)
    result = materialize_project(fast(load_project_config(DEFS_DIR / "web_sessions" / "defs.yaml")), data_dir,
                                 raise_on_error=False)
    assert result.success, [e.check_name for e in result.get_asset_check_evaluations() if not e.passed]
    with duckdb.connect(str(warehouse_file(data_dir, "web_sessions")), read_only=True) as conn:
        scores = conn.execute("SELECT * FROM web_sessions.lead_scores").df().set_index("lead_id")
        quarantined = set(conn.execute("SELECT session_id FROM web_sessions.quarantined_contacts").df().session_id)
    return {"data_dir": data_dir, "tracking_uri": f"sqlite:///{data_dir / 'mlflow' / 'mlflow.db'}",
            "source": data_dir / "web_sessions" / "sessions.parquet", "scores": scores, "quarantined": quarantined}


@pytest.fixture(scope="module")
def spark(tmp_path_factory):
    session = local_spark(cores=2, driver_memory="1g", local_dir=tmp_path_factory.mktemp("spark_local"))
    yield session
    session.stop()


def test_spark_scores_every_session_as_lead_scores(project, spark, tmp_path):
    source = spark.read.parquet(str(project["source"]))
    invalid = source.limit(1).selectExpr(
        "'s_invalid_pages' AS session_id", *[f"`{c}`" for c in source.columns if c not in ("session_id", "pages_viewed")],
        "CAST(-3 AS BIGINT) AS pages_viewed").select(*source.columns)
    folder = write_scores(score(spark, project["tracking_uri"], "web_sessions", source.unionByName(invalid)),
                          tmp_path / "spark_scores")
    answer = pd.read_parquet(folder)

    assert len(answer) == SESSIONS + 1
    assert answer.lead_id.notna().all() and answer.lead_id.is_unique
    failed = answer[answer.error.notna()].set_index("lead_id")
    assert set(failed.index) == project["quarantined"] | {"s_invalid_pages"}
    bad = failed.loc["s_invalid_pages"]
    assert "'s_invalid_pages'" in bad.error and "pages_viewed" in bad.error, bad.error
    assert failed[["probability", "decile", "grade", "contact", "expected_order_value"]].isna().all(axis=None)

    scored = answer[answer.error.isna()].set_index("lead_id")
    expected = project["scores"]
    assert sorted(scored.index) == sorted(expected.index)
    expected = expected.loc[scored.index]
    np.testing.assert_allclose(scored.probability, expected.probability, rtol=0, atol=1e-9)
    np.testing.assert_allclose(scored.expected_order_value, expected.expected_order_value, rtol=0, atol=1e-9)
    for column in ("decile", "grade", "contact"):
        assert scored[column].tolist() == expected[column].tolist(), column
    assert scored[REASON_COLUMNS].isna().all(axis=None)  # reasons off by default


def test_spark_reasons_on_match_lead_scores(project, spark):
    scores = project["scores"]
    some = spark.createDataFrame(pd.DataFrame({"session_id": scores.index[:150]}))
    source = spark.read.parquet(str(project["source"])).join(some, "session_id")
    answer = score(spark, project["tracking_uri"], "web_sessions", source, reasons=True).toPandas().set_index("lead_id")
    assert len(answer) == 150 and answer.error.isna().all()
    expected = scores.loc[answer.index]
    np.testing.assert_allclose(answer.probability, expected.probability, rtol=0, atol=1e-9)
    for column in REASON_COLUMNS:
        assert answer[column].fillna("-").tolist() == expected[column].fillna("-").tolist(), column


def test_a_batch_of_only_invalid_leads_stops_the_job_naming_them(project, spark, tmp_path):
    from pyspark.sql import functions as F

    source = spark.read.parquet(str(project["source"])).limit(3).withColumn("pages_viewed", F.lit(-1).cast("bigint"))
    with pytest.raises(RefusedBatch) as refused:
        write_scores(score(spark, project["tracking_uri"], "web_sessions", source), tmp_path / "refused")
    assert "column 'pages_viewed'" in str(refused.value) and "fails check: >= 1" in str(refused.value)
