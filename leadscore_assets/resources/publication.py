"""Publishing as one unit: the published warehouse file is the single source of truth.

What readers see of a project is three things: the published DuckDB file, the registry's
`@champion` alias and the call list (`reports/<project>/call_list/call_list.csv|.parquet`). Only
the file moves atomically (one rename), so the other two are *derived* from it:

- the alias is the version named by the latest `promoted` row of the published `model_decisions`;
- the call list is the one the published file records (schema `_leadscore`, table
  `call_list_files`: run, checksum and a kept copy, `<call list folder>/kept/<run id>.csv|.parquet`,
  written by `record_publication` just before the swap). The bytes stay out of DuckDB: storing
  4.7M leads' 1.9 GB of list as BLOBs took 150 s and 4.9 GB of memory; a file copy takes seconds.

`reconcile` makes the alias and the call list what the published file says, and reports what it
had to change. `published` calls it right after the swap; every run calls it again when it first
claims the project, and the rollback command after putting the last good copy back. A process
killed anywhere (before the swap: nothing moved; after it: the next run finishes the move) thus
leaves a state the next run repairs, saying so.

The `_leadscore` schema is bookkeeping of the file, not part of the project's table contract
(assets/tables.py); it stays local (PostgreSQL publishing copies the project's schema only).
Nothing here imports Dagster: the Warehouse resource (resources/warehouse.py), the `published`
asset and the rollback command call these functions; they move files and MLflow state, so they
live with the resources, not in lib/.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from leadscore_assets.resources.call_list_files import publish_call_list

SCHEMA = "_leadscore"
KEPT = "kept"  # <call list folder>/kept/<run id>.csv|.parquet: the lists published files record
LAST_GOOD = "last_good.duckdb"  # the previous published file, kept at each publish for one-command rollback
ROLLED_BACK = "rolled_back.duckdb"  # the file a rollback replaced, kept (one) for inspection
KEEP_FAILED_REPORTS = 3  # per-run report folders of runs that never published, kept per project
PER_RUN_REPORTS = ("drift", "profile", "evaluation", "effectiveness")  # reports/<project>/<kind>/<run id>/


class CorruptWarehouseError(RuntimeError):
    """The published warehouse file cannot be read: a run must not start from it."""


def last_good_file(directory: str | Path, project: str) -> Path:
    return Path(directory) / project / LAST_GOOD


def call_list_dir(data_dir: str | Path, project: str) -> Path:
    """Where `lead_scores` writes each run's list and the published `call_list.*` live."""
    return Path(data_dir) / "reports" / project / "call_list"


def rollback_command(project: str, data_dir: str | Path | None, directory: str | Path | None = None) -> str:
    """The one command that puts the last good copy back (and the alias and call list with it)."""
    cmd = f"python -m leadscore_assets.rollback {project}"
    if data_dir is not None:
        cmd += f" --data-dir {data_dir}"
        if directory is not None and Path(directory) != Path(data_dir) / "warehouse":
            cmd += f" --warehouse-dir {directory}"
    elif directory is not None:
        cmd += f" --warehouse-dir {directory}"
    return cmd


# -- checking a file ---------------------------------------------------------------------------


def check_readable(path: Path) -> list[str]:
    """Open a warehouse file read-only and read every column of every table through (DuckDB checks
    each block's checksum as it reads it); the tables read. A file that cannot be opened or read
    raises CorruptWarehouseError naming it and what DuckDB said."""
    try:
        with duckdb.connect(str(path), read_only=True) as conn:
            tables = conn.execute("SELECT schema_name, table_name FROM duckdb_tables() ORDER BY 1, 2").fetchall()
            for schema, table in tables:
                conn.execute(f'SELECT max(hash(COLUMNS(*))) FROM "{schema}"."{table}"').fetchall()
    except (duckdb.Error, OSError) as err:
        raise CorruptWarehouseError(f"{path} cannot be read: {type(err).__name__}: {str(err).splitlines()[0][:300]}") \
            from err
    return [f"{schema}.{table}" for schema, table in tables]


def _has_table(conn: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return bool(conn.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?",
                             [schema, table]).fetchall()[0][0])


# -- what a publication records in the staged copy ----------------------------------------------


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def record_publication(conn: duckdb.DuckDBPyConnection, project: str, run_id: str, model_name: str,
                       call_list_files: dict[str, Path]) -> None:
    """Into the run's staged copy, just before it is swapped in: who published it, for which
    registered model, and the run's call list: checksums, and a copy kept under `kept/` that the list
    is restored from (the record is kept as it is when the run wrote none: the previous list stays)."""
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    conn.execute(f"CREATE TABLE IF NOT EXISTS {SCHEMA}.publications (project VARCHAR, dagster_run_id VARCHAR, "
                 "published_at TIMESTAMP, registered_model VARCHAR, champion_version VARCHAR)")
    conn.execute(f"INSERT INTO {SCHEMA}.publications VALUES (?, ?, ?, ?, ?)",
                 [project, run_id, datetime.now(timezone.utc).replace(tzinfo=None), model_name,
                  champion_of(conn, project)])
    files = {suffix: path for suffix, path in call_list_files.items() if Path(path).exists()}
    if files:
        conn.execute(f"CREATE OR REPLACE TABLE {SCHEMA}.call_list_files "
                     "(suffix VARCHAR, sha256 VARCHAR, dagster_run_id VARCHAR, kept VARCHAR)")
        for suffix, path in sorted(files.items()):
            kept = Path(path).parent / KEPT / f"{run_id}.{suffix}"
            _write_atomically(kept, _blocks(Path(path)))  # a copy of its own: editing the published list spares it
            conn.execute(f"INSERT INTO {SCHEMA}.call_list_files VALUES (?, ?, ?, ?)",
                         [suffix, sha256_of(kept), run_id, f"{KEPT}/{kept.name}"])


def record_repairs(conn: duckdb.DuckDBPyConnection, run_id: str, repairs: list[str]) -> None:
    """What the start of a run repaired, into its staged copy (`published` shows it as metadata)."""
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    conn.execute(f"CREATE TABLE IF NOT EXISTS {SCHEMA}.repairs (dagster_run_id VARCHAR, repaired_at TIMESTAMP, "
                 "repair VARCHAR)")
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    for repair in repairs:
        conn.execute(f"INSERT INTO {SCHEMA}.repairs VALUES (?, ?, ?)", [run_id, now, repair])


def repairs_of_run(conn: duckdb.DuckDBPyConnection, run_id: str) -> list[str]:
    if not _has_table(conn, SCHEMA, "repairs"):
        return []
    return [r[0] for r in conn.execute(f"SELECT repair FROM {SCHEMA}.repairs WHERE dagster_run_id = ? "
                                       "ORDER BY repaired_at", [run_id]).fetchall()]


def champion_of(conn: duckdb.DuckDBPyConnection, project: str) -> str | None:
    """The version the latest `promoted` decision in this file names (None before the first)."""
    if not _has_table(conn, project, "model_decisions"):
        return None
    row = conn.execute(f'SELECT challenger_version FROM "{project}".model_decisions WHERE decision = \'promoted\' '
                       "ORDER BY decided_at DESC LIMIT 1").fetchall()
    return str(row[0][0]) if row else None


def published_runs(conn: duckdb.DuckDBPyConnection, project: str) -> set[str]:
    """Dagster runs whose work is in this file: every decision's run and every publication's."""
    runs: set[str] = set()
    if _has_table(conn, project, "model_decisions"):
        runs |= {r[0] for r in conn.execute(f'SELECT DISTINCT dagster_run_id FROM "{project}".model_decisions')
                 .fetchall()}
    if _has_table(conn, SCHEMA, "publications"):
        runs |= {r[0] for r in conn.execute(f"SELECT dagster_run_id FROM {SCHEMA}.publications").fetchall()}
    return runs


# -- bringing the alias and the call list in line -------------------------------------------------


def reconcile(published: Path, project: str, *, client=None, call_list_folder: Path | None = None) -> list[str]:
    """Make the `@champion` alias and the published call list what the published file says; one
    sentence per thing changed (empty when all was in line). `client` is an MlflowClient (None:
    the alias is left alone); `call_list_folder` the project's call list folder (None: likewise)."""
    from leadscore_assets.lib.scoring.registry import current_champion, promote

    if not Path(published).exists():
        return []
    restored = []
    with duckdb.connect(str(published), read_only=True) as conn:
        target = champion_of(conn, project)
        model = None
        if _has_table(conn, SCHEMA, "publications"):
            row = conn.execute(f"SELECT registered_model FROM {SCHEMA}.publications "
                               "ORDER BY published_at DESC LIMIT 1").fetchall()
            model = row[0][0] if row else None
        recorded = {}
        if _has_table(conn, SCHEMA, "call_list_files"):
            recorded = {s: (sha, run) for s, sha, run in conn.execute(
                f"SELECT DISTINCT suffix, sha256, dagster_run_id FROM {SCHEMA}.call_list_files").fetchall()}
        stale = []
        if call_list_folder is not None:
            stale = [s for s, (sha, _) in recorded.items()
                     if not (path := Path(call_list_folder) / f"call_list.{s}").exists() or sha256_of(path) != sha]
        columns = {r[0] for r in conn.execute(f"DESCRIBE {SCHEMA}.call_list_files").fetchall()} if stale else set()
        for suffix in sorted(stale):
            path, run = Path(call_list_folder) / f"call_list.{suffix}", recorded[suffix][1]
            if "content" in columns:  # recorded by an earlier release: the bytes are in the file
                _write_atomically(path, _recorded_bytes(conn, suffix))
            elif (kept := _kept_copy(conn, Path(call_list_folder), suffix, recorded[suffix][0])) is not None:
                _write_atomically(path, _blocks(kept))
            else:
                restored.append(f"{path} differs from the call list of run {run} that {published} records, and "
                                f"its kept copy under {Path(call_list_folder) / KEPT} is missing or altered: "
                                "not restored (the next run writes a new list)")
                continue
            restored.append(f"{path} replaced by the call list of run {run}, the one {published} records")
    model = model or f"leadscore-{project}"
    changed = []
    if client is not None and target is not None:
        current = current_champion(client, model)
        if current is None or str(current.version) != target:
            promote(client, model, target)
            was = f"v{current.version}" if current is not None else "no version"
            changed.append(f"champion alias of {model} moved from {was} to v{target}, the version the latest "
                           f"promoted decision in {published} names")
    return changed + restored


def _recorded_bytes(conn: duckdb.DuckDBPyConnection, suffix: str) -> Iterator[bytes]:
    """The bytes of one call list file as earlier releases recorded them, in the file itself."""
    yield bytes(conn.execute(f"SELECT content FROM {SCHEMA}.call_list_files WHERE suffix = ?", [suffix]).fetchall()[0][0])


def _kept_copy(conn: duckdb.DuckDBPyConnection, folder: Path, suffix: str, sha: str) -> Path | None:
    """The kept copy of the recorded list file, when it is there with the recorded bytes."""
    kept = folder / conn.execute(f"SELECT kept FROM {SCHEMA}.call_list_files WHERE suffix = ?", [suffix]).fetchall()[0][0]
    return kept if kept.exists() and sha256_of(kept) == sha else None


def recorded_runs(published: Path) -> set[str]:
    """The runs whose call list `published` (a warehouse file) records: their kept copies stay."""
    if not Path(published).exists():
        return set()
    with duckdb.connect(str(published), read_only=True) as conn:
        if not _has_table(conn, SCHEMA, "call_list_files"):
            return set()
        return {r[0] for r in conn.execute(f"SELECT DISTINCT dagster_run_id FROM {SCHEMA}.call_list_files").fetchall()}


def _blocks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        yield from iter(lambda: fh.read(1 << 24), b"")


def _write_atomically(path: Path, parts: Iterable[bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            for part in parts:
                fh.write(part)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# -- the last good copy -------------------------------------------------------------------------


def keep_last_good(published: Path) -> Path | None:
    """Before a new file is swapped in: keep the one being replaced as `last_good.duckdb` (a hard
    link, so no copy and no extra space; a copy where links are not possible). None when there
    is no published file yet."""
    if not published.exists():
        return None
    target = published.with_name(LAST_GOOD)
    tmp = published.with_name(f".{LAST_GOOD}.{os.getpid()}")
    tmp.unlink(missing_ok=True)
    try:
        os.link(published, tmp)
    except OSError:
        shutil.copyfile(published, tmp)
    os.replace(tmp, target)
    return target


def restore_last_good(published: Path) -> Path:
    """Put `last_good.duckdb` back as the published file (a copy renamed into place: readers see
    the bad file or the good one, never half of one); the bad file is kept as
    `rolled_back.duckdb`. Raises CorruptWarehouseError when there is no readable last good copy."""
    good = published.with_name(LAST_GOOD)
    if not good.exists():
        raise CorruptWarehouseError(f"no last good copy to roll back to: {good} does not exist (it is kept from the "
                                    "second publish of a project on)")
    check_readable(good)
    tmp = published.with_name(f".{published.name}.rollback.{os.getpid()}")
    shutil.copyfile(good, tmp)
    if published.exists():
        os.replace(published, published.with_name(ROLLED_BACK))
    os.replace(tmp, published)
    return published.with_name(ROLLED_BACK)


# -- what failed runs leave ----------------------------------------------------------------------


def prune_run_reports(reports: Path, keep_runs: set[str], keep: int = KEEP_FAILED_REPORTS) -> list[Path]:
    """Per-run report files of runs that never published (`reports/<project>/<kind>/<run id>/`
    and `call_list/<run id>.csv|.parquet`): the newest `keep` runs' stay for inspection, older
    ones go. Runs in `keep_runs` (published runs, the current one) are never touched."""
    by_run: dict[str, list[Path]] = {}
    for kind in PER_RUN_REPORTS:
        folder = reports / kind
        if folder.is_dir():
            for entry in folder.iterdir():
                if entry.is_dir() and entry.name not in keep_runs:
                    by_run.setdefault(entry.name, []).append(entry)
    folder = reports / "call_list"
    if folder.is_dir():
        for entry in folder.iterdir():
            if entry.suffix in (".csv", ".parquet") and entry.stem != "call_list" and entry.stem not in keep_runs:
                by_run.setdefault(entry.stem, []).append(entry)

    def newest(paths: list[Path]) -> float:
        return max(p.stat().st_mtime for p in paths)

    removed = []
    for _, paths in sorted(by_run.items(), key=lambda kv: newest(kv[1]), reverse=True)[keep:]:
        for path in paths:
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def end_abandoned_runs(client, experiment_name: str, dagster_run_id: str) -> list[str]:
    """Mark FAILED the MLflow runs of an experiment still RUNNING from another Dagster run.

    Call it while holding the project (Warehouse.claim): no other run of the project can be
    alive then, so such a run was left open by a killed or failed run and would stay RUNNING."""
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        return []
    stale = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"attributes.status = 'RUNNING' and tags.`dagster.run_id` != '{dagster_run_id}'",
    )
    for run in stale:
        client.set_tag(run.info.run_id, "leadscore.ended_by", f"dagster run {dagster_run_id}: abandoned")
        client.set_terminated(run.info.run_id, status="FAILED")
    return [run.info.run_id for run in stale]


# -- the unit -----------------------------------------------------------------------------------


def publish_unit(warehouse, project: str, run_id: str, model_name: str, *, client,
                 call_list_folder: Path) -> dict:
    """What `published` does, in order: record the run's call list (and who published) in its
    staged copy, swap the copy in (`warehouse.publish`, keeping the replaced file as the last
    good copy), then make the alias and the call list what the published file says (`reconcile`)
    and drop the run's own list files. `warehouse` is the Warehouse resource of the run.

    Killed before the swap: nothing readers see changed. Killed after it: the next run's start
    finishes the move. Returns `warehouse.publish`'s result with `moved` (what reconcile changed)
    and `repaired_at_start` (what this run's start had repaired)."""
    with warehouse.connection(project) as conn:
        repaired = repairs_of_run(conn, run_id)
        record_publication(conn, project, run_id, model_name,
                           {s: Path(call_list_folder) / f"{run_id}.{s}" for s in ("csv", "parquet")})
    result = warehouse.publish(project, release=False)
    moved = reconcile(warehouse.published_path(project), project, client=client, call_list_folder=call_list_folder)
    keep = {run_id} | (recorded_runs(Path(result["last_good"])) if result["last_good"] else set())
    publish_call_list(Path(call_list_folder), run_id, keep)  # the list is in place already; this drops the rest
    warehouse.release(project)
    return {**result, "moved": moved, "repaired_at_start": repaired,
            "call_list": {s: p for s in ("csv", "parquet") if (p := Path(call_list_folder) / f"call_list.{s}").exists()}}
