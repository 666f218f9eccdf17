"""Write-audit-publish and one run per project, on real DuckDB files and real file locks."""

import json
import multiprocessing
import os
import subprocess
import sys
import time

import dagster as dg
import duckdb
import pytest

from leadscore_assets.assets.common import warehouse_connection
from leadscore_assets.resources.warehouse import ProjectBusyError, Warehouse


def _run(directory, run_id: str) -> Warehouse:
    warehouse = Warehouse(directory=str(directory))
    warehouse.setup_for_execution(dg.build_init_resource_context())
    warehouse._run_id = run_id
    return warehouse


def _published(warehouse: Warehouse, sql: str):
    with duckdb.connect(str(warehouse.published_path("p")), read_only=True) as conn:
        return conn.execute(sql).fetchall()


def test_a_run_writes_a_staged_copy_that_readers_see_only_once_published(tmp_path):
    first = _run(tmp_path, "run-1")
    with first.connection("p") as conn:
        conn.execute("CREATE SCHEMA p; CREATE TABLE p.scores AS SELECT 1 AS v")
    first.publish("p")
    first.release()
    second = _run(tmp_path, "run-2")
    with second.connection("p") as conn:  # starts from what was published
        assert conn.execute("SELECT v FROM p.scores").fetchall() == [(1,)]
        conn.execute("CREATE OR REPLACE TABLE p.scores AS SELECT 2 AS v")
    assert _published(second, "SELECT v FROM p.scores") == [(1,)]  # blocked before publishing: unchanged
    second.release()
    assert second.staged_path("p").exists()  # and the blocked run's tables stay inspectable


def test_a_second_run_of_the_same_project_stops_at_once_naming_the_first(tmp_path):
    first, second = _run(tmp_path, "run-1"), _run(tmp_path, "run-2")
    first.claim("p")
    started = time.perf_counter()
    with pytest.raises(ProjectBusyError, match="project 'p' is being run by Dagster run run-1"):
        second.claim("p")
    assert time.perf_counter() - started < 1  # no silent wait on a file lock
    second.claim("other")  # other projects are independent
    first.release()
    second.claim("p")
    second.release()


def test_a_killed_run_leaves_no_lock_behind(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time, dagster as dg\n"
        "from leadscore_assets.resources.warehouse import Warehouse\n"
        f"w = Warehouse(directory={str(tmp_path)!r}); w._run_id = 'doomed'; w.claim('p')\n"
        "print('claimed', flush=True); time.sleep(60)\n")], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "claimed"
    with pytest.raises(ProjectBusyError, match="doomed"):
        _run(tmp_path, "run-2").claim("p")
    holder.kill()
    holder.wait()
    _run(tmp_path, "run-3").claim("p")  # the operating system dropped the dead run's lock


def _step_process(directory: str, run_id: str) -> None:
    """What a step process of a multiprocess run does: claim, write, tear its resources down, exit."""
    warehouse = Warehouse(directory=directory)
    warehouse._run_id = run_id
    with warehouse.connection("p") as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS p; CREATE TABLE p.step AS SELECT 1 AS v")
    warehouse.teardown_after_execution(None)


def test_a_multiprocess_run_keeps_the_project_between_its_step_processes(tmp_path):
    step = multiprocessing.get_context("spawn").Process(target=_step_process, args=(str(tmp_path), "run-1"))
    step.start()
    step.join(60)
    assert step.exitcode == 0
    # the step process is gone, but its run (whose executor is this process) is not over
    with pytest.raises(ProjectBusyError, match="being run by Dagster run run-1"):
        _run(tmp_path, "run-2").claim("p")
    next_step = _run(tmp_path, "run-1")  # the run's next step continues its lease and its staged copy
    with next_step.connection("p") as conn:
        assert conn.execute("SELECT v FROM p.step").fetchall() == [(1,)]
    next_step.publish("p")  # the end of the project's part of the run ends the lease
    _run(tmp_path, "run-2").claim("p")


def test_a_lease_left_by_a_run_the_instance_has_finished_is_taken_over(tmp_path):
    """A run killed between steps leaves its lease; once Dagster marks it failed, the next run goes."""

    @dg.op
    def dies() -> None:
        raise RuntimeError("killed")

    @dg.job
    def dead():
        dies()

    with dg.DagsterInstance.ephemeral() as instance:
        failed = dead.execute_in_process(instance=instance, raise_on_error=False)
        assert not failed.success
        (tmp_path / "p").mkdir()
        (tmp_path / "p" / "run.lock").write_text(json.dumps(
            {"run_id": failed.run_id, "pid": os.getpid(), "step_parent_pid": None, "since": "earlier"}))
        warehouse = Warehouse(directory=str(tmp_path))
        warehouse.setup_for_execution(dg.build_init_resource_context(instance=instance))
        warehouse._run_id = "run-2"
        warehouse.claim("p")  # this process is alive, but the instance says that run is over
        assert json.loads((tmp_path / "p" / "run.lock").read_text())["run_id"] == "run-2"


def test_an_asset_connection_is_closed_when_its_body_raises(tmp_path, linkedin_config):
    warehouse = _run(tmp_path, "run-1")
    with pytest.raises(RuntimeError):
        with warehouse_connection(warehouse, linkedin_config) as conn:
            conn.execute("CREATE TABLE t AS SELECT 1 AS x")
            raise RuntimeError("asset failed")
    with duckdb.connect(str(warehouse.staged_path("linkedin")), read_only=True) as ro:
        assert ro.execute("SELECT x FROM t").fetchall() == [(1,)]


def test_a_busy_project_fails_the_asset_with_the_reason(tmp_path, linkedin_config):
    _run(tmp_path, "run-1").claim("linkedin")
    with pytest.raises(dg.Failure, match="being run by Dagster run run-1"):
        with warehouse_connection(_run(tmp_path, "run-2"), linkedin_config):
            pass
