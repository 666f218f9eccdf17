"""The main job in one process vs with the multiprocess executor, on the same data, in one go.

    .venv/bin/python benchmarks/parallel_projects.py                 # the demo's data (472,871 sessions)
    .venv/bin/python benchmarks/parallel_projects.py --small         # a quick look (~2,000 rows per source)

Writes the demo data once, then runs `score_all_sources` twice on copies of it, each run with a
fresh data directory and Dagster instance (`deploy/local/dagster.yaml`): with the in-process
executor (`execution: {config: {in_process: {}}}`) and with the job's default, the multiprocess
executor (each step its own process forked from a preloaded forkserver, one step per project at
a time). It prints both wall times and their ratio (target <= 0.65 on 2 cores), the machine's
busy CPU seconds in each run and the floor they set (the in-process run's CPU work spread over
every core), how much of the multiprocess run had two projects' steps running at once, and
whether both runs produced the
same tables and champions: every project's validated rows, decisions and lead scores
(probability, decile, grade, reasons) compared row by row.

Both runs must make the same choices, so the search budget is each YAML's trial count with no
time limit (a time budget would let the busier run try fewer trials); `--trials N` sets N for
every project instead. Everything else is the shipped YAML.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ALL_PROJECTS = ("linkedin", "email_crm", "saas_crm", "web_sessions", "byo_example")
# which projects, and optionally fewer candidates: the slow test runs two small ones
PROJECTS = tuple(os.environ.get("LEADSCORE_BENCH_PROJECTS", ",".join(ALL_PROJECTS)).split(","))
SMALL_ROWS = {"linkedin": 2000, "email_crm": 2000, "saas_crm": 2000, "byo_table": 3000, "web_sessions": 30000}
COMPARED = {  # table -> (key, columns that must be equal; run ids and times differ by design)
    "validated_contacts": None,
    "model_decisions": ("decision", ["decision", "selection_metric", "challenger_metric", "held_out_rows"]),
    "lead_scores": ("lead_id", ["probability", "decile", "grade", "contact", "reason_1_up", "reason_1_down"]),
}


def benchmark_job():
    """score_all_sources over the shipped projects with a trials-only search (deterministic).

    Loaded by Dagster in every step process (`dg.reconstructable`), so it reads its settings
    from the environment the benchmark sets."""
    import dagster as dg

    from leadscore_assets.components.lead_scoring_project import project_definitions
    from leadscore_assets.definitions import ALL_SOURCES_JOB, all_sources_job
    from leadscore_assets.lib.project.config import load_project_config
    from leadscore_assets.resources import build_resources

    trials = os.environ.get("LEADSCORE_BENCH_TRIALS", "")
    defs = []
    for project in PROJECTS:
        config = load_project_config(ROOT / "leadscore_assets" / "defs" / project / "defs.yaml")
        search = config.models.search.model_copy(update={"timeout_s": None, **({"n_trials": int(trials)} if trials else {})})
        models = {"search": search}
        if os.environ.get("LEADSCORE_BENCH_CANDIDATES"):
            models["candidates"] = os.environ["LEADSCORE_BENCH_CANDIDATES"].split(",")
        config = config.model_copy(update={"models": config.models.model_copy(update=models)})
        defs.append(project_definitions(config))
    merged = dg.Definitions.merge(*defs, dg.Definitions(
        jobs=[all_sources_job()], resources=build_resources(os.environ["LEADSCORE_DATA_DIR"]),
        executor=dg.in_process_executor))
    return merged.resolve_job_def(ALL_SOURCES_JOB)


def busy_cpu_seconds() -> float | None:
    """CPU seconds the whole machine has spent busy so far (Linux /proc/stat), or None elsewhere.
    Machine-wide, so it counts every step process, the forkserver and the run's own process."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return None
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait


def run(mode: str, data_dir: Path, home: Path, trials: int | None) -> tuple[float, float | None, object]:
    """One run of the job; returns wall seconds, busy CPU seconds and the run's step timeline."""
    import dagster as dg

    home.mkdir(parents=True)
    shutil.copy(ROOT / "deploy" / "local" / "dagster.yaml", home / "dagster.yaml")
    os.environ.update({"LEADSCORE_DATA_DIR": str(data_dir), "LEADSCORE_BENCH_TRIALS": "" if trials is None else str(trials),
                       "DAGSTER_HOME": str(home)})
    run_config = {"execution": {"config": {"in_process": {}}}} if mode == "in_process" else None
    with dg.DagsterInstance.get() as instance:
        started, cpu_started = time.perf_counter(), busy_cpu_seconds()
        with dg.execute_job(dg.reconstructable(benchmark_job), instance, run_config=run_config) as result:
            seconds = time.perf_counter() - started
            cpu = None if cpu_started is None else busy_cpu_seconds() - cpu_started
            if not result.success:
                failed = [e.step_key for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
                raise SystemExit(f"{mode} run failed at {failed}")
            steps = step_intervals(instance, result.run_id)
    return seconds, cpu, steps


def step_intervals(instance, run_id: str) -> list[tuple[str, float, float]]:
    """(project, start, end) of every step, from the run's event log."""
    import dagster as dg

    starts, spans = {}, []
    for record in instance.get_records_for_run(run_id, of_type={dg.DagsterEventType.STEP_START,
                                                                dg.DagsterEventType.STEP_SUCCESS}).records:
        entry = record.event_log_entry
        step = entry.step_key
        if entry.dagster_event.event_type == dg.DagsterEventType.STEP_START:
            starts[step] = entry.timestamp
        elif step in starts:
            project = next(p for p in PROJECTS if step.startswith(p))
            spans.append((project, starts[step], entry.timestamp))
    return spans


def overlap(spans: list[tuple[str, float, float]]) -> tuple[float, float]:
    """Seconds during which steps of two different projects ran at once, and the longest time
    two steps of one project overlapped (must be 0)."""
    events = sorted({t for _, a, b in spans for t in (a, b)})
    parallel = same_project = 0.0
    for a, b in zip(events, events[1:]):
        running = [p for p, s, e in spans if s < b and e > a]
        if len(set(running)) >= 2:
            parallel += b - a
        if len(running) > len(set(running)):
            same_project += b - a
    return parallel, same_project


def differences(first: Path, second: Path) -> list[str]:
    """What differs between two runs' published tables (empty: identical)."""
    import duckdb

    found = []
    for project in PROJECTS:
        files = [d / "warehouse" / project / "warehouse.duckdb" for d in (first, second)]
        frames = {}
        for table, spec in COMPARED.items():
            for i, path in enumerate(files):
                with duckdb.connect(str(path), read_only=True) as conn:
                    df = conn.execute(f"SELECT * FROM {project}.{table}").df()
                if spec:
                    key, columns = spec
                    df = df[[key, *[c for c in columns if c != key and c in df.columns]]]
                    df = df.sort_values(key).reset_index(drop=True)
                else:
                    df = df.sort_values(list(df.columns[:1])).reset_index(drop=True)
                frames[(table, i)] = df
            a, b = frames[(table, 0)], frames[(table, 1)]
            if a.shape != b.shape or not a.equals(b):
                found.append(f"{project}.{table}: {a.shape} vs {b.shape}, "
                             f"{(a != b).any(axis=1).sum() if a.shape == b.shape else 'shapes differ'} rows differ")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="about 2,000 rows per source, 30,000 sessions")
    parser.add_argument("--trials", type=int, default=None,
                        help="Optuna trials per tuned candidate for every project (default: each YAML's; no time limit)")
    parser.add_argument("--work-dir", type=Path, default=None, help="keep the runs here (default: a temp dir)")
    args = parser.parse_args()

    work = args.work_dir or Path(tempfile.mkdtemp(prefix="leadscore-parallel-"))
    template = work / "demo"
    for source in SMALL_ROWS:
        rows = ["--rows", str(SMALL_ROWS[source])] if args.small else []
        subprocess.run([sys.executable, "-m", "leadscore_assets.demo_data", source, "--data-dir", str(template), *rows],
                       check=True, stdout=subprocess.DEVNULL)
    timings = {}
    for mode in ("in_process", "multiprocess"):
        data_dir = work / mode / "data"
        shutil.copytree(template, data_dir)
        print(f"running score_all_sources ({mode}) ...", flush=True)
        timings[mode] = run(mode, data_dir, work / mode / "dagster_home", args.trials)
        print(f"  {timings[mode][0]:.0f} s", flush=True)

    (single, single_cpu, _), (parallel, parallel_cpu, spans) = timings["in_process"], timings["multiprocess"]
    together, same = overlap(spans)
    diffs = differences(work / "in_process" / "data", work / "multiprocess" / "data")
    print()
    cores = os.cpu_count() or 1
    cpu = {m: "-" if c is None else f"{c:.0f} s ({c / w:.2f} cores)" for m, (w, c, _) in timings.items()}
    print(f"| executor | wall time | ratio | busy CPU |\n| --- | ---: | ---: | ---: |\n"
          f"| in-process | {single:.0f} s | 1.00 | {cpu['in_process']} |\n"
          f"| multiprocess | {parallel:.0f} s | {parallel / single:.2f} | {cpu['multiprocess']} |")
    if single_cpu is not None:
        # no schedule on these cores can do the in-process run's CPU work in less time than this
        print(f"floor on {cores} cores (in-process CPU / cores / in-process wall): {single_cpu / cores / single:.2f}")
    print(f"two projects' steps at once: {together:.0f} s of {parallel:.0f} s; one project's steps at once: {same:.1f} s")
    print("tables and champions: " + ("identical" if not diffs else "DIFFER: " + "; ".join(diffs)))
    print(f"target <= 0.65: {'met' if parallel / single <= 0.65 else 'NOT met'}; runs kept in {work}")
    if diffs or same > 0:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
