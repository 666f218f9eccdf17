"""scripts/ui.sh stops everything it started when it is stopped (issue #24 item 7).

It is run for real: the MLflow UI and `dg dev` (webserver, daemon, code servers) on free ports of
127.0.0.1, until both answer over HTTP; then a TERM (or an INT, Ctrl-C's signal) to the script
alone must stop every process below it within a few seconds, and start-up prints nothing
superseded or beta.
"""

import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from leadscore_assets.testing.servers import free_port

pytestmark = pytest.mark.slow  # two real servers: `pytest -m slow`

ROOT = Path(__file__).resolve().parents[1]
STOP_WITHIN_S = 10.0  # the script's grace period is 4 s, then KILL; room for a loaded machine


def answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=2).close()
        return True
    except OSError:
        return False


def descendants(root: int) -> set[int]:
    """Every live process below `root` (from /proc: a parent pid per process)."""
    parent = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                parent[int(entry.name)] = int(fields[1])
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, ppid in parent.items() if ppid in frontier} - found
        found |= frontier
    return found


def alive(pids: set[int]) -> set[int]:
    left = set()
    for pid in pids:
        try:
            if (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                left.add(pid)
        except OSError:
            pass
    return left


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_stopping_the_script_stops_both_uis_and_their_children(tmp_path, stop_signal):
    dagster_port, mlflow_port = free_port(), free_port()
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "dagster_home"),
           "DAGSTER_PORT": str(dagster_port), "MLFLOW_PORT": str(mlflow_port)}
    out = tmp_path / "ui.out"
    with open(out, "wb") as sink:
        # a session of its own, as a terminal would start it; the signal goes to the script only
        script = subprocess.Popen(["bash", str(ROOT / "scripts" / "ui.sh")], cwd=ROOT, env=env, stdout=sink,
                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    started = set()
    try:
        deadline = time.monotonic() + 180
        while not (answers(f"http://127.0.0.1:{mlflow_port}/health")
                   and answers(f"http://127.0.0.1:{dagster_port}/server_info")):
            assert script.poll() is None, out.read_text()[-3000:]
            assert time.monotonic() < deadline, "the UIs did not answer within 180 s:\n" + out.read_text()[-3000:]
            time.sleep(1)
        started = descendants(script.pid)
        assert len(started) >= 5, started  # mlflow ui + uvicorn, dg dev + webserver + daemon + code server

        t0 = time.monotonic()
        script.send_signal(stop_signal)
        while (alive(started) or script.poll() is None) and time.monotonic() - t0 < STOP_WITHIN_S:
            time.sleep(0.2)
        took = time.monotonic() - t0
        left = alive(started)
        assert not left and script.poll() is not None, (
            f"{len(left)} processes left {took:.1f} s after {stop_signal.name}: "
            + "; ".join((Path('/proc') / str(p) / "cmdline").read_bytes().replace(b"\0", b" ").decode()[:120]
                        for p in left))
        assert not answers(f"http://127.0.0.1:{dagster_port}/server_info")
        assert not answers(f"http://127.0.0.1:{mlflow_port}/health")
        printed = out.read_text()
        for noise in ("SupersessionWarning", "BetaWarning", "is superseded"):
            assert noise not in printed, printed[-3000:]
    finally:
        for pid in alive(started | {script.pid}):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        script.wait(10)
