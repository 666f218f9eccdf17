#!/usr/bin/env bash
# Browse it: the MLflow UI in the background and the Dagster UI (dagster dev) in the foreground.
#   bash scripts/ui.sh        Dagster http://127.0.0.1:3000, MLflow http://127.0.0.1:5000
# Ports: DAGSTER_PORT, MLFLOW_PORT. Instance: DAGSTER_HOME (default .dagster_home/, its dagster.yaml
# copied from deploy/local/ when it has none). Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
DAGSTER_PORT="${DAGSTER_PORT:-3000}"
MLFLOW_PORT="${MLFLOW_PORT:-5000}"

if [ ! -x .venv/bin/dagster ]; then  # a fresh clone: install the way scripts/demo.sh does
  PY="${PYTHON:-python3}"
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e ".[dev]"
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
# its own process group, so stopping it also stops the uvicorn it starts
setsid mlflow ui --backend-store-uri "sqlite:///data/mlflow/mlflow.db" --host 127.0.0.1 --port "$MLFLOW_PORT" \
  >"$MLFLOW_LOG" 2>&1 &
MLFLOW_PID=$!
stop_mlflow() {
  kill -TERM -- "-$MLFLOW_PID" 2>/dev/null || return 0
  for _ in $(seq 20); do kill -0 -- "-$MLFLOW_PID" 2>/dev/null || return 0; sleep 0.5; done
  kill -KILL -- "-$MLFLOW_PID" 2>/dev/null || true
}
trap stop_mlflow EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

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
dagster dev -w workspace.yaml -h 127.0.0.1 -p "$DAGSTER_PORT"
