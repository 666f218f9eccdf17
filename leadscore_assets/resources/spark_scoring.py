"""Batch scoring on Apache Spark: the registered champion through MLflow's `spark_udf`.

    from leadscore_assets.resources.spark_scoring import local_spark, score, write_scores

    spark = local_spark()
    scores = score(spark, "sqlite:///data/mlflow/mlflow.db", "web_sessions", "data/web_sessions/sessions.parquet")
    write_scores(scores, "data/reports/web_sessions/spark_scores")

Why this way: the model Spark runs is the one HTTP serves, `models:/leadscore-<project>@champion`
(lib/scoring/serving.py), so a lead gets on Spark what it gets from `<project>.lead_scores` and from the
scoring server: the same validation, features, sklearn pipeline, threshold, cut-point deciles
(and expected order value where the project has a revenue stage). Nothing of the pipeline is
re-implemented here; `mlflow.pyfunc.spark_udf(..., env_manager="local")` loads the pyfunc in each
Python worker of the current environment (no virtualenv or conda is built, nothing downloads).

Input is raw leads in the source's own columns: a Spark DataFrame, or the path of the source
Parquet / CSV file (CSV read as text, as `raw_contacts` holds a CSV). Output is one row per input
row: the lineage columns `_row_number` / `_source_file` where the input has them (a Parquet file
read here does), then the model's answer columns (`LeadScorer.output_columns`), `error` set
where a lead failed validation (its scores null).

What `spark_udf` needs from us (MLflow 3.17.2, PySpark 4.x), each handled below:

- A struct `result_type` is filled by `_convert_struct_values`, which casts each answer column
  with numpy (`astype(np.int32 / np.bool_ / np.str_)`) unless it holds only nulls. In a batch
  where some leads failed validation the model answers in `object` columns with None for them,
  and those casts break: an integer decile cannot hold None (the task fails), a boolean makes None
  False, and text makes None the string "None". So the UDF is declared with `decile` and
  `contact` as doubles (None -> NaN -> null) and the strings are cleaned after it: "None" -> null
  ("None" is one of validation's null tokens, so no lead id, grade, reason or error is ever
  literally that), then decile -> int and contact -> boolean. The result has the types
  `lead_scores` has.
- Input columns go in as one struct, so the model sees them by name (unnamed arguments are
  matched to the signature by position).
- Parquet files written as one row group are one Spark task: the input is repartitioned so every
  core works.
- A batch (`spark.sql.execution.arrow.maxRecordsPerBatch` rows) is one `predict` call; the
  model refuses a call in which no lead at all is valid (`InvalidRequest`), which fails the job.
  With 10,000-row batches that takes 10,000 invalid leads in a row; `write_scores` then raises
  `RefusedBatch` with the model's message. `error` names the row within its batch ("request row
  N"); `_row_number` and the lead id lead back to the source row.
- Rules over the whole table (unique ids, `deduplicate`) see one batch at a time, as over HTTP:
  a lead id repeated in the source is answered once per row, where the pipeline collapses or
  quarantines the repeats (none in the web_sessions demo data; 14 of 1,515 rows of linkedin's).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import mlflow

from leadscore_assets.lib.scoring.explain import REASON_COLUMNS
from leadscore_assets.lib.features.frame import ID
from leadscore_assets.lib.scoring.registry import model_files
from leadscore_assets.lib.scoring.serving import ERROR, PARAM_REASONS, SERVING_FILE
from leadscore_assets.lib.validation import FILE, LINEAGE, ROW

ALIAS = "champion"
ARROW_BATCH_ROWS = 10_000
# what the answer columns are declared as to spark_udf (see the module docstring), and then cast to
DECLARED = {ID: "string", "probability": "double", "decile": "double", "grade": "string", "contact": "double",
            "expected_order_value": "double", "expected_revenue": "double", ERROR: "string",
            **{c: "string" for c in REASON_COLUMNS}}
FINAL = {"decile": "int", "contact": "boolean"}
NULL_TEXT = "None"  # what `np.str_` makes of a None


def model_uri(project: str, alias: str = ALIAS) -> str:
    return f"models:/leadscore-{project}@{alias}"


def local_spark(cores: int = 2, driver_memory: str = "3g", arrow_batch_rows: int = ARROW_BATCH_ROWS,
                app_name: str = "leadscore-spark-scoring", local_dir: str | Path | None = None):
    """A local-mode SparkSession for a small machine with no network.

    Workers run this interpreter (`PYSPARK_PYTHON`), which has leadscore and the model's
    libraries; the driver binds to loopback; no UI, no progress bar; session time zone UTC so
    timestamps reach the model as the source wrote them; shuffles sized for a few cores.
    `spark.driver.memory` only applies when this call starts the JVM (the first session of the
    process). Nothing here fetches packages (no `spark.jars.packages`).
    """
    from pyspark.sql import SparkSession

    os.environ["PYSPARK_PYTHON"] = os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    builder = (
        SparkSession.builder.master(f"local[{cores}]").appName(app_name)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.memory", driver_memory)
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.pyspark.python", sys.executable)
        .config("spark.pyspark.driver.python", sys.executable)
        .config("spark.python.worker.reuse", "true")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", str(max(2 * cores, 2)))
        .config("spark.default.parallelism", str(cores))
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(arrow_batch_rows))
        .config("spark.local.dir", str(local_dir or Path(tempfile.gettempdir()) / "leadscore-spark"))
    )
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def read_source(spark, path: str | Path, delimiter: str = ","):
    """The source file as Spark reads it: Parquet with its own types, CSV (by suffix) all text with
    a header row, as `raw_contacts` holds a CSV export (blank cells null, which validation makes
    of them too). A Parquet file's rows carry `_row_number` (1-based, as `raw_contacts` numbers
    them) and `_source_file`, so an answer can be traced to its source row; the model's `error`
    only knows the row within its batch."""
    from pyspark.sql import functions as F

    path = str(path)
    if path.lower().endswith((".csv", ".csv.gz", ".txt")):
        return (spark.read.option("header", "true").option("inferSchema", "false").option("multiLine", "true")
                .option("escape", '"').option("sep", delimiter).csv(path))
    frame = spark.read.parquet(path)
    return frame.select((F.col("_metadata.row_index") + 1).alias(ROW), F.col("_metadata.file_name").alias(FILE),
                        *[F.col(f"`{c}`") for c in frame.columns])


def _serving_spec(local: Path, uri: str) -> dict:
    """The served model's `serving.json` (resolved config, raw columns, threshold, cut points)."""
    found = next(local.rglob(SERVING_FILE), None)
    if found is None:
        raise ValueError(f"{uri} is not a leadscore serving model (no {SERVING_FILE})")
    return json.loads(found.read_text())


def output_columns(spec: dict) -> list[str]:
    """The answer columns of a serving model, in order (`LeadScorer.output_columns`)."""
    revenue = ["expected_order_value", "expected_revenue"] if spec["config"].get("revenue") else []
    return [ID, "probability", "decile", "grade", "contact", *revenue, *REASON_COLUMNS, ERROR]


def result_type(columns: list[str]) -> str:
    """The struct the UDF is declared to return (DDL), `decile` and `contact` as doubles."""
    return ", ".join(f"{c} {DECLARED[c]}" for c in columns)


def score(spark, tracking_uri: str, project: str, data, *, reasons: bool = False, alias: str = ALIAS,
          partitions: int | None = None, keep: list[str] | tuple | None = None):
    """Score raw leads with `models:/leadscore-<project>@<alias>` on Spark; a DataFrame of answers.

    `data` is a Spark DataFrame of raw leads (the source's own columns; lineage columns of a
    `raw_contacts` export are left out) or the path of the source file. `reasons` turns the SHAP
    reasons on (several times slower; off by default for batch scoring). `partitions` (default:
    twice the cores) is the least number of Spark tasks. `keep` names input columns to carry
    next to the answer (default: the lineage columns `_row_number` and `_source_file`, where the
    input has them). Lazy: nothing runs until the result is written or collected.
    """
    from mlflow import MlflowClient
    from pyspark.sql import functions as F

    uri = model_uri(project, alias)
    # the version's files, through a client of `tracking_uri` (a local store's in place): MLflow
    # resolves a `models:/` URI given to spark_udf through the process-wide registry URI
    local = model_files(MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri), uri)
    columns = output_columns(_serving_spec(local, uri))
    frame = read_source(spark, data) if isinstance(data, (str, Path)) else data
    keep = [c for c in LINEAGE if c in frame.columns] if keep is None else list(keep)
    wanted = partitions or 2 * spark.sparkContext.defaultParallelism
    if frame.rdd.getNumPartitions() < wanted:
        frame = frame.repartition(wanted)
    udf = mlflow.pyfunc.spark_udf(spark, str(local), result_type=result_type(columns), env_manager="local",
                                  params={PARAM_REASONS: bool(reasons)})
    raw = [c for c in frame.columns if c not in LINEAGE]
    answered = frame.select(*keep, udf(F.struct(*[F.col(f"`{c}`") for c in raw])).alias("_answer"))
    out = []
    for c in columns:
        value = F.col(f"_answer.{c}")
        if DECLARED[c] == "string":
            value = F.when(value == NULL_TEXT, F.lit(None).cast("string")).otherwise(value)
        elif DECLARED[c] == "double":  # NaN (a lead not scored) as null
            value = F.when(F.isnan(value), F.lit(None).cast("double")).otherwise(value)
        out.append(value.cast(FINAL.get(c, DECLARED[c])).alias(c))
    return answered.select(*keep, *out)


class RefusedBatch(RuntimeError):
    """A batch in which no lead was valid: the model refuses such a call, and Spark the job."""


REFUSED = "no lead of the request can be scored"  # InvalidLeads' message (lib/scoring/serving.py)


def write_scores(scores, path: str | Path, mode: str = "overwrite") -> Path:
    """Write scores as a Parquet folder (one file per Spark task); return the folder.

    A batch of only invalid leads fails the job (see the module docstring); that failure is
    raised as `RefusedBatch` with the model's message (lead ids, fields and rules, no values of
    personal data) instead of a long Spark stack trace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        scores.write.mode(mode).parquet(str(path))
    except Exception as err:
        text = str(err)
        if REFUSED not in text:
            raise
        detail = text[text.index(REFUSED):].splitlines()[0]
        raise RefusedBatch(f"Spark scoring stopped: an Arrow batch held no valid lead, which the model refuses "
                           f"as a whole ({detail[:1500]})") from err
    return path
