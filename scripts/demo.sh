#!/usr/bin/env bash
# Quick start: install into .venv, write the demo data, run the main job (every source, raw -> scores).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
install_venv dev
export DAGSTER_HOME="${DAGSTER_HOME:-$PWD/.dagster_home}"
mkdir -p "$DAGSTER_HOME"
# runs of one project queue behind each other; dead runs are marked failed (see the file)
[ -f "$DAGSTER_HOME/dagster.yaml" ] || cp deploy/local/dagster.yaml "$DAGSTER_HOME/dagster.yaml"
echo "Writing the demo data into data/"
quietly .venv/bin/python -m leadscore_assets.demo_data all --data-dir data
# links in the asset metadata and MLflow runs point where scripts/ui.sh serves the two UIs
export LEADSCORE_MLFLOW_UI_URL="${LEADSCORE_MLFLOW_UI_URL:-http://127.0.0.1:${MLFLOW_PORT:-5000}}"
export LEADSCORE_DAGSTER_UI_URL="${LEADSCORE_DAGSTER_UI_URL:-http://127.0.0.1:${DAGSTER_PORT:-3000}}"
# Dagster's own log of the run stays with the instance; the terminal gets one line per finished
# step (elapsed time, project, step), a line each minute naming what is still running, and at the
# end the Python warnings of the log counted by kind (leadscore_assets/run_progress.py).
mkdir -p "$DAGSTER_HOME/logs"
LOG="$DAGSTER_HOME/logs/demo-$(date +%Y%m%d-%H%M%S).log"
echo "Running every source (score_all_sources, about 10 minutes on 2 cores); Dagster's log: $LOG"
if ! .venv/bin/python -m leadscore_assets.run_progress --job score_all_sources --log "$LOG"; then
  echo "The run failed. Last lines of its log:" >&2
  tail -n 40 "$LOG" >&2
  echo "Full log: $LOG" >&2
  exit 1
fi
echo
.venv/bin/python -m leadscore_assets.demo_summary --data-dir data
echo
echo "Dagster's log of this run: $LOG"
echo "Browse it (Dagster UI $LEADSCORE_DAGSTER_UI_URL, MLflow UI $LEADSCORE_MLFLOW_UI_URL): bash scripts/ui.sh"
