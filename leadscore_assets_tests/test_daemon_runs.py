"""The real daemon on a real instance (deploy/local/dagster.yaml): runs of one project queue
behind each other, and a run whose process is killed is marked failed by run monitoring and
frees the project for the next one."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from leadscore_assets.demo_data import linkedin

pytestmark = pytest.mark.slow  # the real daemon and CLI processes: `pytest -m slow`

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _runs(home: Path) -> list[dg.DagsterRun]:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return sorted(instance.get_runs(), key=lambda r: r.run_id)


def _status(home: Path, run_id: str) -> dg.DagsterRunStatus:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return instance.get_run_by_id(run_id).status


def _failures(home: Path, run_id: str) -> str:
    """What failed in a run, from its event log (for the assertion message)."""
    with dg.DagsterInstance.from_config(str(home)) as instance:
        failed = [e.dagster_event.event_specific_data for e in instance.all_logs(run_id)
                  if e.dagster_event and e.dagster_event.event_type_value in ("STEP_FAILURE", "RUN_FAILURE")]
    # the root cause of each failure, not Dagster's wrapper around it
    return "\n".join(_root_cause(getattr(f, "error", None)) or str(f)[:300] for f in failed)


def _root_cause(error) -> str:
    while error is not None and getattr(error, "cause", None) is not None:
        error = error.cause
    return "" if error is None else f"{error.message.strip()} at {''.join(error.stack[-2:]).strip()}"


def _wait(predicate, timeout: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if value := predicate():
            return value
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _run_worker_pid(run_id: str) -> int | None:
    """The process executing a run: the parent of the `tail -F` that follows its compute log."""
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            if cmd.startswith("tail") and run_id in cmd:
                return int((proc / "stat").read_text().split(") ", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return None


def _launch(env: dict, attempts: int = 3) -> None:
    """`dagster job launch` (through the run queue); a launch refused by a busy SQLite instance
    storage is tried again, anything else fails the test with what the CLI said."""
    for attempt in range(attempts):
        done = subprocess.run([str(BIN / "dagster"), "job", "launch", "-m", "leadscore_assets.definitions",
                               "-j", "linkedin_pipeline"], cwd=ROOT, env=env, capture_output=True, text=True)
        if done.returncode == 0:
            return
        if "locked" not in done.stderr + done.stdout or attempt == attempts - 1:
            raise AssertionError(f"dagster job launch failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
        time.sleep(2)


@pytest.fixture
def instance_home(tmp_path):
    home, data = tmp_path / "home", tmp_path / "data"
    home.mkdir()
    text = (ROOT / "deploy" / "local" / "dagster.yaml").read_text()
    (home / "dagster.yaml").write_text(text.replace("poll_interval_seconds: 30", "poll_interval_seconds: 3"))
    linkedin.write(data, rows=1500, seed=8)
    with dg.DagsterInstance.from_config(str(home)):
        pass  # storage created before the daemon and the CLI reach for it at the same moment
    env = {**os.environ, "DAGSTER_HOME": str(home), "LEADSCORE_DATA_DIR": str(data)}
    daemon = subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-m", "leadscore_assets.definitions"], cwd=ROOT,
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    yield home, env
    os.killpg(daemon.pid, signal.SIGTERM)
    daemon.wait(timeout=60)


def test_runs_of_a_project_queue_and_a_killed_run_is_failed_and_frees_the_project(instance_home):
    home, env = instance_home
    for _ in range(2):
        _launch(env)
    first, second = _wait(lambda: [r for r in _runs(home)] if len(_runs(home)) == 2 else None, 30, "two runs")
    started = _wait(lambda: next((r for r in _runs(home) if r.status == dg.DagsterRunStatus.STARTED), None),
                    180, "one run to start")
    waiting = second if started.run_id == first.run_id else first
    assert _status(home, waiting.run_id) == dg.DagsterRunStatus.QUEUED  # one run of a project at a time

    pid = _wait(lambda: _run_worker_pid(started.run_id), 60, "the run's worker process")
    lock = home.parent / "data" / "warehouse" / "linkedin" / "run.lock"
    _wait(lambda: lock.exists() and started.run_id in lock.read_text(), 120, "the run to claim its project")
    os.kill(pid, signal.SIGKILL)  # killed while it holds the project, early in its run
    _wait(lambda: _status(home, started.run_id) == dg.DagsterRunStatus.FAILURE, 120,
          "run monitoring to mark the killed run failed")
    _wait(lambda: _status(home, waiting.run_id) in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE), 600,
          "the queued run to finish")
    assert _status(home, waiting.run_id) == dg.DagsterRunStatus.SUCCESS, _failures(home, waiting.run_id)
