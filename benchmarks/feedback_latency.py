"""From a CRM file landing to the decision, under the real daemon.

    python benchmarks/feedback_latency.py [--rows 3700] [--outcomes 300] [--files 2] [--target 45]

What a user of `dagster dev` waits for: a fresh instance (deploy/local/dagster.yaml: queued runs,
run monitoring), the LinkedIn demo export and one run to make a champion; then `dagster-daemon
run` with the code location, and CRM outcome files dropped one at a time into the project's
feedback folder (written under a temporary name and renamed, as a CRM sync does). For each file
it prints the three intervals from the moment the file landed: the sensor's run request, the
run's start, and the decision (the `champion_model` materialization), plus when the run
published. Exits non-zero when a decision takes longer than `--target` seconds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
FILE_TAG = "leadscore/feedback_file"


def _instance(home: Path) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_config(str(home))


def _materialized_at(instance: dg.DagsterInstance, run_id: str, asset: str) -> float | None:
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
        if entry.dagster_event.asset_key == dg.AssetKey(["linkedin", asset]):
            return entry.timestamp
    return None


def _wait_for(predicate, timeout: float):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if (value := predicate()) is not None:
            return value
        time.sleep(0.25)
    return None


def land(folder: Path, name: str, data_dir: Path, outcomes: int, seed: int, reported: set[str]) -> float:
    """Write a CRM outcome file under a temporary name, rename it in place; return the landing time."""
    from leadscore_assets.demo_data import feedback

    rows = feedback.generate(data_dir, n=outcomes, seed=seed, exclude=reported)
    reported |= set(rows.lead_id)
    tmp = folder / f"{name}.part"
    rows.to_csv(tmp, index=False)
    os.replace(tmp, folder / name)
    return time.time()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=None, help="demo contacts (default: the generator's)")
    parser.add_argument("--outcomes", type=int, default=300)
    parser.add_argument("--files", type=int, default=2)
    parser.add_argument("--target", type=float, default=45.0)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="leadscore-latency-"))
    home, data = work / "home", work / "data"
    home.mkdir()
    shutil.copy(ROOT / "deploy" / "local" / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home), "LEADSCORE_DATA_DIR": str(data)}
    demo = [sys.executable, "-m", "leadscore_assets.demo_data", "linkedin", "--data-dir", str(data)]
    subprocess.run(demo + (["--rows", str(args.rows)] if args.rows else []), check=True, env=env, cwd=ROOT,
                   capture_output=True)
    started = time.time()
    subprocess.run([str(BIN / "dagster"), "job", "execute", "-m", "leadscore_assets.definitions", "-j",
                    "linkedin_pipeline"], check=True, env=env, cwd=ROOT, capture_output=True)
    print(f"first run (the champion): {time.time() - started:.1f} s")

    daemon = subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-m", "leadscore_assets.definitions"],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    folder = data / "feedback" / "linkedin"
    folder.mkdir(parents=True, exist_ok=True)
    worst, reported = 0.0, set()
    try:
        time.sleep(15)  # the daemon's first sensor ticks
        print("| file | request | start | decision | published | decision |")
        print("| --- | ---: | ---: | ---: | ---: | --- |")
        for number in range(1, args.files + 1):
            name = f"crm_outcomes_{number}.csv"
            landed = land(folder, name, data, args.outcomes, seed=100 + number, reported=reported)
            with _instance(home) as instance:
                def run_for_file():
                    runs = instance.get_runs(dg.RunsFilter(tags={FILE_TAG: name}))
                    return runs[0] if runs else None

                run = _wait_for(run_for_file, 300)
                if run is None:
                    print(f"| {name} | no run requested within 300 s |")
                    return 1
                record = instance.get_run_record_by_id(run.run_id)
                requested = record.create_timestamp.timestamp()
                done = _wait_for(lambda: instance.get_run_by_id(run.run_id).is_finished or None, 900)
                record = instance.get_run_record_by_id(run.run_id)
                decided = _materialized_at(instance, run.run_id, "champion_model")
                published = _materialized_at(instance, run.run_id, "published")
                tags = instance.get_run_by_id(run.run_id).tags
            decision = tags.get("leadscore/linkedin.decision", "none")
            cells = [requested - landed, (record.start_time or requested) - landed,
                     (decided or float("nan")) - landed, (published or float("nan")) - landed]
            worst = max(worst, cells[2] if decided else float("inf"))
            print(f"| {name} | " + " | ".join(f"{c:.1f} s" for c in cells) + f" | {decision} |")
            if not done:
                return 1
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(timeout=60)
    verdict = "PASS" if worst <= args.target else "FAIL"
    print(f"slowest file landed -> decision: {worst:.1f} s (target {args.target:.0f} s): {verdict}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
