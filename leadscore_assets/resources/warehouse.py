"""The warehouse: one DuckDB file per project, written through write-audit-publish.

Readers (the sales team's exports, notebooks, the UI's previews) open the *published* file,
`<directory>/<project>/warehouse.duckdb` (tables `<project>.<table>`; the file is not named after
the project, whose name is the schema, so that DuckDB never sees a catalog and a schema of one
name). A run never writes it: on first use it claims the project and works on its own copy,
`<directory>/<project>/staged/<run id>.duckdb`, taken from the published
file (so state kept across runs - decisions, feedback, the champion's reference - is there).
Only the `published` asset at the end of a run whose blocking checks all passed swaps the copy
in, with one atomic rename: a blocked or failed run leaves every published table as it was,
and its staged copy stays behind to be inspected.

Claiming a project takes an exclusive lock on `<directory>/<project>/run.lock` (fcntl, held until
the run's resources are torn down; the operating system drops it when a process dies, so a
killed run cannot leave a stale lock). A second run of the same project fails at once, naming
the run that holds it, instead of mixing its tables with the first one's. Runs of different
projects never touch the same file. The lock is per process, which fits the in-process
executor every leadscore job uses.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import duckdb
from pydantic import PrivateAttr

KEEP_STAGED = 3  # staged copies of unpublished runs kept per project for inspection


def published_file(directory: str | Path, project: str) -> Path:
    """What readers open: the project's last published warehouse file."""
    return Path(directory) / project / "warehouse.duckdb"


def staged_file(directory: str | Path, project: str, run_id: str) -> Path:
    """The copy a run wrote; kept after a blocked run for inspection."""
    return Path(directory) / project / "staged" / f"{run_id}.duckdb"


class ProjectBusyError(RuntimeError):
    """Another run holds the project: this one must not write beside it."""


class Warehouse(dg.ConfigurableResource):
    """Per-project DuckDB files under `directory`, staged per run, published atomically."""

    directory: str

    _run_id: str = PrivateAttr(default="")
    _claims: dict[str, int] = PrivateAttr(default_factory=dict)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._run_id = context.run_id or f"adhoc-{os.getpid()}"

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self.release()

    # -- where things are -------------------------------------------------------------
    def published_path(self, project: str) -> Path:
        return published_file(self.directory, project)

    def staged_path(self, project: str) -> Path:
        return staged_file(self.directory, project, self.run_id)

    @property
    def run_id(self) -> str:
        return self._run_id or f"adhoc-{os.getpid()}"

    # -- claiming a project -------------------------------------------------------------
    def claim(self, project: str) -> None:
        """Lock the project for this run and make its staged copy (once per run)."""
        if project in self._claims:
            return
        root = Path(self.directory) / project
        root.mkdir(parents=True, exist_ok=True)
        lock = root / "run.lock"
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode(errors="replace").strip()
            os.close(fd)
            try:
                who = json.loads(holder)
                named = f"Dagster run {who['run_id']} (pid {who['pid']}, since {who['since']})"
            except (ValueError, KeyError):
                named = "another run"
            raise ProjectBusyError(
                f"project '{project}' is being run by {named}; this run {self.run_id} stops before writing "
                "so the two cannot mix their tables. It will run once started again after that one ends "
                "(under `dagster dev` runs of one project queue instead)."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"run_id": self.run_id, "pid": os.getpid(),
                                  "since": datetime.now(timezone.utc).isoformat(timespec="seconds")}).encode(), 0)
        self._claims[project] = fd
        staged = self.staged_path(project)
        if not staged.exists():
            staged.parent.mkdir(parents=True, exist_ok=True)
            published = self.published_path(project)
            if published.exists():
                shutil.copyfile(published, staged)

    def release(self) -> None:
        for fd in self._claims.values():
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        self._claims.clear()

    # -- using it -----------------------------------------------------------------------
    @contextmanager
    def connection(self, project: str) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection to this run's staged copy of the project, closed whatever happens."""
        self.claim(project)
        conn = duckdb.connect(str(self.staged_path(project)))
        try:
            yield conn
        finally:
            conn.close()

    def publish(self, project: str) -> dict:
        """Swap this run's staged copy in as the published file (one atomic rename)."""
        self.claim(project)
        staged, published = self.staged_path(project), self.published_path(project)
        with duckdb.connect(str(staged)) as conn:
            conn.execute("CHECKPOINT")  # everything in the file itself, nothing left in a WAL
            tables = conn.execute(
                "SELECT table_name, estimated_size FROM duckdb_tables() WHERE schema_name = ? ORDER BY 1", [project]
            ).fetchall()
        os.replace(staged, published)
        self._prune(project)
        return {"path": str(published), "tables": dict(tables), "published_at": time.time()}

    def _prune(self, project: str) -> None:
        """Keep the newest few staged copies (blocked runs, for inspection); drop older ones."""
        folder = Path(self.directory) / project / "staged"
        copies = sorted(folder.glob("*.duckdb"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in copies[KEEP_STAGED:]:
            old.unlink(missing_ok=True)
            Path(f"{old}.wal").unlink(missing_ok=True)
