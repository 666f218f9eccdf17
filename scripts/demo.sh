#!/usr/bin/env bash
# Quick start: install into .venv, write the demo data, run the main job (every source, raw -> scores).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e ".[dev]"
export DAGSTER_HOME="${DAGSTER_HOME:-$PWD/.dagster_home}"
mkdir -p "$DAGSTER_HOME"
# runs of one project queue behind each other; dead runs are marked failed (see the file)
[ -f "$DAGSTER_HOME/dagster.yaml" ] || cp deploy/local/dagster.yaml "$DAGSTER_HOME/dagster.yaml"
.venv/bin/python -m leadscore_assets.demo_data all --data-dir data
.venv/bin/dagster job execute -m leadscore_assets.definitions -j score_all_sources
echo "Done. Browse it: DAGSTER_HOME=$DAGSTER_HOME .venv/bin/dagster dev   (http://127.0.0.1:3000)"
