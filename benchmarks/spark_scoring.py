"""Spark batch scoring of every web session with the champion, against the in-process scores.

Builds the web_sessions project on the full demo data (472,871 sessions; the pipeline in-process,
as benchmarks/stage_profile.py runs it, ~5-11 min on 2 cores) or reuses a built data directory
(--data-dir), then scores ALL raw sessions on Spark in local mode with
`models:/leadscore-web_sessions@champion` through MLflow's `spark_udf`
(leadscore_assets/resources/spark_scoring.py), writes the answers to Parquet and compares every
lead with `web_sessions.lead_scores` of the published warehouse:

- probability: max |Spark - in-process| must be <= 1e-9; decile, grade and contact equal;
  expected order value to 1e-9;
- the same leads: every scored lead of lead_scores is scored on Spark, and the sessions Spark
  answers with an `error` are the ones the run quarantined;
- reasons are off for the full run (as batch scoring runs); --reasons-sample N scores the first N
  sessions again with reasons on and compares the six reason columns too.

    .venv/bin/python benchmarks/spark_scoring.py                                  # build, then score
    .venv/bin/python benchmarks/spark_scoring.py --data-dir /tmp/leadscore-spark-bench/web_sessions-472871

Prints rows, Spark wall time (scoring + writing Parquet; the session start apart), leads/s, the
in-process `lead_scores` stage time when the build recorded it (stage_profile.json of the data
directory: the stage scores with reasons on, so compare it with the reasons-on rate), the largest
difference and the mismatch counts. Exits non-zero when any comparison fails.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROJECT = "web_sessions"
TOLERANCE = 1e-9


def stage_profile():
    spec = importlib.util.spec_from_file_location("stage_profile", ROOT / "benchmarks" / "stage_profile.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["stage_profile"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def build(data_root: Path, rows: int, seed: int) -> Path:
    """The project built on `rows` demo sessions under <data_root>/web_sessions-<rows> (replaced),
    measured by stage_profile (its figures land in <data dir>/stage_profile.json)."""
    result = stage_profile().profile_size(PROJECT, rows, data_root, seed)
    if not result.get("success"):
        raise SystemExit(f"building {PROJECT} failed: {result.get('error') or result.get('failed_steps')}")
    return Path(result["data_dir"])


def in_process_stage(data_dir: Path) -> float | None:
    """Seconds of the build's lead_scores stage, when it was measured (stage_profile.json)."""
    path = data_dir / "stage_profile.json"
    if not path.exists():
        return None
    stages = json.loads(path.read_text()).get("stages", [])
    return next((s["seconds"] for s in stages if s["stage"] == "lead_scores"), None)


def compare(conn, scores_glob: str, id_column: str, reasons: list[str] | tuple = ()) -> dict:
    """Spark's answers (Parquet) against web_sessions.lead_scores and quarantined_contacts
    (`reasons`: the reason columns to compare too)."""
    conn.execute(f"CREATE OR REPLACE TEMP VIEW spark AS SELECT * FROM read_parquet('{scores_glob}')")
    rows, errors = conn.execute("SELECT count(*), count(error) FROM spark").fetchone()
    joined = conn.execute(f"""
        SELECT count(*), max(abs(s.probability - l.probability)),
               count(*) FILTER (WHERE abs(s.probability - l.probability) > {TOLERANCE} OR s.probability IS NULL),
               count(*) FILTER (WHERE s.decile IS DISTINCT FROM l.decile),
               count(*) FILTER (WHERE s.grade IS DISTINCT FROM l.grade),
               count(*) FILTER (WHERE s.contact IS DISTINCT FROM l.contact),
               max(abs(s.expected_order_value - l.expected_order_value)),
               count(*) FILTER (WHERE abs(s.expected_order_value - l.expected_order_value) > {TOLERANCE}),
               count(*) FILTER (WHERE {' OR '.join(f's.{c} IS DISTINCT FROM l.{c}' for c in reasons) or 'false'})
        FROM spark s JOIN w.{PROJECT}.lead_scores l USING (lead_id) WHERE s.error IS NULL""").fetchone()
    keys = ["compared", "max_abs_diff", "probability", "decile", "grade", "contact", "eov_max_abs_diff",
            "expected_order_value", "reasons"]
    out = {"rows": rows, "errors": errors, **dict(zip(keys, joined))}
    out["scored_not_in_lead_scores"] = conn.execute(
        f"SELECT count(*) FROM spark s ANTI JOIN w.{PROJECT}.lead_scores l USING (lead_id) WHERE s.error IS NULL").fetchone()[0]
    # the same source row (id and row number) as the run quarantined
    out["errors_not_quarantined"] = conn.execute(
        f"SELECT count(*) FROM spark s WHERE s.error IS NOT NULL AND (s.lead_id, s._row_number) NOT IN "
        f"(SELECT ({id_column}, _row_number) FROM w.{PROJECT}.quarantined_contacts WHERE {id_column} IS NOT NULL)"
    ).fetchone()[0]
    return out



def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None, help="a built web_sessions data directory to reuse")
    parser.add_argument("--data-root", type=Path, default=Path(tempfile.gettempdir()) / "leadscore-spark-bench",
                        help="where to build when --data-dir is not given (<root>/web_sessions-<rows>, replaced)")
    parser.add_argument("--rows", type=int, default=472_871)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--driver-memory", default="3g")
    parser.add_argument("--arrow-batch-rows", type=int, default=10_000)
    parser.add_argument("--partitions", type=int, default=None, help="Spark tasks (default: twice the cores)")
    parser.add_argument("--reasons-sample", type=int, default=20_000, help="sessions scored again with reasons on (0: none)")
    parser.add_argument("--out", type=Path, default=None, help="Parquet folder of the scores (default: a temp dir)")
    args = parser.parse_args(argv)

    import duckdb

    from leadscore_assets.lib.project.config import load_project_config
    from leadscore_assets.lib.scoring.explain import REASON_COLUMNS
    from leadscore_assets.resources.spark_scoring import local_spark, read_source, score, write_scores
    from leadscore_assets.resources.warehouse import published_file

    config = load_project_config(ROOT / "leadscore_assets" / "defs" / PROJECT / "defs.yaml")
    if args.data_dir is None:
        t0 = time.perf_counter()
        data_dir = build(args.data_root, args.rows, args.seed)
        print(f"built {PROJECT} on {args.rows:,} sessions in {data_dir} ({time.perf_counter() - t0:.0f} s)", flush=True)
    else:
        data_dir = args.data_dir.resolve()
    warehouse = published_file(data_dir / "warehouse", PROJECT)
    if not warehouse.exists():
        raise SystemExit(f"no published {PROJECT} warehouse in {data_dir}")
    tracking_uri = f"sqlite:///{data_dir / 'mlflow' / 'mlflow.db'}"
    source = data_dir / config.source.path

    work = Path(tempfile.mkdtemp(prefix="leadscore-spark-bench-"))
    out = args.out or work / "spark_scores"
    try:
        t0 = time.perf_counter()
        spark = local_spark(cores=args.cores, driver_memory=args.driver_memory,
                            arrow_batch_rows=args.arrow_batch_rows, local_dir=work / "spark")
        session_s = time.perf_counter() - t0
        try:
            t0 = time.perf_counter()
            write_scores(score(spark, tracking_uri, PROJECT, read_source(spark, source), partitions=args.partitions), out)
            spark_s = time.perf_counter() - t0
            sample_s = None
            if args.reasons_sample:
                t0 = time.perf_counter()
                sample = read_source(spark, source).limit(args.reasons_sample)
                write_scores(score(spark, tracking_uri, PROJECT, sample, reasons=True, partitions=args.partitions),
                             work / "spark_scores_reasons")
                sample_s = time.perf_counter() - t0
        finally:
            spark.stop()

        with duckdb.connect() as conn:
            conn.execute(f"ATTACH '{warehouse}' AS w (READ_ONLY)")
            full = compare(conn, f"{out}/*.parquet", config.id_column)
            reasons = compare(conn, f"{work / 'spark_scores_reasons'}/*.parquet", config.id_column, reasons=REASON_COLUMNS) \
                if args.reasons_sample else None
            scored_in_process = conn.execute(f"SELECT count(*) FROM w.{PROJECT}.lead_scores").fetchone()[0]
    finally:
        shutil.rmtree(work, ignore_errors=True)  # --out, when given, is outside it and stays

    stage_s = in_process_stage(data_dir)
    failures = []

    def check(figures: dict, what: str, with_reasons: bool = False) -> None:
        bad = {k: figures[k] for k in ("probability", "decile", "grade", "contact", "expected_order_value",
                                       "scored_not_in_lead_scores", "errors_not_quarantined") if figures[k]}
        if with_reasons and figures["reasons"]:
            bad["reasons"] = figures["reasons"]
        if figures["max_abs_diff"] is None or figures["max_abs_diff"] > TOLERANCE:
            bad["max_abs_diff"] = figures["max_abs_diff"]
        if bad:
            failures.append(f"{what}: {bad}")

    print(f"== Spark scoring, {PROJECT}: models:/leadscore-{PROJECT}@champion via mlflow.pyfunc.spark_udf, "
          f"local[{args.cores}], Arrow batches of {args.arrow_batch_rows:,}")
    print(f"data dir                 {data_dir}")
    print(f"rows scored on Spark     {full['rows']:,} ({full['rows'] - full['errors']:,} scored, {full['errors']:,} with an error)")
    print(f"Spark session start      {session_s:.1f} s")
    print(f"Spark wall time          {spark_s:.1f} s (score + write Parquet, reasons off)")
    print(f"Spark leads/s            {full['rows'] / spark_s:,.0f}")
    if stage_s is not None:
        print(f"in-process lead_scores   {stage_s:.1f} s for {scored_in_process:,} leads "
              f"({scored_in_process / stage_s:,.0f} leads/s; reasons on, all leads; from the build's stage_profile.json)")
    else:
        print(f"in-process lead_scores   (not measured: no stage_profile.json in the data dir); {scored_in_process:,} leads")
    print(f"compared with lead_scores {full['compared']:,} leads; max |probability diff| {full['max_abs_diff']:.3g}; "
          f"max |E[order value] diff| {full['eov_max_abs_diff']:.3g}")
    print(f"mismatches               probability {full['probability']}, decile {full['decile']}, grade {full['grade']}, "
          f"contact {full['contact']}, E[order value] {full['expected_order_value']}; "
          f"scored but not in lead_scores {full['scored_not_in_lead_scores']}, "
          f"in lead_scores but not scored {scored_in_process - full['compared']}, "
          f"errors not quarantined {full['errors_not_quarantined']}")
    check(full, "all sessions")
    if scored_in_process != full["compared"]:
        failures.append(f"all sessions: {scored_in_process - full['compared']} leads of lead_scores not scored on Spark")
    if reasons is not None:
        print(f"reasons on, first {args.reasons_sample:,} sessions: {reasons['rows']:,} rows in {sample_s:.1f} s "
              f"({reasons['rows'] / sample_s:,.0f} leads/s); max |probability diff| {reasons['max_abs_diff']:.3g}; "
              f"reason mismatches {reasons['reasons']}, decile {reasons['decile']}, grade {reasons['grade']}")
        check(reasons, "reasons sample", with_reasons=True)
    print("RESULT: " + ("PASS" if not failures else "FAIL: " + "; ".join(failures)))
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
