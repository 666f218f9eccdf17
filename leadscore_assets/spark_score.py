"""Score a project's source on Apache Spark (local mode) with its registered champion:

    python -m leadscore_assets.spark_score <project> [--reasons] [--source FILE] [--out DIR] [--data-dir DIR]

(what `scripts/spark_score.sh` runs). The scoring itself is `resources/spark_scoring.py`; this is
its command line, which finds the file to score: the project's CSV or Parquet source, else the
rows of its published `raw_contacts` table (named through the table contract, assets/tables.py).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from leadscore_assets.assets.tables import RAW_CONTACTS
from leadscore_assets.lib.validation import LINEAGE
from leadscore_assets.resources.spark_scoring import (
    ALIAS,
    ARROW_BATCH_ROWS,
    local_spark,
    model_uri,
    read_source,
    score,
    write_scores,
)


def project_source(project: str, data_dir: Path, work_dir: Path) -> tuple[Path, str]:
    """The file to score for a project, and its CSV delimiter: its CSV or Parquet source file;
    for other sources (SQLite, DuckDB, several tables and a query) the rows the source query
    returned in the last published run (`<project>.raw_contacts`), exported to Parquet."""
    from leadscore_assets.lib.project.config import load_project_config
    from leadscore_assets.resources.warehouse import published_file

    defs = Path(__file__).resolve().parent / "defs" / project / "defs.yaml"
    if not defs.exists():
        raise SystemExit(f"no project '{project}' (no {defs})")
    config = load_project_config(defs)
    source = config.source
    if source.path and source.kind in ("csv", "parquet"):
        from leadscore_assets.lib.project.data_paths import DataPathError, inside_data_dir

        try:
            return inside_data_dir(data_dir, source.path, ("source", "path")), source.delimiter
        except DataPathError as err:
            raise SystemExit(f"{project}: {err}") from None
    import duckdb

    warehouse = published_file(data_dir / "warehouse", project)
    if not warehouse.exists():
        raise SystemExit(f"{project}: no published warehouse at {warehouse}; run the project first")
    out = work_dir / f"{project}_{RAW_CONTACTS.name}.parquet"
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        conn.execute(f"COPY (SELECT * EXCLUDE ({', '.join(LINEAGE)}) FROM {RAW_CONTACTS.of(config)}) "
                     f"TO '{out}' (FORMAT parquet)")
    return out, ","


def main(argv: list[str] | None = None) -> int:
    from leadscore_assets.resources.storage import default_data_dir

    parser = argparse.ArgumentParser(prog="python -m leadscore_assets.spark_score",
                                     description="Score a project's source on Spark (local mode) with its champion.")
    parser.add_argument("project", help="a folder under leadscore_assets/defs/, e.g. web_sessions")
    parser.add_argument("--data-dir", type=Path, default=None, help="default: $LEADSCORE_DATA_DIR or data/")
    parser.add_argument("--source", type=Path, default=None,
                        help="a Parquet or CSV file of raw leads (default: the project's source)")
    parser.add_argument("--out", type=Path, default=None,
                        help="Parquet folder (default: <data>/reports/<project>/spark_scores)")
    parser.add_argument("--tracking-uri", default=None,
                        help="default: $MLFLOW_TRACKING_URI or sqlite:///<data>/mlflow/mlflow.db")
    parser.add_argument("--alias", default=ALIAS)
    parser.add_argument("--reasons", action="store_true", help="add the six SHAP reason columns (slower)")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--driver-memory", default="3g")
    parser.add_argument("--arrow-batch-rows", type=int, default=ARROW_BATCH_ROWS)
    args = parser.parse_args(argv)

    data_dir = (args.data_dir or default_data_dir()).resolve()
    tracking_uri = (args.tracking_uri or os.getenv("MLFLOW_TRACKING_URI")
                    or f"sqlite:///{data_dir / 'mlflow' / 'mlflow.db'}")
    out = args.out or data_dir / "reports" / args.project / "spark_scores"
    with tempfile.TemporaryDirectory(prefix="leadscore-spark-") as tmp:
        source, delimiter = (args.source, ",") if args.source else project_source(args.project, data_dir, Path(tmp))
        if not Path(source).exists():
            raise SystemExit(f"{args.project}: no source file at {source}")
        started = time.perf_counter()
        spark = local_spark(cores=args.cores, driver_memory=args.driver_memory, arrow_batch_rows=args.arrow_batch_rows,
                            local_dir=Path(tmp) / "spark")
        try:
            frame = read_source(spark, source, delimiter)
            scores = score(spark, tracking_uri, args.project, frame, reasons=args.reasons, alias=args.alias)
            write_scores(scores, out)
            counts = spark.read.parquet(str(out)).selectExpr("count(*) AS n", "count(error) AS errors").first()
        finally:
            spark.stop()
    seconds = time.perf_counter() - started
    print(f"{args.project}: {counts.n:,} leads scored with {model_uri(args.project, args.alias)} on Spark "
          f"({counts.n - counts.errors:,} scored, {counts.errors:,} with an error) in {seconds:.1f} s -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
