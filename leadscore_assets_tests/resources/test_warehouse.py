"""Write-audit-publish and one run per project, on real DuckDB files and real file locks."""

import json
import logging
import multiprocessing
import os
import subprocess
import sys
import time

import dagster as dg
import duckdb
import pytest

from leadscore_assets.assets.common import warehouse_connection
from leadscore_assets.resources.warehouse import ProjectBusyError, Warehouse, process_start, staged_file


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


@dg.op
def _step() -> None:
    pass


@dg.job
def linkedin_pipeline():
    _step()


def _started_run(instance: dg.DagsterInstance) -> str:
    """A run the instance shows as running (what a `dagster job execute` writes as it starts)."""
    return instance.create_run_for_job(linkedin_pipeline, status=dg.DagsterRunStatus.STARTED).run_id


def _claim_in_a_run(instance: dg.DagsterInstance, directory) -> dg.ExecuteInProcessResult:
    """A real run whose one asset claims project 'p', as the first step of a pipeline does."""

    @dg.asset
    def first_step(warehouse: Warehouse) -> None:
        with warehouse.connection("p") as conn:
            conn.execute("CREATE TABLE written AS SELECT 1 AS v")

    return dg.materialize([first_step], instance=instance, raise_on_error=False,
                          resources={"warehouse": Warehouse(directory=str(directory))})


def _holder(tmp_path, home, run_id: str) -> subprocess.Popen:
    """Another process (a `dagster job execute` of the same instance) holding the lease of a STARTED run."""
    holder = subprocess.Popen([sys.executable, "-c", (
        "import time, dagster as dg\n"
        "from leadscore_assets.resources.warehouse import Warehouse\n"
        f"instance = dg.DagsterInstance.from_config({str(home)!r})\n"
        f"w = Warehouse(directory={str(tmp_path / 'wh')!r})\n"
        "w.setup_for_execution(dg.build_init_resource_context(instance=instance))\n"
        f"w._run_id = {run_id!r}; w.claim('p')\n"
        "print('claimed', flush=True); time.sleep(120)\n")], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "claimed"
    return holder


def test_a_run_killed_with_sigkill_is_taken_over_at_once_though_the_instance_says_started(tmp_path):
    """`kill -9` of a CLI run leaves it STARTED in the instance; the next run must not wait on it."""
    home = tmp_path / "home"
    home.mkdir()
    with dg.DagsterInstance.local_temp(str(home)) as instance:
        doomed = _started_run(instance)
        holder = _holder(tmp_path, home, doomed)
        try:  # while it lives, its run holds the project
            blocked = _claim_in_a_run(instance, tmp_path / "wh")
            assert not blocked.success
            error = blocked.get_step_failure_events()[0].event_specific_data.error
            assert f"being run by Dagster run {doomed}" in str(error)
        finally:
            holder.kill()  # SIGKILL: no teardown, no release, the instance still says STARTED
            holder.wait()
        assert instance.get_run_by_id(doomed).status == dg.DagsterRunStatus.STARTED
        started = time.perf_counter()
        after = _claim_in_a_run(instance, tmp_path / "wh")
        assert after.success and time.perf_counter() - started < 30
        assert staged_file(tmp_path / "wh", "p", after.run_id).exists()  # it wrote its copy
        warnings = [e.message for e in instance.all_logs(after.run_id) if e.level == logging.WARNING]
        assert any(f"taking over the lease of Dagster run {doomed}" in w for w in warnings), warnings
        assert instance.get_run_by_id(doomed).status == dg.DagsterRunStatus.FAILURE  # no longer shown running


def test_a_live_run_the_instance_says_started_still_blocks(tmp_path):
    with dg.DagsterInstance.ephemeral() as instance:
        (tmp_path / "p").mkdir()
        running = _started_run(instance)
        (tmp_path / "p" / "run.lock").write_text(json.dumps(  # this process: alive, and the same process
            {"run_id": running, "pid": os.getpid(), "pid_start": process_start(os.getpid()),
             "step_parent_pid": None, "since": "earlier"}))
        with pytest.raises(ProjectBusyError, match=running):
            _run(tmp_path, "run-2").claim("p")


def test_a_reused_pid_does_not_keep_a_dead_runs_lease(tmp_path):
    """The lease's pid now belongs to another process (started at another time): its run is gone."""
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "run.lock").write_text(json.dumps(
        {"run_id": "long-gone", "pid": os.getpid(), "pid_start": "1", "step_parent_pid": os.getppid(),
         "step_parent_start": "2", "since": "earlier"}))
    _run(tmp_path, "run-2").claim("p")
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
