"""Wall time and peak memory of every pipeline stage (asset step) of one project, at one or more sizes.

    python benchmarks/stage_profile.py web_sessions --rows 50000 472871 \
        [--data-root /tmp/leadscore-bench] [--seed 7] [--json benchmarks/results/web_sessions.json]

For each size the project's demo data is written into a fresh directory
(<data-root>/<project>-<rows>), then the `<project>_pipeline` job runs in-process (in-process
executor, ephemeral instance, real DuckDB and MLflow stores under that directory) in a child
Python process of its own, so one size's heap, caches and imports never inflate the next
size's memory figures, and data generation is not part of them either.

What is measured, per step:
- seconds: STEP_START to STEP_SUCCESS (or STEP_FAILURE) timestamps from Dagster's event log.
  Asset checks are steps too; they are summed into one "checks" row. "(between steps)" is the
  rest of the run's wall time: run start, resource set-up, planning and event handling.
- peak RSS: a background thread samples this process's resident set size (VmRSS in
  /proc/self/status) every ~50 ms; each sample is attributed to the step running at its time.
  Spikes shorter than the interval can be missed, so the run's kernel high-water mark (VmHWM,
  reset just before the run) is reported next to the sampled run peak as a cross-check.
Also: RSS before the run (baseline: interpreter, Dagster and the ML libraries already
imported), rows in raw / validated / quarantined, and the run's total wall time. After the run,
outside the stage figures: the champion's answers with reasons (lib/scoring's one scorer) on
50,000 leads, in leads/s with exact TreeSHAP by branch pattern and with SHAP's native TreeSHAP,
and the share of leads whose top-3 reasons each way agree between the two.

Why ratios: this machine may be running other work, so absolute seconds vary from run to run.
The scaling table divides each stage's time by its rows (seconds per 100k rows) and prints the
ratio largest size / smallest size of that time-per-row: ~1 means the stage scales linearly,
< 1 that fixed costs dominate at the small size, > 1 that it grows faster than the data. Both
sizes run minutes apart under similar load, so the ratio says more than either absolute figure.
Stages that explain predictions (evaluation_report, lead_scores) cost what the selected model's
SHAP costs, so a different winning candidate at another size moves their ratio: the model
selected at each size is printed with it.

Exits non-zero when a run fails (a step failed or the job did not succeed).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFS = ROOT / "leadscore_assets" / "defs"
GENERATOR_FOR = {"byo_example": "byo_table"}  # project name -> demo_data generator name, where they differ
CHECKS = "checks"
BETWEEN = "(between steps)"
TOTAL = "total"
SAMPLE_INTERVAL_S = 0.05
MIB = 1024 * 1024
START_EVENT, END_EVENTS = "STEP_START", ("STEP_SUCCESS", "STEP_FAILURE")
REASON_ROWS = 50_000  # leads the reasons throughput is measured on after the run


# ---------------------------------------------------------------- pure helpers (tested)


@dataclass(frozen=True)
class StepWindow:
    step_key: str
    start: float
    end: float
    status: str  # STEP_SUCCESS | STEP_FAILURE | RUNNING (no end event)

    @property
    def seconds(self) -> float:
        return self.end - self.start


def step_windows(events: list[tuple[float, str, str | None]], run_end: float | None = None) -> list[StepWindow]:
    """(timestamp, event type, step key) log entries -> one window per started step, in start order.
    A step with no end event (the run died inside it) ends at `run_end`, else at its last event."""
    starts: dict[str, float] = {}
    ends: dict[str, tuple[float, str]] = {}
    last_seen: dict[str, float] = {}
    for ts, kind, step in events:
        if step is None:
            continue
        last_seen[step] = max(ts, last_seen.get(step, ts))
        if kind == START_EVENT:
            starts.setdefault(step, ts)
        elif kind in END_EVENTS:
            ends[step] = (ts, kind)
    windows = []
    for step, start in starts.items():
        end, status = ends.get(step, (run_end if run_end is not None else last_seen[step], "RUNNING"))
        windows.append(StepWindow(step, start, max(end, start), status))
    return sorted(windows, key=lambda w: w.start)


def attribute_samples(samples: list[tuple[float, int]], windows: list[StepWindow]) -> dict[str, int]:
    """Peak RSS (bytes) per step key from (timestamp, rss) samples: each sample goes to the step
    whose window contains it; samples outside every window go to BETWEEN. Steps that no sample
    fell in (shorter than the sampling interval) are absent."""
    ordered = sorted(windows, key=lambda w: w.start)
    peaks: dict[str, int] = {}
    for ts, rss in samples:
        owner = next((w.step_key for w in ordered if w.start <= ts <= w.end), BETWEEN)
        peaks[owner] = max(rss, peaks.get(owner, 0))
    return peaks


def stage_name(step_key: str, project: str, check_steps: set[str]) -> str:
    """A readable stage: check steps are grouped as CHECKS; the project prefix is dropped
    (`web_sessions__raw_contacts` -> `raw_contacts`, `web_sessions_validate_contacts` -> `validate_contacts`)."""
    if step_key in check_steps:
        return CHECKS
    for prefix in (f"{project}__", f"{project}_"):
        if step_key.startswith(prefix):
            return step_key[len(prefix):]
    return step_key


@dataclass
class Stage:
    stage: str
    seconds: float
    peak_rss_mib: float | None  # None: no sample fell inside the stage's steps
    steps: int = 1


def group_stages(
    windows: list[StepWindow], peaks: dict[str, int], project: str, check_steps: set[str], total_seconds: float
) -> list[Stage]:
    """Stages in execution order (checks summed into one row, placed last), then BETWEEN: the
    part of the total wall time no step accounts for."""
    stages: dict[str, Stage] = {}
    for w in windows:
        name = stage_name(w.step_key, project, check_steps)
        stage = stages.get(name)
        peak = peaks.get(w.step_key)
        if stage is None:
            stages[name] = Stage(name, w.seconds, None if peak is None else peak / MIB)
            continue
        stage.seconds += w.seconds
        stage.steps += 1
        if peak is not None:
            stage.peak_rss_mib = max(stage.peak_rss_mib or 0.0, peak / MIB)
    ordered = [s for n, s in stages.items() if n != CHECKS] + ([stages[CHECKS]] if CHECKS in stages else [])
    between_peak = peaks.get(BETWEEN)
    between = max(total_seconds - sum(s.seconds for s in ordered), 0.0)
    ordered.append(Stage(BETWEEN, between, None if between_peak is None else between_peak / MIB, steps=0))
    return ordered


def per_100k(seconds: float, rows: int) -> float:
    return seconds / rows * 100_000 if rows else float("nan")


def scaling_rows(sizes: list[dict]) -> list[dict]:
    """Per stage (and TOTAL): seconds per 100k rows at each size and the ratio of time-per-row,
    largest size / smallest size. `sizes` are size results ({"rows", "total_seconds", "stages"})."""
    if not sizes:
        return []
    ordered = sorted(sizes, key=lambda s: s["rows"])
    names = list(dict.fromkeys(st["stage"] for s in ordered for st in s["stages"]))
    rows = []
    for name in [*names, TOTAL]:
        seconds = [
            s["total_seconds"] if name == TOTAL else next((st["seconds"] for st in s["stages"] if st["stage"] == name), None)
            for s in ordered
        ]
        per_row = [None if sec is None else per_100k(sec, s["rows"]) for sec, s in zip(seconds, ordered)]
        small, large = per_row[0], per_row[-1]
        ratio = large / small if small and large is not None and len(ordered) > 1 else None
        rows.append({"stage": name, "s_per_100k": dict(zip([s["rows"] for s in ordered], per_row)),
                     "time_per_row_ratio": ratio})
    return rows


def format_table(headers: list[str], rows: list[list], right: set[int] | None = None) -> str:
    """Plain aligned text table; columns in `right` (default: all but the first) right-aligned."""
    right = set(range(1, len(headers))) if right is None else right
    cells = [headers, *[[("-" if v is None else str(v)) for v in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()

    return "\n".join([line(cells[0]), line(["-" * w for w in widths]), *(line(r) for r in cells[1:])])


def size_table(result: dict) -> str:
    total = result["total_seconds"]
    body = [
        [s["stage"] + (f" ({s['steps']})" if s["stage"] == CHECKS else ""), f"{s['seconds']:.2f}",
         None if s["peak_rss_mib"] is None else f"{s['peak_rss_mib']:.0f}", f"{s['seconds'] / total:.1%}" if total else None]
        for s in result["stages"]
    ]
    body.append([TOTAL, f"{total:.2f}", f"{result['peak_rss_mib']:.0f}", "100.0%"])
    return format_table(["stage", "seconds", "peak RSS MiB", "share"], body)


def scaling_table(sizes: list[dict]) -> str:
    rows = scaling_rows(sizes)
    counts = sorted(s["rows"] for s in sizes)
    headers = ["stage", *[f"s/100k @ {n:,}" for n in counts], "ratio (time/row)"]
    body = [
        [r["stage"], *[None if r["s_per_100k"][n] is None else f"{r['s_per_100k'][n]:.2f}" for n in counts],
         None if r["time_per_row_ratio"] is None else f"{r['time_per_row_ratio']:.2f}"]
        for r in rows
    ]
    return format_table(headers, body)


# ---------------------------------------------------------------- memory sampling


def _status_kib(field_name: str) -> int | None:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    return None


def current_rss() -> int:
    """This process's resident set size in bytes (Linux /proc; psutil elsewhere, if installed)."""
    if os.path.exists("/proc/self/status"):
        return (_status_kib("VmRSS") or 0) * 1024
    import psutil  # not a dependency: only reached off Linux

    return psutil.Process().memory_info().rss


def reset_high_water_mark() -> bool:
    """Reset the kernel's peak-RSS counter (VmHWM) to the current RSS; False where not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def high_water_mark() -> int | None:
    kib = _status_kib("VmHWM") if os.path.exists("/proc/self/status") else None
    return None if kib is None else kib * 1024


class RssSampler:
    """Background thread recording (time.time(), RSS bytes) every `interval` seconds.
    Samples are only as regular as the GIL allows: the largest gap is kept as a quality figure."""

    def __init__(self, interval: float = SAMPLE_INTERVAL_S):
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.time(), current_rss()))
            self._stop.wait(self.interval)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append((time.time(), current_rss()))

    @property
    def max_gap(self) -> float:
        times = [t for t, _ in self.samples]
        return max((b - a for a, b in zip(times, times[1:])), default=0.0)


# ---------------------------------------------------------------- one measured run (child process)


def measure_run(project: str, data_dir: Path) -> dict:
    """Run `<project>_pipeline` in-process on `data_dir` and measure it. Runs in a fresh process."""
    import dagster as dg

    from leadscore_assets.components.lead_scoring_project import project_definitions
    from leadscore_assets.lib.project.config import load_project_config
    from leadscore_assets.resources import build_resources

    config = load_project_config(DEFS / project / "defs.yaml")
    project_defs = project_definitions(config)
    check_steps = {c.node_def.name for c in project_defs.asset_checks}
    defs = dg.Definitions.merge(
        project_defs, dg.Definitions(resources=build_resources(data_dir), executor=dg.in_process_executor)
    )
    job = defs.resolve_job_def(f"{config.name}_pipeline")
    instance = dg.DagsterInstance.ephemeral()

    baseline = current_rss()
    hwm_reset = reset_high_water_mark()
    started = time.time()
    with RssSampler() as sampler:
        result = job.execute_in_process(instance=instance, raise_on_error=False)
    finished = time.time()
    run_hwm = high_water_mark() if hwm_reset else None

    entries = instance.all_logs(result.run_id)
    events = [(e.timestamp, e.dagster_event.event_type_value, e.dagster_event.step_key)
              for e in entries if e.dagster_event is not None]
    windows = step_windows(events, run_end=finished)
    stages = group_stages(windows, attribute_samples(sampler.samples, windows), config.name, check_steps,
                          finished - started)
    rows = row_counts(result, config.name)
    reasons = reasons_throughput(config, data_dir) if result.success else None
    return {
        "reasons": reasons,
        "project": config.name,
        "success": bool(result.success),
        "failed_steps": [w.step_key for w in windows if w.status != "STEP_SUCCESS"],
        "failed_checks": failed_checks(result),
        "row_counts": rows,
        "selected_model": materialization_metadata(result, config.name, "evaluation_report", "chosen_model"),
        "total_seconds": finished - started,
        "baseline_rss_mib": baseline / MIB,
        "peak_rss_mib": max(rss for _, rss in sampler.samples) / MIB,
        "kernel_peak_rss_mib": None if run_hwm is None else run_hwm / MIB,
        "rss_samples": len(sampler.samples),
        "max_sample_gap_s": sampler.max_gap,
        "stages": [asdict(s) for s in stages],
        "steps": [asdict(w) | {"seconds": w.seconds} for w in windows],
    }


def reasons_throughput(config, data_dir: Path, rows: int = REASON_ROWS) -> dict | None:
    """After the run: the champion's answers with reasons (lib/scoring's `Scorer`, as lead_scores,
    daily scoring, HTTP and Spark give them) on the first `rows` leads of the features table, timed
    with exact TreeSHAP by branch pattern (lib/scoring/tree_shap.py) and with SHAP's native TreeSHAP, and
    how often the two give the same top-3 reasons each way (exact both: differences are float
    rounding, ~1e-6). Leads/s, not stage seconds: lead_scores also reads, writes and ranks."""
    import duckdb
    import mlflow
    import numpy as np

    from leadscore_assets.assets.common import load_feature_set
    from leadscore_assets.lib.scoring import tree_shap as tree_shap
    from leadscore_assets.lib.scoring.explain import REASON_COLUMNS
    from leadscore_assets.lib.scoring.registry import current_champion, load_serving_parts
    from leadscore_assets.lib.scoring.scorer import Scorer

    mlflow.set_tracking_uri(f"sqlite:///{Path(data_dir).resolve() / 'mlflow' / 'mlflow.db'}")
    version = current_champion(mlflow.MlflowClient(), config.registered_model_name)
    parts = load_serving_parts(config.registered_model_name, str(version.version)) if version else None
    if parts is None:
        return None
    with duckdb.connect(str(Path(data_dir) / "warehouse" / config.name / "warehouse.duckdb"), read_only=True) as conn:
        features = load_feature_set(conn, config).columns
        x = conn.execute(f"SELECT * FROM {config.name}.features LIMIT {int(rows)}").df()
    scorer = Scorer.of(config, features, parts["model"], float(version.tags.get("leadscore.threshold", 0.5)),
                       parts["cut_points"], parts["background"], parts.get("revenue_model"))
    timed = {}
    for way in ("pattern", "native"):
        if way == "native":  # every tree "too deep": the native path
            tree_shap._READ.clear()
            saved, tree_shap.MAX_TREE_SPLITS = tree_shap.MAX_TREE_SPLITS, -1
        scorer.score(x.iloc[:100])  # model read once (pattern tables), imports warm
        start = time.perf_counter()
        timed[way] = (scorer.score(x), time.perf_counter() - start)
        if way == "native":
            tree_shap.MAX_TREE_SPLITS = saved
            tree_shap._READ.clear()
    (fast, fast_s), (exact, exact_s) = timed["pattern"], timed["native"]
    same = np.all([fast[c].fillna("-").to_numpy() == exact[c].fillna("-").to_numpy() for c in REASON_COLUMNS], axis=0)
    return {"leads": len(x), "model": type(scorer.explained.steps[-1][1]).__name__, "pattern_leads_per_s": len(x) / fast_s,
            "native_leads_per_s": len(x) / exact_s, "top3_agreement": float(same.mean()) if len(x) else 1.0}


def materialization_metadata(result, project: str, asset: str, entry: str):
    """One metadata value of one of the project's materializations in the run, or None."""
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        if mat.asset_key.path == [project, asset] and entry in mat.metadata:
            return mat.metadata[entry].value
    return None


def row_counts(result, project: str) -> dict[str, int]:
    """dagster/row_count of raw, validated and quarantined contacts, from the run's materializations."""
    counts = {name: materialization_metadata(result, project, name, "dagster/row_count")
              for name in ("raw_contacts", "validated_contacts", "quarantined_contacts")}
    return {name: int(n) for name, n in counts.items() if n is not None}


def failed_checks(result) -> list[str]:
    out = []
    for event in result.all_events:
        if event.event_type_value == "ASSET_CHECK_EVALUATION":
            evaluation = event.event_specific_data
            if not evaluation.passed:
                out.append(f"{evaluation.check_name} ({evaluation.severity.value})")
    return out


# ---------------------------------------------------------------- orchestration (parent process)


def generator_for(project: str):
    from leadscore_assets.demo_data.__main__ import GENERATORS

    name = GENERATOR_FOR.get(project, project)
    if name not in GENERATORS:
        raise SystemExit(f"no demo data generator for project '{project}' (known: {', '.join(GENERATORS)})")
    return GENERATORS[name]


def fresh_dir(data_root: Path, project: str, rows: int) -> Path:
    path = data_root / f"{project}-{rows}"
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def profile_size(project: str, rows: int, data_root: Path, seed: int) -> dict:
    """Write the demo data, then measure the run in a child process; return its result dict.
    The child's Dagster log goes to <data_dir>/stage_profile.log (its tail is shown on failure)."""
    data_dir = fresh_dir(data_root, project, rows)
    t0 = time.perf_counter()
    generator_for(project)(data_dir, rows=rows, seed=seed)
    print(f"{project} @ {rows:,} rows: demo data written to {data_dir} in {time.perf_counter() - t0:.1f} s; running the job",
          file=sys.stderr, flush=True)
    out, log = data_dir / "stage_profile.json", data_dir / "stage_profile.log"
    cmd = [sys.executable, str(Path(__file__).resolve()), project, "--measure", str(data_dir), "--measure-out", str(out)]
    with log.open("w") as log_file:
        child = subprocess.run(cmd, cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT)
    if not out.exists():
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        return {"project": project, "rows": rows, "success": False,
                "error": f"measuring child exited {child.returncode}; last lines of {log}:\n{tail}"}
    result = json.loads(out.read_text())
    return {**result, "rows": rows, "data_dir": str(data_dir), "log": str(log)}


def report_size(result: dict) -> str:
    counts = result.get("row_counts", {})
    kernel = result.get("kernel_peak_rss_mib")
    shown = {k: f"{counts[k]:,}" if k in counts else "?" for k in ("raw_contacts", "validated_contacts", "quarantined_contacts")}
    lines = [
        f"== {result['project']} @ {result['rows']:,} rows: raw {shown['raw_contacts']}, "
        f"validated {shown['validated_contacts']}, quarantined {shown['quarantined_contacts']}; "
        f"selected model {result.get('selected_model') or '?'}",
        f"total {result['total_seconds']:.1f} s; RSS baseline {result['baseline_rss_mib']:.0f} MiB, "
        f"run peak {result['peak_rss_mib']:.0f} MiB sampled"
        + (f" / {kernel:.0f} MiB kernel high-water mark" if kernel is not None else "")
        + f"; {result['rss_samples']} samples, largest gap {result['max_sample_gap_s']:.2f} s",
        size_table(result),
    ]
    reasons = result.get("reasons")
    if reasons:
        lines.append(f"answers with reasons (lib/scoring, {reasons['model']}, {reasons['leads']:,} leads): "
                     f"{reasons['pattern_leads_per_s']:,.0f} leads/s with TreeSHAP by branch pattern, "
                     f"{reasons['native_leads_per_s']:,.0f} leads/s with native TreeSHAP; the same top-3 reasons "
                     f"up and down for {reasons['top3_agreement']:.2%} of leads")
    if result.get("failed_checks"):
        lines.append("checks that did not pass: " + ", ".join(result["failed_checks"]))
    if not result["success"]:
        lines.append(f"RUN FAILED: steps {', '.join(result['failed_steps']) or '(none started)'}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("project", help="a folder under leadscore_assets/defs/, e.g. web_sessions")
    parser.add_argument("--rows", type=int, nargs="+", default=None, help="data sizes (demo rows), e.g. 50000 472871")
    parser.add_argument("--data-root", type=Path, default=Path(tempfile.gettempdir()) / "leadscore-bench",
                        help="one fresh subfolder <project>-<rows> per size (replaced on each run)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, default=None, help="also write all figures to this JSON file")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # child: measure one run on this data dir
    parser.add_argument("--measure-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not (DEFS / args.project / "defs.yaml").exists():
        parser.error(f"no project '{args.project}' under {DEFS}")
    if args.measure is None and not args.rows:
        parser.error("--rows is required")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.measure is not None:  # child process
        result = measure_run(args.project, args.measure)
        args.measure_out.write_text(json.dumps(result, default=float))
        return 0 if result["success"] else 1

    results = []
    for rows in args.rows:
        result = profile_size(args.project, rows, args.data_root, args.seed)
        results.append(result)
        if "error" in result:
            print(f"== {args.project} @ {rows:,} rows: {result['error']}")
            continue
        print(report_size(result) + "\n", flush=True)
    measured = [r for r in results if "error" not in r]
    if len(measured) > 1:
        print(f"== scaling, {args.project}: seconds per 100k rows; ratio = time per row at the largest size / smallest")
        print(scaling_table(measured))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"project": args.project, "seed": args.seed, "sizes": results,
                                         "scaling": scaling_rows(measured)}, indent=2, default=float))
        print(f"wrote {args.json}")
    return 0 if results and all(r.get("success") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
