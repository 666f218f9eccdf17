#!/usr/bin/env bash
# The production profile, verified on this machine: start a throw-away PostgreSQL server from
# Debian's packages, keep the Dagster instance in it (deploy/prod/dagster.yaml, dagster-postgres)
# and publish the warehouse to it (LEADSCORE_WAREHOUSE_URL), run the LinkedIn pipeline with
# LEADSCORE_ENV=prod, then show what PostgreSQL holds: the run, its events, the published tables.
#
#   bash scripts/postgres_run.sh                     # 2,500 demo contacts, two runs (~5 min on 2 cores)
#   ROWS=20000 RUNS=1 KEEP=1 bash scripts/postgres_run.sh   # more rows, one run; keep the temp dir
#
# The second run starts on "another machine" (an empty local warehouse directory): it restores the
# project from PostgreSQL, so its champion/challenger decision is the second row of
# model_decisions, after the first run's.
#
# Everything lives in one temp dir (cluster, DAGSTER_HOME, data, MLflow store); the server listens
# only on 127.0.0.1 (a free port; its unix socket in the temp dir) and is stopped on exit, however
# the script ends. As root the server runs as the `postgres` user (PostgreSQL refuses root).
# Needs: postgresql-15 (LEADSCORE_PG_BIN for another bin folder) and `pip install -e '.[scale]'`.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY="$ROOT/.venv/bin/python"
PG_BIN="${LEADSCORE_PG_BIN:-/usr/lib/postgresql/15/bin}"
ROWS="${ROWS:-2500}"
JOB="${JOB:-linkedin_pipeline}"
RUNS="${RUNS:-2}"
PROJECT="${PROJECT:-linkedin}"

for tool in initdb pg_ctl postgres; do
  [ -x "$PG_BIN/$tool" ] || { echo "no $PG_BIN/$tool: apt-get install postgresql-15 (or set LEADSCORE_PG_BIN)" >&2; exit 2; }
done
command -v psql >/dev/null || { echo "psql not found: apt-get install postgresql-client-15" >&2; exit 2; }
"$PY" -c "import dagster_postgres, psycopg2" 2>/dev/null \
  || { echo "dagster-postgres / psycopg2 missing: .venv/bin/pip install -e '.[scale]'" >&2; exit 2; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/leadscore-pg-run.XXXXXX")
chmod 755 "$TMP"  # the server's user must reach its cluster below it
AS=()
if [ "$(id -u)" = 0 ]; then AS=(runuser -u postgres --); fi
PGDIR="$TMP/pg"
mkdir -p "$PGDIR"
[ ${#AS[@]} -eq 0 ] || chown postgres "$PGDIR"

cleanup() {
  local rc=$?
  if [ -f "$PGDIR/data/postmaster.pid" ]; then
    "${AS[@]}" "$PG_BIN/pg_ctl" -D "$PGDIR/data" -m fast -w -t 60 stop >/dev/null 2>&1 || true
  fi
  if [ "${KEEP:-0}" = 1 ]; then echo "kept: $TMP (server stopped)"; else rm -rf "$TMP"; fi
  exit $rc
}
trap cleanup EXIT INT TERM

PGUSER=leadscore
PGPASSWORD=$("$PY" -c "import secrets; print(secrets.token_hex(12))")
PORT=$("$PY" -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
export PGUSER PGPASSWORD PGHOST=127.0.0.1 PGPORT=$PORT
echo "$PGPASSWORD" > "$PGDIR/pw"
[ ${#AS[@]} -eq 0 ] || chown postgres "$PGDIR/pw"

echo "== PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PORT (cluster in $PGDIR)"
"${AS[@]}" "$PG_BIN/initdb" -D "$PGDIR/data" -U "$PGUSER" --pwfile="$PGDIR/pw" --auth-host=scram-sha-256 \
  --auth-local=trust -E UTF8 --locale=C.UTF-8 >"$PGDIR/initdb.log" 2>&1 \
  || { cat "$PGDIR/initdb.log" >&2; exit 1; }
rm -f "$PGDIR/pw"
"${AS[@]}" "$PG_BIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/server.log" -w -t 60 \
  -o "-c listen_addresses=127.0.0.1 -c port=$PORT -c unix_socket_directories=$PGDIR" start >/dev/null \
  || { cat "$PGDIR/server.log" >&2; exit 1; }
# two databases on one server: the Dagster instance, and the published warehouse
psql -q -d postgres -c "CREATE DATABASE dagster" -c "CREATE DATABASE leadscore"

export DAGSTER_HOME="$TMP/dagster_home"
mkdir -p "$DAGSTER_HOME"
cp deploy/prod/dagster.yaml "$DAGSTER_HOME/"
export DAGSTER_PG_HOST=127.0.0.1 DAGSTER_PG_PORT=$PORT DAGSTER_PG_USER=$PGUSER DAGSTER_PG_PASSWORD=$PGPASSWORD \
  DAGSTER_PG_DB=dagster
export LEADSCORE_ENV=prod
export LEADSCORE_DATA_DIR="$TMP/data"
export LEADSCORE_WAREHOUSE_URL="postgresql://$PGUSER:$PGPASSWORD@127.0.0.1:$PORT/leadscore"
export MLFLOW_TRACKING_URI="sqlite:///$TMP/mlflow/mlflow.db"
export MLFLOW_ARTIFACT_LOCATION="$TMP/mlflow/artifacts"
export LEADSCORE_MLFLOW_UI_URL="${LEADSCORE_MLFLOW_UI_URL:-http://127.0.0.1:5000}"
export LEADSCORE_DAGSTER_UI_URL="${LEADSCORE_DAGSTER_UI_URL:-http://127.0.0.1:3000}"
mkdir -p "$TMP/mlflow"

echo "== demo data: $ROWS $PROJECT contacts in $LEADSCORE_DATA_DIR"
"$PY" -m leadscore_assets.demo_data "$PROJECT" --rows "$ROWS" --seed 11 --data-dir "$LEADSCORE_DATA_DIR" >/dev/null

# Each run as if on another machine: its own, empty warehouse directory, so the second run starts
# from what PostgreSQL holds (restored), not from a local file.
job_rc=0
for run in $(seq 1 "$RUNS"); do
  export LEADSCORE_WAREHOUSE_DIR="$TMP/machine-$run/warehouse"
  echo "== run $run: dagster job execute -j $JOB (LEADSCORE_ENV=prod, empty $LEADSCORE_WAREHOUSE_DIR; log: $TMP/run-$run.log)"
  started=$(date +%s)
  set +e
  "$ROOT/.venv/bin/dagster" job execute -m leadscore_assets.definitions -j "$JOB" >"$TMP/run-$run.log" 2>&1
  job_rc=$?
  set -e
  echo "   exit code $job_rc after $(( $(date +%s) - started )) s"
  if [ $job_rc -ne 0 ]; then echo "--- last lines of the run's log"; tail -n 40 "$TMP/run-$run.log"; break; fi
done

echo
echo "== Dagster instance in PostgreSQL (database dagster): runs"
psql -d dagster -P pager=off -c "SELECT run_id, pipeline_name AS job, status,
    round(extract(epoch FROM update_timestamp - create_timestamp)) AS seconds FROM runs ORDER BY create_timestamp"
echo "== its events (event_logs), by type"
psql -d dagster -P pager=off -c "SELECT dagster_event_type AS event, count(*) FROM event_logs
    WHERE dagster_event_type IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1"
echo "== assets it knows (asset_keys): $(psql -d dagster -Atc "SELECT count(*) FROM asset_keys")"

echo
echo "== published warehouse in PostgreSQL (database leadscore, schema $PROJECT)"
if [ "$(psql -d leadscore -Atc "SELECT count(*) FROM pg_namespace WHERE nspname = '$PROJECT'")" != 1 ]; then
  echo "   nothing published: schema $PROJECT is absent (is LEADSCORE_WAREHOUSE_URL wired into the prod Warehouse?)"
  exit 1
fi
psql -d leadscore -P pager=off -c "SELECT table_name AS \"table\",
    (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM %I.%I', table_schema, table_name),
      false, true, '')))[1]::text::bigint AS \"rows\"
    FROM information_schema.tables WHERE table_schema = '$PROJECT' ORDER BY 1"
echo "== state kept across runs: $PROJECT.model_decisions (one row per run; run 2 started from PostgreSQL)"
psql -d leadscore -P pager=off -c "SELECT dagster_run_id, decision, challenger_version FROM $PROJECT.model_decisions"
psql -d leadscore -Atc "SELECT 'published at ' || to_timestamp((obj_description(oid, 'pg_namespace')::json->>'published_at')::float)
    FROM pg_namespace WHERE nspname = '$PROJECT'"
exit $job_rc
