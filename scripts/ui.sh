#!/usr/bin/env bash
# Browse it: the MLflow UI and the Dagster UI (`dg dev`: webserver, daemon, code server).
#   bash scripts/ui.sh        Dagster http://127.0.0.1:3000, MLflow http://127.0.0.1:5000
# Ports: DAGSTER_PORT, MLFLOW_PORT. Instance: DAGSTER_HOME (default .dagster_home/, its dagster.yaml
# copied from deploy/local/ when it has none). Ctrl-C, or a TERM to this script, stops both and
# every process they started within a few seconds (each runs in a process group of its own, which
# is signalled whole: INT, then KILL for what is left after STOP_GRACE_S, default 4 s).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
DAGSTER_PORT="${DAGSTER_PORT:-3000}"
MLFLOW_PORT="${MLFLOW_PORT:-5000}"

if [ ! -x .venv/bin/dg ]; then  # a fresh clone: install the way scripts/demo.sh does
  PY="${PYTHON:-python3}"
  out="$(mktemp)"
  echo "Installing into .venv (its output only if it fails)"
  if ! { { [ -x .venv/bin/python ] || "$PY" -m venv .venv; } &&
         .venv/bin/pip install -q --disable-pip-version-check --upgrade pip &&
         .venv/bin/pip install -q --disable-pip-version-check -e ".[dev]"; } >"$out" 2>&1; then
    cat "$out" >&2; rm -f "$out"; echo "the install failed" >&2; exit 1
  fi
  rm -f "$out"
fi
export PATH="$ROOT/.venv/bin:$PATH"  # mlflow starts uvicorn from PATH

export DAGSTER_HOME="${DAGSTER_HOME:-$ROOT/.dagster_home}"
case "$DAGSTER_HOME" in /*) ;; *) DAGSTER_HOME="$ROOT/$DAGSTER_HOME" ;; esac
mkdir -p "$DAGSTER_HOME/logs" data/mlflow
[ -f "$DAGSTER_HOME/dagster.yaml" ] || cp deploy/local/dagster.yaml "$DAGSTER_HOME/dagster.yaml"
if ! ls data/warehouse/*/warehouse.duckdb >/dev/null 2>&1; then
  echo "note: nothing has been run yet (no data/warehouse/<project>/warehouse.duckdb); run bash scripts/demo.sh" \
       "or materialize from the UI." >&2
fi

for port in "$DAGSTER_PORT" "$MLFLOW_PORT"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port on 127.0.0.1 is already in use (set DAGSTER_PORT / MLFLOW_PORT to other ports)" >&2
    exit 1
  fi
done

MLFLOW_LOG="$DAGSTER_HOME/logs/mlflow-ui.log"
STOP_GRACE_S="${STOP_GRACE_S:-4}"
GROUPS_STARTED=()
# Each UI is started with setsid: a session and process group of its own whose id is its pid, so
# signalling the group reaches everything it started (uvicorn; the webserver, daemon and code
# servers) and Ctrl-C in the terminal reaches this script only, which then stops them. `trap -
# INT QUIT` first: bash starts background commands with SIGINT ignored, and Dagster maps SIGTERM
# to its SIGINT handler, so without it neither signal would stop `dagster dev`.
stop_all() {
  trap '' INT TERM  # a second Ctrl-C or TERM does not cut the stopping short
  local g alive
  for g in "${GROUPS_STARTED[@]}"; do kill -INT -- "-$g" 2>/dev/null || true; done
  for _ in $(seq $((STOP_GRACE_S * 5))); do
    alive=0
    for g in "${GROUPS_STARTED[@]}"; do kill -0 -- "-$g" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && return 0
    sleep 0.2
  done
  echo "still running after ${STOP_GRACE_S} s: killed" >&2
  for g in "${GROUPS_STARTED[@]}"; do kill -KILL -- "-$g" 2>/dev/null || true; done
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

(trap - INT QUIT; exec setsid mlflow ui --backend-store-uri "sqlite:///data/mlflow/mlflow.db" --host 127.0.0.1 \
  --port "$MLFLOW_PORT" >"$MLFLOW_LOG" 2>&1 </dev/null) &
MLFLOW_PID=$!
GROUPS_STARTED+=("$MLFLOW_PID")

# the addresses links are built with: asset metadata -> MLflow, MLflow runs -> Dagster runs
export LEADSCORE_MLFLOW_UI_URL="http://127.0.0.1:$MLFLOW_PORT"
export LEADSCORE_DAGSTER_UI_URL="http://127.0.0.1:$DAGSTER_PORT"
for _ in $(seq 60); do
  python -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=2)" "$LEADSCORE_MLFLOW_UI_URL/health" \
    2>/dev/null && break
  if ! kill -0 "$MLFLOW_PID" 2>/dev/null; then
    echo "mlflow ui stopped; its log ($MLFLOW_LOG):" >&2; tail -n 20 "$MLFLOW_LOG" >&2; exit 1
  fi
  sleep 1
done
echo "MLflow UI:  $LEADSCORE_MLFLOW_UI_URL   (log: $MLFLOW_LOG)"
echo "Dagster UI: http://127.0.0.1:$DAGSTER_PORT   (instance: $DAGSTER_HOME; Ctrl-C stops both)"
# `dg dev`, the command Dagster 1.13 names for `dagster dev` (which prints a SupersessionWarning).
# In the background with `wait`, so that this script's traps run as soon as a signal arrives.
(trap - INT QUIT; exec setsid dg dev -w workspace.yaml -h 127.0.0.1 -p "$DAGSTER_PORT" </dev/null) &
DEV_PID=$!
GROUPS_STARTED+=("$DEV_PID")
set +e
wait "$DEV_PID"
status=$?
set -e
exit "$status"
