"""The production profile on a real PostgreSQL server started here: the published warehouse as a
PostgreSQL schema (every type round-trips, a publish is all or nothing and readers never see half
of one) and the Dagster instance of deploy/prod/dagster.yaml storing runs and events there."""

import math
import shutil
import threading
import time
from decimal import Decimal
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from leadscore_assets.resources.postgres_warehouse import publish_schema, restore_schema
from leadscore_assets.testing.servers import postgres_missing, postgres_server

pytestmark = [pytest.mark.slow, pytest.mark.scale]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pg():
    reason = postgres_missing()
    if reason:
        pytest.skip(reason)
    with postgres_server() as server:
        yield server


def _pg(pg, sql: str, params=None) -> list[tuple]:
    import psycopg2

    conn = psycopg2.connect(pg["dsn"])
    try:
        with conn, conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()
    finally:
        conn.close()


EVERY_TYPE = """
CREATE SCHEMA p;
CREATE TYPE grade AS ENUM ('A', 'B', 'C', 'D');
CREATE TABLE p.every_type (
    id INTEGER, s VARCHAR, big BIGINT, small SMALLINT, tiny TINYINT, d DOUBLE, f FLOAT, b BOOLEAN,
    ts TIMESTAMP, ts_ns TIMESTAMP_NS, tz TIMESTAMPTZ, dt DATE, t TIME, amount DECIMAL(18, 3), huge HUGEINT,
    iv INTERVAL, u UUID, blob BLOB, g grade, j JSON, tags VARCHAR[], scores DOUBLE[],
    reason STRUCT(feature VARCHAR, weight DOUBLE, path INTEGER[]), m MAP(VARCHAR, INTEGER));
INSERT INTO p.every_type VALUES
 (1, 'plain', 9223372036854775807, -32768, -128, 0.1, 1.5, true,
  TIMESTAMP '2026-01-05 12:34:56.123456', TIMESTAMP_NS '2026-01-05 12:34:56.123456', TIMESTAMPTZ '2026-01-05 12:34:56.123456+02',
  DATE '2024-02-29', TIME '23:59:59.999999', 12345678901234.567, 170141183460469231731687303715884105727,
  INTERVAL '1 month 2 days 03:04:05.006', 'b7c5d1a2-3e4f-4a5b-8c6d-7e8f9a0b1c2d', '\\x00\\xff\\x10'::BLOB, 'A',
  '{"b": [1, 2], "a": "x"}', ['ceo', 'founder'], [0.25, 1/3], {'feature': 'job_title', 'weight': -0.125, 'path': [1, 2]},
  MAP {'a': 1, 'b': 2}),
 (2, '', -9223372036854775808, 32767, 127, 'NaN', 'Infinity', false,
  TIMESTAMP '1970-01-01 00:00:00', TIMESTAMP_NS '1999-12-31 23:59:59.999999', TIMESTAMPTZ '2026-07-01 00:00:00+00',
  DATE '1900-01-01', TIME '00:00:00', -0.001, -1, - INTERVAL '1 day' + INTERVAL '2 hours', NULL, ''::BLOB, 'D',
  '[]', [], [], {'feature': '', 'weight': 'NaN', 'path': []}, MAP {}),
 (3, 'comma, "quote"' || chr(10) || 'newline\\N ' || chr(10) || '\\.' || chr(10) || 'tab' || chr(9) || ' é ✓ 🚀',
  0, 0, 0, '-Infinity', 1e-38, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  ['', NULL, 'a,b'], [NULL, 1e-310], {'feature': NULL, 'weight': NULL, 'path': NULL}, NULL),
 (4, '\\.', NULL, NULL, NULL, 5e-324, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL),
 (5, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL);
CREATE TABLE p.empty (lead_id VARCHAR, probability DOUBLE, decided_at TIMESTAMP);
CREATE TABLE other.not_published AS SELECT 1 AS x;
"""


def _types(conn) -> list[tuple]:
    return conn.execute("SELECT table_name, column_name, data_type FROM duckdb_columns() WHERE schema_name = 'p' "
                        "ORDER BY table_name, column_index").fetchall()


def _rows(conn, table: str) -> list[tuple]:
    """Rows in id order, NaN made comparable (NaN != NaN)."""
    def same(v):
        if isinstance(v, float) and math.isnan(v):
            return "NaN"
        if isinstance(v, dict):
            return {k: same(x) for k, x in v.items()}
        if isinstance(v, list):
            return [same(x) for x in v]
        return v
    return [tuple(same(v) for v in row) for row in conn.execute(f"SELECT * FROM p.{table} ORDER BY ALL").fetchall()]


def test_every_type_round_trips_through_postgresql(pg, tmp_path):
    source = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(source)) as conn:
        conn.execute("CREATE SCHEMA other")
        conn.execute(EVERY_TYPE)
    published = publish_schema(pg["dsn"], source, "p")
    assert published == {"every_type": 5, "empty": 0}

    # readers in PostgreSQL get native types (nested ones as jsonb they can query)
    pg_types = dict(_pg(pg, "SELECT column_name, data_type FROM information_schema.columns "
                            "WHERE table_schema = 'p' AND table_name = 'every_type'"))
    assert pg_types["s"] == "text" and pg_types["big"] == "bigint" and pg_types["d"] == "double precision"
    assert pg_types["b"] == "boolean" and pg_types["ts"] == "timestamp without time zone"
    assert pg_types["tz"] == "timestamp with time zone" and pg_types["dt"] == "date" and pg_types["amount"] == "numeric"
    assert pg_types["tags"] == pg_types["m"] == "jsonb" and pg_types["j"] == "json"
    assert pg_types["reason"] == "text"  # its JSON holds NaN, which jsonb refuses
    assert _pg(pg, "SELECT m->>'b', tags->>1, amount FROM p.every_type WHERE id = 1") == \
        [("2", "founder", Decimal("12345678901234.567"))]
    assert _pg(pg, "SELECT count(*) FROM information_schema.schemata WHERE schema_name LIKE 'other%'")[0][0] == 0

    restored = tmp_path / "elsewhere" / "warehouse.duckdb"
    assert restore_schema(pg["dsn"], "p", restored)
    with duckdb.connect(str(source), read_only=True) as a, duckdb.connect(str(restored), read_only=True) as b:
        assert _types(b) == _types(a)
        for table in ("every_type", "empty"):
            assert _rows(b, table) == _rows(a, table), table
        assert b.execute("SELECT s FROM p.every_type WHERE id = 2").fetchall() == [("",)]  # empty string, not NULL
        assert b.execute("SELECT s FROM p.every_type WHERE id = 5").fetchall() == [(None,)]
    assert not list(restored.parent.glob(".*"))  # no temp file left beside it


def test_a_file_without_the_project_publishes_nothing(pg, tmp_path):
    """An empty or wrong file must not wipe what readers have."""
    publish_schema(pg["dsn"], _warehouse(tmp_path / "v1.duckdb", "s", 2, ("a",)), "s")
    with pytest.raises(ValueError, match="no tables"):
        publish_schema(pg["dsn"], _warehouse(tmp_path / "other.duckdb", "not_s", 2, ("a",)), "s")
    assert _pg(pg, "SELECT count(*) FROM s.a") == [(2,)]


def test_restore_says_so_when_postgresql_holds_nothing_for_the_project(pg, tmp_path):
    target = tmp_path / "warehouse.duckdb"
    assert restore_schema(pg["dsn"], "never_published", target) is False
    assert not target.exists()


def _warehouse(path: Path, project: str, rows: int, tables: tuple[str, ...], bad: bool = False) -> Path:
    with duckdb.connect(str(path)) as conn:
        conn.execute(f"CREATE SCHEMA {project}")
        for name in tables:
            conn.execute(f"CREATE TABLE {project}.{name} AS SELECT range AS i, 'row ' || range AS s, {rows} AS version "
                         f"FROM range({rows})")
        if bad:  # PostgreSQL text cannot hold a NUL byte: the last table's COPY fails
            conn.execute(f"CREATE TABLE {project}.zz_bad AS SELECT 'nul ' || chr(0) AS s")
    return path


def test_a_publish_that_fails_midway_leaves_the_old_tables(pg, tmp_path):
    assert publish_schema(pg["dsn"], _warehouse(tmp_path / "v1.duckdb", "q", 3, ("a", "b")), "q") == {"a": 3, "b": 3}
    with pytest.raises(Exception, match="0x00"):
        publish_schema(pg["dsn"], _warehouse(tmp_path / "v2.duckdb", "q", 7, ("a", "b", "c"), bad=True), "q")
    assert _pg(pg, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'q' ORDER BY 1") == \
        [("a",), ("b",)]
    assert _pg(pg, "SELECT count(*), max(version) FROM q.a") == [(3, 3)]
    assert _pg(pg, "SELECT count(*) FROM information_schema.schemata WHERE schema_name LIKE 'q\\_\\_%'")[0][0] == 0
    assert not list(tmp_path.glob(".pgcopy-*"))


def test_readers_see_the_old_or_the_new_tables_never_a_mix(pg, tmp_path):
    old, new = 1_000, 150_000
    publish_schema(pg["dsn"], _warehouse(tmp_path / "old.duckdb", "r", old, ("a", "b")), "r")
    source = _warehouse(tmp_path / "new.duckdb", "r", new, ("a", "b", "c"))
    seen: set[tuple] = set()
    errors: list[Exception] = []
    done = threading.Event()

    def read():
        import psycopg2

        conn = psycopg2.connect(pg["dsn"])
        conn.autocommit = True  # each statement its own snapshot, as a dashboard's queries
        with conn.cursor() as cur:
            while not done.is_set():
                try:
                    cur.execute("SELECT (SELECT count(*) FROM r.a), (SELECT max(version) FROM r.b), "
                                "(SELECT count(*) FROM information_schema.tables WHERE table_schema = 'r'), "
                                "(SELECT count(*) FROM information_schema.schemata WHERE schema_name <> 'r' "
                                " AND schema_name LIKE 'r%')")
                    seen.add(cur.fetchone())
                except Exception as error:  # noqa: BLE001 - a reader that fails saw a half-published schema
                    errors.append(error)
        conn.close()

    reader = threading.Thread(target=read)
    reader.start()
    try:
        time.sleep(0.3)
        publish_schema(pg["dsn"], source, "r")
        time.sleep(0.3)
    finally:
        done.set()
        reader.join(timeout=60)
    assert not errors, errors[:3]
    assert seen == {(old, old, 2, 0), (new, new, 3, 0)}


@dg.asset
def trivial() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"rows": 3})


def test_the_prod_instance_keeps_runs_and_events_in_postgresql(pg, tmp_path, monkeypatch):
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage

    for key, value in pg["env"].items():
        monkeypatch.setenv(key, value)
    shutil.copy(ROOT / "deploy" / "prod" / "dagster.yaml", tmp_path)
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        limits = instance.run_coordinator.get_run_queue_config().tag_concurrency_limits
        assert {"key": "leadscore/project", "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in limits
        assert instance.run_monitoring_enabled
        result = dg.materialize([trivial], instance=instance)
        assert result.success
    run_id = result.run_id
    assert _pg(pg, "SELECT status FROM runs WHERE run_id = %s", (run_id,)) == [("SUCCESS",)]
    events = {e for (e,) in _pg(pg, "SELECT DISTINCT dagster_event_type FROM event_logs WHERE run_id = %s", (run_id,))}
    # run start / success keep their old names in storage
    assert {"PIPELINE_START", "STEP_SUCCESS", "ASSET_MATERIALIZATION", "PIPELINE_SUCCESS"} <= events
    assert _pg(pg, "SELECT count(*) FROM asset_keys WHERE asset_key = %s", ('["trivial"]',)) == [(1,)]


def test_a_pipeline_run_publishes_to_postgresql_and_the_next_run_on_another_machine_starts_from_it(pg, tmp_path):
    """Two linkedin runs, each with an empty local warehouse directory (two machines): the first
    publishes its tables to PostgreSQL, the second starts from them (its decision history holds
    both runs) and publishes again."""
    from leadscore_assets.demo_data import linkedin
    from leadscore_assets.lib.project.config import load_project_config
    from leadscore_assets.resources import build_resources
    from leadscore_assets.resources.warehouse import Warehouse
    from leadscore_assets.testing.runs import DEFS_DIR, with_candidates
    from leadscore_assets.components.lead_scoring_project import project_definitions

    data_dir = tmp_path / "data"
    linkedin.write(data_dir, rows=1500, seed=3)
    config = with_candidates(load_project_config(DEFS_DIR / "linkedin" / "defs.yaml"),
                             ["dummy", "logistic_regression"], trials=0)
    runs = []
    for machine in ("machine-1", "machine-2"):
        resources = build_resources(data_dir)
        resources["warehouse"] = Warehouse(directory=str(tmp_path / machine), postgres_url=pg["dsn"],
                                           tracking_uri=resources["mlflow_store"].tracking_uri)  # it ends abandoned runs
        defs = dg.Definitions.merge(project_definitions(config),
                                    dg.Definitions(resources=resources, executor=dg.in_process_executor))
        result = defs.resolve_job_def("linkedin_pipeline").execute_in_process(instance=dg.DagsterInstance.ephemeral())
        assert result.success
        runs.append(result.run_id)
    decided_by = [r[0] for r in _pg(pg, "SELECT dagster_run_id FROM linkedin.model_decisions ORDER BY decided_at")]
    assert decided_by == runs  # the second machine started from what the first published
    scored = _pg(pg, "SELECT count(*) FROM linkedin.lead_scores")[0][0]
    with duckdb.connect(str(tmp_path / "machine-2" / "linkedin" / "warehouse.duckdb"), read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM linkedin.lead_scores").fetchall()[0][0] == scored > 1000
