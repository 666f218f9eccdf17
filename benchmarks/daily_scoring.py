"""One day's scoring (`web_sessions/daily_scores`, one partition) vs a full rescore (`lead_scores`).

    .venv/bin/python benchmarks/daily_scoring.py                     # builds web_sessions on 472,871 sessions (~5 min)
    .venv/bin/python benchmarks/daily_scoring.py --data-dir data     # an existing data/ with a web_sessions champion

Both score with the same champion and SHAP reasons. The full rescore is the pipeline's
`lead_scores` step (every session, read from the warehouse's features); a day is one partition
of `daily_scores` (that day's sessions read from the source export, scored by the served pyfunc).
Each is run --repeats times as its own in-process Dagster run; the step's own time comes from
Dagster's event log (STEP_START to STEP_SUCCESS), the run's from the wall clock. Printed: leads,
seconds, leads per second and the day / full ratio (compare ratios: the machine may be busy).
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import dagster as dg  # noqa: E402
import duckdb  # noqa: E402

from leadscore_assets.components.lead_scoring_project import project_definitions  # noqa: E402
from leadscore_assets.lib.project.config import load_project_config  # noqa: E402
from leadscore_assets.resources import build_resources  # noqa: E402

PROJECT = "web_sessions"


def step_seconds(instance: dg.DagsterInstance, run_id: str, step: str) -> float:
    records = instance.get_records_for_run(run_id, of_type={dg.DagsterEventType.STEP_START,
                                                            dg.DagsterEventType.STEP_SUCCESS}).records
    times = {r.event_log_entry.dagster_event.event_type_value: r.event_log_entry.timestamp
             for r in records if r.event_log_entry.step_key == step}
    return times["STEP_SUCCESS"] - times["STEP_START"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, help="a data directory with a web_sessions champion (default: build one)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    config = load_project_config(ROOT / "leadscore_assets" / "defs" / PROJECT / "defs.yaml")
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="leadscore-daily-"))
    defs = dg.Definitions.merge(project_definitions(config), dg.Definitions(resources=build_resources(data_dir)))
    if args.data_dir is None:
        from leadscore_assets.demo_data import web_sessions

        web_sessions.write(data_dir, seed=7)
        print(f"building {PROJECT} on the demo's sessions in {data_dir} ...", flush=True)
        started = time.perf_counter()
        assert defs.resolve_job_def(f"{PROJECT}_pipeline").execute_in_process(instance=dg.DagsterInstance.ephemeral()).success
        print(f"  pipeline run: {time.perf_counter() - started:.0f} s", flush=True)

    with duckdb.connect(str(data_dir / "warehouse" / PROJECT / "warehouse.duckdb"), read_only=True) as conn:
        total = conn.execute(f"SELECT count(*) FROM {PROJECT}.lead_scores").fetchall()[0][0]
    source = data_dir / "web_sessions" / "sessions.parquet"
    day, day_leads = duckdb.sql(f"SELECT started_at::DATE::VARCHAR, count(*) FROM '{source}' "
                                "GROUP BY 1 ORDER BY 1 DESC LIMIT 1").fetchall()[0]

    full_job = dg.define_asset_job("full_rescore", selection=[dg.AssetKey([PROJECT, "lead_scores"])])
    daily_job = defs.resolve_job_def(f"{PROJECT}_daily_scoring")
    runs = {"full": [], "day": []}
    for i in range(args.repeats):
        for kind in ("full", "day"):
            instance = dg.DagsterInstance.ephemeral()
            started = time.perf_counter()
            if kind == "full":
                job = dg.Definitions.merge(defs, dg.Definitions(jobs=[full_job])).resolve_job_def("full_rescore")
                result = job.execute_in_process(instance=instance)
                step = f"{PROJECT}__lead_scores"
            else:
                result = daily_job.execute_in_process(partition_key=day, instance=instance)
                step = f"{PROJECT}__daily_scores"
            assert result.success, kind
            runs[kind].append((step_seconds(instance, result.run_id, step), time.perf_counter() - started))
            print(f"  repeat {i + 1} {kind}: step {runs[kind][-1][0]:.2f} s, run {runs[kind][-1][1]:.2f} s", flush=True)

    full_step = statistics.median(s for s, _ in runs["full"])
    day_step = statistics.median(s for s, _ in runs["day"])
    full_run = statistics.median(r for _, r in runs["full"])
    day_run = statistics.median(r for _, r in runs["day"])
    print()
    print("| scoring | leads | step s (median) | run s (median) | leads/s (step) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    print(f"| full rescore (`lead_scores`) | {total:,} | {full_step:.1f} | {full_run:.1f} | {total / full_step:,.0f} |")
    print(f"| one day (`daily_scores`, {day}) | {day_leads:,} | {day_step:.1f} | {day_run:.1f} | {day_leads / day_step:,.0f} |")
    print(f"day / full: {day_step / full_step:.3f} of the step time, {day_run / full_run:.3f} of the run time, "
          f"for {day_leads / total:.3f} of the leads")


if __name__ == "__main__":
    main()
