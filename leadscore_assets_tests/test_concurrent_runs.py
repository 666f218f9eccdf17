"""Two runs of one project at once, for real: two `dagster job execute` processes on one
instance and one data directory. The second stops at once naming the first; nothing mixes."""

import json
import pytest
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import duckdb

from leadscore_assets.demo_data import linkedin
from leadscore_assets.testing.runs import warehouse_file

pytestmark = pytest.mark.slow  # two real `dagster job execute` processes: `pytest -m slow`

ROOT = Path(__file__).resolve().parents[1]
DAGSTER = str(Path(sys.executable).with_name("dagster"))


def _launch(env: dict) -> subprocess.Popen:
    return subprocess.Popen([DAGSTER, "job", "execute", "-m", "leadscore_assets.definitions", "-j", "linkedin_pipeline"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_the_local_instance_queues_runs_of_one_project_and_monitors_dead_runs(tmp_path):
    shutil.copy(ROOT / "deploy" / "local" / "dagster.yaml", tmp_path)
    instance = dg.DagsterInstance.from_config(str(tmp_path))
    limits = instance.run_coordinator.get_run_queue_config().tag_concurrency_limits
    assert {"key": "leadscore/project", "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in limits
    assert instance.run_monitoring_enabled


def test_a_second_run_of_a_project_stops_at_once_naming_the_first(tmp_path):
    data_dir, home = tmp_path / "data", tmp_path / "home"
    home.mkdir()
    linkedin.write(data_dir, rows=1500, seed=5)
    env = {**os.environ, "DAGSTER_HOME": str(home), "LEADSCORE_DATA_DIR": str(data_dir)}
    first = _launch(env)
    lock = data_dir / "warehouse" / "linkedin" / "run.lock"
    deadline = time.time() + 120
    while not (lock.exists() and lock.read_text().strip()) and first.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    holder = json.loads(lock.read_text())["run_id"]
    second = _launch(env)
    second_out, _ = second.communicate(timeout=600)
    first_out, _ = first.communicate(timeout=600)
    assert second.returncode != 0, second_out[-2000:]
    assert f"project 'linkedin' is being run by Dagster run {holder}" in second_out
    # it stopped at its first step, before writing anything (no wait, however busy the machine)
    assert "STEP_SUCCESS" not in second_out, second_out[-2000:]
    assert first.returncode == 0, first_out[-3000:]
    with duckdb.connect(str(warehouse_file(data_dir, "linkedin")), read_only=True) as conn:
        decided_by = conn.execute("SELECT DISTINCT dagster_run_id FROM linkedin.model_decisions").fetchall()
        scored = conn.execute("SELECT count(*) FROM linkedin.lead_scores").fetchall()[0][0]
    assert decided_by == [(holder,)]  # only the first run's decision, on the first run's split
    assert scored > 1000


def test_a_run_killed_with_sigkill_does_not_lock_its_project(tmp_path):
    """`kill -9` of a `dagster job execute`: nothing marks its run failed (the instance still says
    STARTED), yet the next run takes the project at once, says whose lease it took, and marks
    that run failed."""
    data_dir, home = tmp_path / "data", tmp_path / "home"
    home.mkdir()
    linkedin.write(data_dir, rows=1500, seed=5)
    env = {**os.environ, "DAGSTER_HOME": str(home), "LEADSCORE_DATA_DIR": str(data_dir)}
    first = _launch(env)
    lock = data_dir / "warehouse" / "linkedin" / "run.lock"
    deadline = time.time() + 120
    while not (lock.exists() and lock.read_text().strip()) and first.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    killed = json.loads(lock.read_text())["run_id"]
    first.kill()  # SIGKILL: no teardown, no release
    first.communicate(timeout=60)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert instance.get_run_by_id(killed).status == dg.DagsterRunStatus.STARTED
    second = _launch(env)
    out, _ = second.communicate(timeout=600)
    assert second.returncode == 0, out[-3000:]
    assert "ProjectBusyError" not in out and f"taking over the lease of Dagster run {killed}" in out, out[-3000:]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert instance.get_run_by_id(killed).status == dg.DagsterRunStatus.FAILURE
    with duckdb.connect(str(warehouse_file(data_dir, "linkedin")), read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM linkedin.lead_scores").fetchall()[0][0] > 1000
