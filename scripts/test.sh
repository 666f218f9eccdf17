#!/usr/bin/env bash
# Install into .venv (from scratch on a clean machine) and run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
quietly() {  # a step's output is shown only when it fails
  local out; out="$(mktemp)"
  if ! "$@" >"$out" 2>&1; then cat "$out" >&2; rm -f "$out"; echo "failed: $*" >&2; exit 1; fi
  rm -f "$out"
}
echo "Installing into .venv (its output only if it fails)"
[ -x .venv/bin/python ] || quietly "$PY" -m venv .venv
quietly .venv/bin/pip install -q --disable-pip-version-check --upgrade pip
quietly .venv/bin/pip install -q --disable-pip-version-check -e ".[dev,scale]"   # scale: pyspark, dagster-postgres (opt-in at run time)
# the fast set (unit, asset and one in-process pipeline run; about 2 minutes on 2 cores), then
# the slow set (real servers, daemon, browser, many pipeline runs); `pytest` alone runs both
.venv/bin/python -m pytest -m "not slow" "$@"
.venv/bin/python -m pytest -m slow "$@"
