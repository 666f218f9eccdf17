"""Real servers on loopback, as the tests and benchmarks start them: a free port, Dagster's GraphQL,
the served champion (`mlflow models serve` or `python -m leadscore_assets.serve`) with the raw
records to send it, and a throw-away PostgreSQL server."""

import importlib.util
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlencode

import duckdb

from leadscore_assets.testing.runs import warehouse_file


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def graphql(port: int, query: str) -> dict:
    """The `data` of a query to the Dagster webserver on 127.0.0.1:`port`."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=json.dumps({"query": query}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())["data"]


# -- the served champion over HTTP -------------------------------------------------------------

VENV_BIN = Path(sys.executable).parent
START_TIMEOUT_S = 60


def request(url: str, payload: dict | None = None, timeout: float = 30) -> tuple[int, object]:
    """(status, parsed JSON body or text) of a GET (no payload) or a JSON POST."""
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, body = resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        status, body = err.code, err.read().decode()
    try:
        return status, json.loads(body)
    except json.JSONDecodeError:
        return status, body


@contextmanager
def model_server(model_uri: str, tracking_uri: str, log_path: Path, workers: int = 1, ours: bool = False):
    """`mlflow models serve` (or, `ours`, `python -m leadscore_assets.serve`) on a free loopback
    port; yields its base URL, always stopped after.

    MLflow runs `uvicorn` from PATH, so this venv's bin goes first on it."""
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
    cmd = [str(VENV_BIN / "mlflow"), "models", "serve", "-m", model_uri, "--env-manager", "local",
           "-h", "127.0.0.1", "-p", str(port), "-w", str(workers)]
    if ours:
        cmd = [sys.executable, "-m", "leadscore_assets.serve", "--model-uri", model_uri, "--host", "127.0.0.1",
               "--port", str(port)]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the model server exited ({proc.returncode}): {log_path.read_text()[-3000:]}")
            try:
                if request(f"{base}/ping", timeout=2)[0] == 200:
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the model server did not answer /ping in {START_TIMEOUT_S} s: "
                                   f"{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield base
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 15)  # its own session: the server and the uvicorn workers it started
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait(timeout=15)


def raw_records(data_dir: Path, project: str, n: int) -> list[dict]:
    """n raw rows of validated leads as the export holds them (text), without lineage columns."""
    with duckdb.connect(str(warehouse_file(data_dir, project)), read_only=True) as conn:
        raw = conn.execute(f"""
            SELECT r.* EXCLUDE (_row_number, _source_file) FROM {project}.raw_contacts r
            JOIN {project}.validated_contacts v USING (_row_number) ORDER BY r._row_number LIMIT {n}""").df()
    return raw.to_dict(orient="records")


# -- a throw-away PostgreSQL server (the `scale` tests; scripts/postgres_run.sh does the same in shell) --

PG_BIN = Path(os.environ.get("LEADSCORE_PG_BIN", "/usr/lib/postgresql/15/bin"))


def postgres_missing() -> str | None:
    """Why a local PostgreSQL server cannot be started here (None when it can)."""
    missing = [name for name in ("initdb", "pg_ctl", "postgres") if not (PG_BIN / name).exists()]
    if missing:
        return (f"PostgreSQL server binaries {missing} not found in {PG_BIN} (Debian: apt-get install "
                "postgresql-15; another folder: LEADSCORE_PG_BIN)")
    if os.geteuid() == 0 and not shutil.which("runuser"):
        return "running as root, and PostgreSQL refuses root: `runuser` is needed to run it as another user"
    if importlib.util.find_spec("psycopg2") is None:
        return "psycopg2 is not installed (pip install -e '.[scale]')"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no `postgres` user to run the server as"
    return None


@contextmanager
def postgres_server(database: str = "leadscore", user: str = "leadscore") -> Iterator[dict]:
    """Start a PostgreSQL server for the block and stop it after, whatever happens.

    Its cluster lives in a new temp dir (removed afterwards), it listens only on 127.0.0.1 on a
    free port with its unix socket in that dir, `user` is a superuser with a random password
    (password authentication over TCP, like a real deployment) and `database` exists. Durability
    settings are off: nothing here outlives the block. As root the server runs as `postgres`.
    Yields host, port, user, password, database and dsn (a libpq URL), plus `env`: the
    DAGSTER_PG_* variables deploy/prod/dagster.yaml reads.
    """
    import psycopg2

    reason = postgres_missing()
    if reason:
        raise RuntimeError(reason)
    root = Path(tempfile.mkdtemp(prefix="leadscore-pg-"))
    as_root = os.geteuid() == 0
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    if as_root:
        os.chown(root, pwd.getpwnam("postgres").pw_uid, -1)
    password = secrets.token_hex(12)
    pwfile = root / "pw"
    pwfile.write_text(password + "\n")
    if as_root:
        os.chown(pwfile, pwd.getpwnam("postgres").pw_uid, -1)
    data, log, port = root / "data", root / "server.log", free_port()
    pg_ctl = [*prefix, str(PG_BIN / "pg_ctl"), "-D", str(data)]
    try:
        made = subprocess.run([*prefix, str(PG_BIN / "initdb"), "-D", str(data), "-U", user, f"--pwfile={pwfile}",
                               "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--locale=C.UTF-8"],
                              capture_output=True, text=True)
        pwfile.unlink()
        if made.returncode != 0:
            raise RuntimeError(f"initdb failed: {made.stdout}{made.stderr}")
        options = (f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={root} "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=50")
        started = subprocess.run([*pg_ctl, "-l", str(log), "-o", options, "-w", "-t", "60", "start"],
                                 capture_output=True, text=True)
        if started.returncode != 0:
            raise RuntimeError(f"PostgreSQL did not start: {started.stdout}{started.stderr}\n"
                               f"{log.read_text() if log.exists() else ''}")
        server = {"host": "127.0.0.1", "port": port, "user": user, "password": password, "database": database}
        admin = psycopg2.connect(host="127.0.0.1", port=port, user=user, password=password, dbname="postgres")
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{database}"')
        admin.close()
        server["dsn"] = f"postgresql://{user}:{password}@127.0.0.1:{port}/{database}"
        server["env"] = {"DAGSTER_PG_HOST": "127.0.0.1", "DAGSTER_PG_PORT": str(port), "DAGSTER_PG_USER": user,
                         "DAGSTER_PG_PASSWORD": password, "DAGSTER_PG_DB": database}
        yield server
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run([*pg_ctl, "-m", "immediate", "-w", "-t", "60", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


# -- a real MLflow tracking server (the UI and artifact links) --


@contextmanager
def mlflow_server(backend_uri: str, log: Path) -> Iterator[str]:
    """A real `mlflow server` on a free loopback port over `backend_uri` (one worker: shared
    cores), its base URL; its process group is stopped afterwards whatever happens."""
    port = free_port()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    with open(log, "w") as out:
        proc = subprocess.Popen([str(Path(sys.executable).parent / "mlflow"), "server", "--backend-store-uri", backend_uri,
                                 "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=5):
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"mlflow server did not answer on {base} within 120 s:\n{log.read_text()[-3000:]}")
            time.sleep(1)
        yield base
    finally:
        stop_process_group(proc, timeout=20)


def fetch_artifact(base: str, run_id: str, path: str) -> tuple[int, str, bytes]:
    """(HTTP status, content type, body) of one run artifact from the server's get-artifact route."""
    url = f"{base}/get-artifact?{urlencode({'path': path, 'run_uuid': run_id})}"
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:
            return answer.status, answer.headers.get_content_type(), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get_content_type(), error.read()


def png_width(data: bytes) -> int:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", data[:16]
    return struct.unpack(">I", data[16:20])[0]


def stop_process_group(proc: subprocess.Popen, timeout: float) -> None:
    """Stop a server started with `start_new_session=True` and everything it started: TERM to its
    process group, KILL if it is still there after `timeout` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=timeout)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue
