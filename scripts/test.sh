#!/usr/bin/env bash
# Install into .venv (from scratch on a clean machine) and run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
install_venv dev,scale   # scale: pyspark, dagster-postgres (opt-in at run time)
# the fast set (unit, asset and one in-process pipeline run; about 2 minutes on 2 cores), then
# the slow set (real servers, daemon, browser, many pipeline runs); `pytest` alone runs both
.venv/bin/python -m pytest -m "not slow" "$@"
.venv/bin/python -m pytest -m slow "$@"
