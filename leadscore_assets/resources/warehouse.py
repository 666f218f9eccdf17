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

Claiming a project writes a lease into `<directory>/<project>/run.lock`: the run id and the
processes running it. A second run of the same project fails at once, naming the run that holds
it, instead of mixing its tables with the first one's. The lease belongs to the run, not to a
process: under the multiprocess executor every step is its own process, and the project's next
step (another process of the same run) continues the lease. It ends when `published` swaps the
copy in, when an in-process run's resources are torn down, or when the holder is over: the
Dagster instance says its run finished, or none of the processes named in the lease is alive.
The process check wins over the instance: a `dagster job execute` killed with SIGKILL stays
STARTED in the instance (nothing marks a CLI run dead, and run monitoring may take minutes), so
trusting the instance alone would lock the project until someone cleans up by hand. Each process
is recorded with its start time, so a pid the system has since given to another process counts
as gone. A run that takes a dead run's lease over says so in its log, naming that run, and marks
it failed in the instance. A lease written on another host is judged by the instance alone: its
pids mean nothing here. Runs of different projects never touch the same file, so they run side
by side.

A run that takes the project (not one continuing its own lease) first reads the published file
through (`resources/publication.check_readable`): a corrupt file fails the run at once, naming the file
and the rollback command, before any time is spent. Publishing keeps the file it replaces as
`<project>/last_good.duckdb` (a hard link), which `python -m leadscore_assets.rollback <project>`
puts back. Then, when the resource knows the MLflow store and the data directory, the run brings
the champion alias and the call list in line with the published file (`resources/publication.reconcile`;
a change is logged as "repaired: ..." and shown in `published`'s metadata), ends MLflow runs dead
runs left RUNNING, and prunes what failed runs left: staged copies beyond the newest few (all of
them when the disk is short of room for the new copy) and their per-run report files.
"""

from __future__ import annotations

import fcntl
import json
import multiprocessing
import os
import shutil
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import duckdb
from pydantic import PrivateAttr

from leadscore_assets.resources import publication as publication
from leadscore_assets.resources.publication import CorruptWarehouseError

KEEP_STAGED = 3  # staged copies of unpublished runs kept per project for inspection


def published_file(directory: str | Path, project: str) -> Path:
    """What readers open: the project's last published warehouse file."""
    return Path(directory) / project / "warehouse.duckdb"


def staged_file(directory: str | Path, project: str, run_id: str) -> Path:
    """The copy a run wrote; kept after a blocked run for inspection."""
    return Path(directory) / project / "staged" / f"{run_id}.duckdb"


class ProjectBusyError(RuntimeError):
    """Another run holds the project: this one must not write beside it."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def process_start(pid: int) -> str | None:
    """When a process started (clock ticks since boot, /proc/<pid>/stat field 22), or None when
    it cannot be read. With the pid it names one process: a reused pid has another start."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rindex(")") + 2:].split()[19]  # fields from 3 on; the name may hold spaces
    except (OSError, ValueError, IndexError):
        pass
    try:
        import psutil  # not a dependency; used where /proc is not (macOS)

        return repr(psutil.Process(pid).create_time())
    except Exception:
        return None


def _process_alive(pid: int | None, started: str | None) -> bool:
    """Is the process recorded in a lease still the one running? A pid whose start time differs
    from the recorded one was reused by another process: the recorded one is gone."""
    if not pid or not _alive(int(pid)):
        return False
    if started is None:  # a lease written before start times were recorded
        return True
    now = process_start(int(pid))
    return now is None or now == started


@contextmanager
def _locked_lease(path: Path) -> Iterator[int]:
    """The lease file, locked against other processes for one read-modify-write (milliseconds)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _read_lease(fd: int) -> dict | None:
    text = os.pread(fd, 4096, 0).decode(errors="replace").strip()
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


class Warehouse(dg.ConfigurableResource):
    """Per-project DuckDB files under `directory`, staged per run, published atomically."""

    directory: str
    # production: the published warehouse is this PostgreSQL database, one schema per project
    # (resources/postgres_warehouse.py); the local published file is then only a cache of it
    postgres_url: str | None = None
    # what a run brings in line with the published file when it takes the project (the champion
    # alias, the call list under <data_dir>/reports) and where it ends MLflow runs left RUNNING;
    # without them it checks the file and prunes staged copies only
    tracking_uri: str | None = None
    data_dir: str | None = None

    _run_id: str = PrivateAttr(default="")
    _instance: object = PrivateAttr(default=None)
    _log: object = PrivateAttr(default=None)
    _claims: set[str] = PrivateAttr(default_factory=set)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._run_id = context.run_id or f"adhoc-{os.getpid()}"
        self._instance = context.instance
        self._log = context.log  # the run's log: a taken-over lease is reported where the run is watched

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        # A step process of a multiprocess run hands the lease on to the run's next step; a run
        # in one process is over when its resources are torn down.
        if multiprocessing.parent_process() is None:
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
        """Take (or continue) this run's lease on the project and make its staged copy."""
        if project in self._claims:
            return
        root = Path(self.directory) / project
        root.mkdir(parents=True, exist_ok=True)
        with _locked_lease(root / "run.lock") as fd:
            holder = _read_lease(fd)
            if holder and holder.get("run_id") != self.run_id and self._still_running(holder):
                raise ProjectBusyError(
                    f"project '{project}' is being run by Dagster run {holder['run_id']} (pid {holder.get('pid')}, "
                    f"since {holder.get('since')}); this run {self.run_id} stops before writing so the two cannot "
                    "mix their tables. It will run once started again after that one ends (under `dagster dev` "
                    "runs of one project queue instead)."
                )
            continued = holder if holder and holder.get("run_id") == self.run_id else {}
            staged, published = self.staged_path(project), self.published_path(project)
            if not staged.exists():
                self._restore(project, published)
                if published.exists():  # before this run spends any time, and before it holds the lease
                    self._check_published(project, published)
            if holder and holder.get("run_id") != self.run_id:
                self._take_over(project, holder)
            parent = multiprocessing.parent_process()  # a step process's executor, alive while the run is
            lease = {"run_id": self.run_id, "host": socket.gethostname(),
                     "pid": os.getpid(), "pid_start": process_start(os.getpid()),
                     "step_parent_pid": parent.pid if parent else None,
                     "step_parent_start": process_start(parent.pid) if parent else None,
                     "since": continued.get("since") or datetime.now(timezone.utc).isoformat(timespec="seconds")}
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(lease).encode(), 0)
            if not staged.exists():
                staged.parent.mkdir(parents=True, exist_ok=True)
                self._prune(project, room_for=published.stat().st_size if published.exists() else 0)
                if published.exists():
                    shutil.copyfile(published, staged)
        self._claims.add(project)
        if not continued:  # this run just took the project: nothing else of it can be running
            self._start_of_run(project)

    def _check_published(self, project: str, published: Path) -> None:
        try:
            publication.check_readable(published)
        except CorruptWarehouseError as err:
            last_good = publication.last_good_file(self.directory, project)
            fix = (f"Roll back to the last good copy ({last_good}), which also puts the champion alias and the "
                   f"call list back in line, with: {publication.rollback_command(project, self.data_dir, self.directory)}"
                   if last_good.exists() else
                   f"There is no last good copy ({last_good}) to roll back to: restore {published} from a backup, "
                   "or move it aside to start the project afresh.")
            raise CorruptWarehouseError(
                f"project '{project}': the published warehouse {published} is corrupt, so run {self.run_id} stops "
                f"before doing anything ({err}). {fix}") from err

    def _start_of_run(self, project: str) -> None:
        """Bring the alias and call list in line with the published file, end MLflow runs left
        RUNNING, prune failed runs' report files; each change said in the run's log. Best effort:
        a registry that cannot be reached is reported, and `published` reconciles again."""
        log = self._log or dg.get_dagster_logger()
        published = self.published_path(project)
        client = self._mlflow_client()
        reports = Path(self.data_dir) / "reports" / project if self.data_dir else None
        repairs: list[str] = []
        try:
            repairs = publication.reconcile(
                published, project, client=client,
                call_list_folder=publication.call_list_dir(self.data_dir, project) if self.data_dir else None)
        except Exception as err:
            log.warning(f"project '{project}': could not bring the champion alias and call list in line with "
                        f"{published}: {type(err).__name__}: {err}")
        for repair in repairs:
            log.warning(f"repaired: {repair}")
        if repairs:
            with duckdb.connect(str(self.staged_path(project))) as conn:
                publication.record_repairs(conn, self.run_id, repairs)
        if client is not None:
            try:
                if ended := publication.end_abandoned_runs(client, f"leadscore/{project}", self.run_id):
                    log.warning(f"ended {len(ended)} MLflow run(s) left RUNNING by a killed run: {ended}")
            except Exception as err:
                log.warning(f"could not end MLflow runs left RUNNING in leadscore/{project}: {err}")
        if reports is not None and reports.is_dir():
            keep = {self.run_id}
            if published.exists():
                with duckdb.connect(str(published), read_only=True) as conn:
                    keep |= publication.published_runs(conn, project)
            if removed := publication.prune_run_reports(reports, keep):
                log.info(f"project '{project}': removed {len(removed)} report file(s) of older runs that never "
                         f"published (the newest {publication.KEEP_FAILED_REPORTS} such runs' are kept)")

    def _mlflow_client(self):
        """A client of the MLflow store, or None when the resource was not given one or its
        SQLite file does not exist yet (then there is no alias and no run to look at)."""
        if not self.tracking_uri:
            return None
        if self.tracking_uri.startswith("sqlite:///") and not Path(self.tracking_uri.removeprefix("sqlite:///")).exists():
            return None
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def _restore(self, project: str, published: Path) -> None:
        """Production: rebuild the local published file from what PostgreSQL holds for the project
        (the last publish from any machine); nothing when PostgreSQL holds nothing yet."""
        if self.postgres_url:
            from leadscore_assets.resources.postgres_warehouse import restore_schema

            restore_schema(self.postgres_url, project, published)

    def _holder_run(self, holder: dict):
        """The lease's run as the Dagster instance records it, or None when it cannot say."""
        try:
            return self._instance.get_run_by_id(holder["run_id"]) if self._instance is not None else None
        except Exception:  # an instance that cannot answer (e.g. a disposed test instance)
            return None

    def _still_running(self, holder: dict) -> bool:
        """Is the run named in a lease still going? Not when none of its processes is alive (even if
        the instance still says STARTED: a killed CLI run is never marked), nor when the instance
        says it finished. A lease from another host is judged by the instance alone."""
        run = self._holder_run(holder)
        if run is not None and run.is_finished:
            return False
        if holder.get("host") not in (None, socket.gethostname()):
            return True  # its pids name processes on another machine: only the instance can tell
        return any(_process_alive(holder.get(pid), holder.get(started))
                   for pid, started in (("pid", "pid_start"), ("step_parent_pid", "step_parent_start")))

    def _take_over(self, project: str, holder: dict) -> None:
        """Say in this run's log whose lease is taken over and why; mark that run failed in the
        instance when the instance still has it running (its processes are gone)."""
        run = self._holder_run(holder)
        why = "the Dagster instance says it finished" if run is not None and run.is_finished else \
            f"none of its processes (pid {holder.get('pid')}, step parent {holder.get('step_parent_pid')}) is alive"
        message = (f"project '{project}': taking over the lease of Dagster run {holder.get('run_id')} "
                   f"(since {holder.get('since')}): {why}. Its staged copy is left for inspection.")
        (self._log or dg.get_dagster_logger()).warning(message)
        if run is not None and not run.is_finished:
            try:
                self._instance.report_run_failed(
                    run, message=f"Its processes were gone when run {self.run_id} took over its lease on "
                                 f"project '{project}' (killed?).")
            except Exception as err:  # marking is a courtesy: the take-over stands without it
                (self._log or dg.get_dagster_logger()).warning(f"could not mark run {run.run_id} failed: {err}")

    def release(self, project: str | None = None) -> None:
        """End this run's lease on one project (or all it holds), if it is still ours."""
        for name in [project] if project else sorted(self._claims):
            if name not in self._claims:
                continue
            with _locked_lease(Path(self.directory) / name / "run.lock") as fd:
                holder = _read_lease(fd)
                if holder and holder.get("run_id") == self.run_id:
                    os.ftruncate(fd, 0)
            self._claims.discard(name)

    # -- using it -----------------------------------------------------------------------
    @contextmanager
    def connection(self, project: str) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection to this run's staged copy of the project, closed whatever happens."""
        self.claim(project)
        conn = _connect(self.staged_path(project))
        try:
            yield conn
        finally:
            conn.close()

    def publish(self, project: str, release: bool = True) -> dict:
        """Swap this run's staged copy in as the published file (one atomic rename), keeping the
        file it replaces as the last good copy. `release=False` keeps the lease (`published` still
        moves the alias and the call list after the swap)."""
        self.claim(project)
        staged, published = self.staged_path(project), self.published_path(project)
        with duckdb.connect(str(staged)) as conn:
            conn.execute("CHECKPOINT")  # everything in the file itself, nothing left in a WAL
            tables = conn.execute(
                "SELECT table_name, estimated_size FROM duckdb_tables() WHERE schema_name = ? ORDER BY 1", [project]
            ).fetchall()
        if self.postgres_url:
            from leadscore_assets.resources.postgres_warehouse import publish_schema

            # first, all or nothing: if it fails the run fails and neither copy changes
            publish_schema(self.postgres_url, staged, project)
        last_good = publication.keep_last_good(published)
        os.replace(staged, published)
        self._prune(project)
        if release:
            self.release(project)
        return {"path": str(published), "tables": dict(tables), "published_at": time.time(),
                "last_good": str(last_good) if last_good else None}

    def _prune(self, project: str, room_for: int = 0) -> None:
        """Keep the newest few staged copies of other runs (blocked or failed, for inspection);
        drop older ones, and all of them when the disk lacks room for `room_for` bytes more."""
        folder = Path(self.directory) / project / "staged"
        mine = self.staged_path(project)
        copies = sorted((p for p in folder.glob("*.duckdb") if p != mine), key=lambda p: p.stat().st_mtime,
                        reverse=True)
        keep = KEEP_STAGED
        if room_for and folder.exists() and shutil.disk_usage(folder).free < 2 * room_for + (64 << 20):
            keep = 0
            (self._log or dg.get_dagster_logger()).warning(
                f"project '{project}': little free disk space for this run's copy "
                f"({shutil.disk_usage(folder).free >> 20} MB free): removing all {len(copies)} staged copies of "
                "earlier runs")
        for old in copies[keep:]:
            old.unlink(missing_ok=True)
            Path(f"{old}.wal").unlink(missing_ok=True)


def _connect(path: Path, wait_s: float = 60.0) -> duckdb.DuckDBPyConnection:
    """Open a staged file, waiting while another process of the same run still has it open.

    The project's steps take turns (one step per project at a time, definitions.py); this only
    covers the moment a finished step process is still closing the file as the next one starts,
    or a run on an executor without that limit.
    """
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return duckdb.connect(str(path))
        except duckdb.IOException as err:
            if "lock" not in str(err).lower() or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def rollback(directory: str | Path, project: str, *, tracking_uri: str | None = None,
             data_dir: str | Path | None = None) -> dict:
    """Put the project's last good published file back (`python -m leadscore_assets.rollback`).

    Refused while a live run holds the project. The file replaced is kept as
    `<project>/rolled_back.duckdb`; then the champion alias and the call list are brought in
    line with the restored file (`resources/publication.reconcile`), so all three agree again.
    Returns what was done: the restored file, where the bad one went, what reconcile changed.
    """
    root = Path(directory) / project
    published = published_file(directory, project)
    with _locked_lease(root / "run.lock") as fd:
        holder = _read_lease(fd)
        alive = holder and holder.get("host") in (None, socket.gethostname()) and any(
            _process_alive(holder.get(pid), holder.get(started))
            for pid, started in (("pid", "pid_start"), ("step_parent_pid", "step_parent_start")))
        if alive:
            raise ProjectBusyError(f"project '{project}' is being run by Dagster run {holder['run_id']} "
                                   f"(pid {holder.get('pid')}); roll back once it has ended")
        kept = publication.restore_last_good(published)
    warehouse = Warehouse(directory=str(directory), tracking_uri=tracking_uri,
                          data_dir=str(data_dir) if data_dir else None)
    client = warehouse._mlflow_client()
    repaired = publication.reconcile(
        published, project, client=client,
        call_list_folder=publication.call_list_dir(data_dir, project) if data_dir else None)
    return {"published": str(published), "rolled_back": str(kept), "repaired": repaired}
