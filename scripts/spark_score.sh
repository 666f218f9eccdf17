#!/usr/bin/env bash
# Score a project's source on Apache Spark (local mode) with its registered champion
# (models:/leadscore-<project>@champion, through MLflow's spark_udf), to a Parquet folder.
#
#   scripts/spark_score.sh web_sessions                 # -> data/reports/web_sessions/spark_scores/
#   scripts/spark_score.sh web_sessions --reasons       # with the six SHAP reason columns (slower)
#   scripts/spark_score.sh linkedin --source export.csv --out /tmp/linkedin_scores
#
# Options: --data-dir (default $LEADSCORE_DATA_DIR or data/), --source, --out, --tracking-uri,
# --alias, --reasons, --cores (2), --driver-memory (3g), --arrow-batch-rows (10000).
# Needs Java 17 and pyspark (pip install -e ".[scale]"); nothing is downloaded at run time.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 1 ] || [ "${1#-}" != "$1" ]; then
  echo "usage: scripts/spark_score.sh <project> [--reasons] [--source FILE] [--out DIR] [--data-dir DIR]" >&2
  exit 2
fi
if ! command -v java >/dev/null 2>&1 && [ -z "${JAVA_HOME:-}" ]; then
  echo "Spark needs Java, which was not found. Install it with:" >&2
  echo "  apt-get install openjdk-17-jre-headless" >&2
  exit 1
fi
PY="${PYTHON:-.venv/bin/python}"
if ! "$PY" -c "import pyspark" 2>/dev/null; then
  echo "pyspark is not installed in $PY; install the scale extras: .venv/bin/pip install -e '.[scale]'" >&2
  exit 1
fi
exec "$PY" -m leadscore_assets.spark_score "$@"
