"""feedback_outcomes asset and the sensor that lands CRM outcome files exactly once.

The sensor scans `data/<feedback.folder>` each tick (resources/feedback_inbox.py decides which files are
complete and new) and starts one run of the project's pipeline per new file, with the file's
content hash as run key: the run loads the outcomes, relabels, retrains a challenger and lets
the promotion policy decide. Outcomes keep their provenance (file, hash, row, received time).

A file has landed only when its content hash is in the project's *published* warehouse
(`<project>.feedback_batches`, read read-only from the published file and, in production, from
PostgreSQL), i.e. the run that took it reached `<project>/published`. Until then the sensor
follows the run it requested; a run that ends without publishing (failed, blocked, cancelled,
or never created) is requested again under a new run key (`<hash>:attempt-<n>`), from the file
or from any file re-sent with the same content. Each tick logs what landed, what failed and
when it is retried; the skip message lists landings in flight and waiting retries.
"""

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd

from leadscore_assets.assets.common import warehouse_connection
from leadscore_assets.assets.inputs import Reads, StagedTable
from leadscore_assets.assets.specs import asset_kwargs, step_tags
from leadscore_assets.assets.tables import (
    FEEDBACK_BATCHES,
    FEEDBACK_LABELS,
    FEEDBACK_OUTCOMES,
    FEEDBACK_QUARANTINE,
    FEEDBACK_RESOLUTIONS,
    FEEDBACK_UNKNOWN_LEADS,
    VALIDATED_CONTACTS,
)
from leadscore_assets.lib.project.config import ProjectConfig
from leadscore_assets.lib.labels.feedback_resolution import resolve_conflicts
from leadscore_assets.resources.feedback_inbox import (
    RunInfo,
    feedback_folder,
    read_feedback_file,
    requested_run_keys,
    scan_folder,
)
from leadscore_assets.resources.storage import LeadscoreStorage
from leadscore_assets.resources.warehouse import Warehouse
from leadscore_assets.lib.project.sql_rules import identifier

SENSOR_INTERVAL_S = 10  # with the inbox's quiet rule: a landed file is requested within ~10 s
SHOWN = 10  # failed landings named in a skip message; the cursor has them all


class FeedbackFilesConfig(dg.Config):
    """The feedback files this run lands (set by the sensor; empty on ordinary runs)."""

    files: list[str] = []
    content_hashes: list[str] = []


def landing_run_config(outcomes_asset: dg.AssetsDefinition, files: list[str], content_hashes: list[str]) -> dg.RunConfig:
    """Run config that lands `files` through the project's feedback_outcomes asset (its own op)."""
    return dg.RunConfig(ops={outcomes_asset.op.name: FeedbackFilesConfig(files=files, content_hashes=content_hashes)})


NO_FEEDBACK_LABELS = pd.DataFrame(columns=["lead_id", "label", "outcome", "outcome_at", "content_hash", "received_at"])


def land_files(conn, project: ProjectConfig, files: list[str], content_hashes: list[str], run_id: str,
               log, known: set) -> list[dict]:
    """Append each new file's outcomes, quarantined rows and unknown ids (not among `known` lead
    ids); one batch row per file. Content already landed (the same hash) is skipped and said so."""
    seen = set(FEEDBACK_BATCHES.read(conn, project).content_hash) if FEEDBACK_BATCHES.exists(conn, project) else set()
    batches = []
    for path, digest in zip(files, content_hashes):
        if digest in seen:
            log(f"{path}: content already landed, skipped")
            continue
        batch = read_feedback_file(Path(path), digest, known, outcome_labels=project.feedback.outcome_labels,
                                    default_source=project.name)
        for table, frame in ((FEEDBACK_OUTCOMES, batch.outcomes), (FEEDBACK_QUARANTINE, batch.quarantined),
                             (FEEDBACK_UNKNOWN_LEADS, batch.unknown_leads)):
            if len(frame):
                table.append(conn, project, frame)
        batches.append({"file": Path(path).name, "content_hash": digest, "data_rows": batch.data_rows,
                        "outcomes": len(batch.outcomes), "quarantined": len(batch.quarantined),
                        "unknown_leads": len(batch.unknown_leads),
                        "received_at": batch.outcomes.received_at.max() if len(batch.outcomes) else pd.NaT,
                        "dagster_run_id": run_id})
        seen.add(digest)
    if batches:
        FEEDBACK_BATCHES.append(conn, project, pd.DataFrame(batches))
    return batches


def build(project: ProjectConfig) -> list:
    """The asset's run config is Dagster's `config` (FeedbackFilesConfig); the project's is `project`."""
    if project.feedback is None:
        return []
    folder = project.feedback.folder
    reads = Reads(project, validated_contacts=VALIDATED_CONTACTS)
    deps = reads.deps
    kinds = {"csv", "duckdb"}
    specs = [
        dg.AssetSpec(deps=deps, **asset_kwargs(
            project, FEEDBACK_OUTCOMES.name, "feedback",
            f"CRM won/lost outcomes from files dropped in data/{folder}/, every row with its file, content hash, "
            "row and received time.", kinds)),
        FEEDBACK_QUARANTINE.spec(project, "feedback", kinds, deps),
        FEEDBACK_UNKNOWN_LEADS.spec(project, "feedback", kinds, deps),
        FEEDBACK_BATCHES.spec(project, "feedback", kinds, deps),
        FEEDBACK_LABELS.spec(project, "feedback", {"duckdb"}, [FEEDBACK_OUTCOMES.key(project)]),
        FEEDBACK_RESOLUTIONS.spec(project, "feedback", {"duckdb"}, [FEEDBACK_OUTCOMES.key(project)]),
    ]

    @dg.multi_asset(op_tags=step_tags(project), specs=specs, ins=reads.ins, name=f"{project.name}_land_feedback")
    def land_feedback(context: dg.AssetExecutionContext, config: FeedbackFilesConfig, warehouse: Warehouse,
                      validated_contacts: StagedTable):
        known = set(validated_contacts.read(identifier(project.id_column)).iloc[:, 0])
        with warehouse_connection(warehouse, project) as conn:
            batches = land_files(conn, project, config.files, config.content_hashes, context.run_id, context.log.info,
                                 known)
            outcomes = FEEDBACK_OUTCOMES.read_if_exists(conn, project)
            resolved, resolutions = (resolve_conflicts(outcomes) if outcomes is not None and len(outcomes)
                                     else (NO_FEEDBACK_LABELS.copy(), pd.DataFrame(columns=["lead_id"])))
            FEEDBACK_LABELS.write(conn, project, resolved)
            FEEDBACK_RESOLUTIONS.write(conn, project, resolutions)
            counts = {t: conn.execute(f"SELECT count(*) FROM {t.of(project)}").fetchall()[0][0] if t.exists(conn, project)
                      else 0 for t in (FEEDBACK_OUTCOMES, FEEDBACK_QUARANTINE, FEEDBACK_UNKNOWN_LEADS, FEEDBACK_BATCHES)}
        for b in batches:
            context.log.info(f"{b['file']}: {b['outcomes']} outcomes, {b['quarantined']} quarantined, "
                             f"{b['unknown_leads']} unknown lead ids")
        landed = pd.DataFrame(batches)
        yield dg.MaterializeResult(asset_key=FEEDBACK_OUTCOMES.key(project), metadata={
            "dagster/row_count": counts[FEEDBACK_OUTCOMES],
            "files_landed": dg.MetadataValue.json(list(landed.get("file", []))),
            "batches": dg.MetadataValue.md(landed.to_markdown(index=False) if batches else "_none this run_"),
        })
        for table in (FEEDBACK_QUARANTINE, FEEDBACK_UNKNOWN_LEADS, FEEDBACK_BATCHES):
            yield dg.MaterializeResult(asset_key=table.key(project), metadata={"dagster/row_count": counts[table]})
        yield dg.MaterializeResult(asset_key=FEEDBACK_LABELS.key(project), metadata={"dagster/row_count": len(resolved)})
        yield dg.MaterializeResult(asset_key=FEEDBACK_RESOLUTIONS.key(project),
                                   metadata={"dagster/row_count": len(resolutions)})

    return [land_feedback]


def published_feedback(warehouse: Warehouse, project: ProjectConfig) -> dict[str, str]:
    """Content hash -> file name of every feedback file in the project's *published* warehouse
    (its `feedback_batches`): the local published file, read-only, and PostgreSQL when the
    warehouse publishes there. Raises when a store that exists cannot be read."""
    landed: dict[str, str] = {}
    path = warehouse.published_path(project.name)
    if path.exists():
        with duckdb.connect(str(path), read_only=True) as conn:
            if FEEDBACK_BATCHES.exists(conn, project):
                landed.update(conn.execute(f"SELECT content_hash, file FROM {FEEDBACK_BATCHES.of(project)}").fetchall())
    if warehouse.postgres_url:
        from leadscore_assets.resources.postgres_warehouse import _connect

        conn = _connect(warehouse.postgres_url)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT to_regclass(%s)", [f'"{project.name}"."{FEEDBACK_BATCHES.name}"'])
                if cur.fetchone()[0] is not None:
                    cur.execute(f'SELECT content_hash, file FROM "{project.name}"."{FEEDBACK_BATCHES.name}"')
                    landed.update(cur.fetchall())
        finally:
            conn.close()
    return landed


def landing_runs(instance: dg.DagsterInstance, job_name: str, run_keys: list[str]) -> dict[str, RunInfo | None]:
    """The newest run of `job_name` tagged with each run key (as the daemon tags sensor runs), or None."""
    found: dict[str, RunInfo | None] = {}
    for run_key in run_keys:
        runs = instance.get_runs(filters=dg.RunsFilter(job_name=job_name, tags={"dagster/run_key": run_key}), limit=1)
        found[run_key] = (RunInfo(run_id=runs[0].run_id, status=runs[0].status.value, finished=runs[0].is_finished)
                          if runs else None)
    return found


def _clock(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%H:%M:%S UTC")


def build_sensor(config: ProjectConfig, job, outcomes_asset: dg.AssetsDefinition | None) -> list:
    """The sensor that lands files through `outcomes_asset` (the project's feedback_outcomes):
    the run config is addressed to that asset's own op, whatever it is named."""
    if config.feedback is None or outcomes_asset is None:
        return []
    folder_rel = config.feedback.folder

    @dg.sensor(
        name=f"{config.name}_feedback_sensor", job=job, minimum_interval_seconds=SENSOR_INTERVAL_S,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"New complete CRM outcome files in data/{folder_rel}/ -> one retrain run per file.",
    )
    def feedback_sensor(context: dg.SensorEvaluationContext, storage: LeadscoreStorage, warehouse: Warehouse):
        folder = feedback_folder(storage.data_dir, folder_rel)  # refused when it resolves outside the data folder
        folder.mkdir(parents=True, exist_ok=True)
        state = json.loads(context.cursor) if context.cursor else None
        # runs first, then the published warehouse: a run publishes before it succeeds
        runs = landing_runs(context.instance, job.name, requested_run_keys(state))
        try:
            landed = published_feedback(warehouse, config)
        except Exception as err:  # cannot tell landed from failed this tick: decide nothing, retry nothing
            context.log.warning(f"cannot read the published feedback of {config.name} ({err}); "
                                "landings in flight are checked again next tick")
            landed, runs = None, None
        now = time.time()
        result = scan_folder(folder, state, data_dir=Path(storage.data_dir), now=now, landed=landed, runs=runs)
        requests = [
            dg.RunRequest(
                run_key=f.run_key,
                run_config=landing_run_config(outcomes_asset, [str(f.path)], [f.content_hash]),
                tags={"leadscore/feedback_file": f.path.name, "leadscore/content_hash": f.content_hash[:16],
                      "leadscore/feedback_attempt": str(f.attempt),
                      **({"leadscore/feedback_retry_of": f.retry_of} if f.retry_of else {})},
            )
            for f in result.ready
        ]
        context.update_cursor(json.dumps(result.state))
        retried = {f.content_hash: f for f in result.ready if f.attempt > 1}
        lines = [f"{x.file}: landed (in the published warehouse, attempt {x.attempt})" for x in result.landed]
        for x in result.failed:
            again = retried.get(x.content_hash)
            lines.append(
                f"{x.file}: landing failed (run {x.run_id or '-'}: {x.status}, attempt {x.attempt}), not published; "
                + (f"requested again as attempt {again.attempt} from {again.path.name}" if again else
                   f"will be retried at {_clock(x.retry_at)}" if x.retry_at and x.retry_at > now else
                   "will be retried when a file with its content is in the folder"))
        lines += [f"{f.path.name}: retrying the failed landing of its content (attempt {f.attempt})"
                  for f in retried.values() if f.content_hash not in {x.content_hash for x in result.failed}]
        lines += [f"{f.path.name} (skipped: same content as {f.duplicate_of}, already landed)"
                  for f in result.duplicates if f.landing == "landed"]
        lines += [f"{f.path.name} (waiting: same content as {f.duplicate_of}, whose landing is in progress)"
                  for f in result.duplicates if f.landing == "in_progress"]
        lines += [f"{p.name} (refused: a symlink resolving outside the data folder {storage.data_dir})"
                  for p in result.refused]
        for line in lines:
            context.log.info(line)
        if requests:
            return dg.SensorResult(run_requests=requests)
        waiting = [f"{p.name} (not complete yet)" for p in result.pending]
        in_flight = [f"{x.file} (run {x.run_id or '-'}: {x.status})" for x in result.in_flight]
        retry = [f"{x.file} (attempt {x.attempt} {x.status}; "
                 + (f"retry at {_clock(x.retry_at)})" if x.retry_at and x.retry_at > now else "re-send the file)")
                 for x in result.waiting[:SHOWN]]
        retry += [f"{len(result.waiting) - SHOWN} more (see the cursor's `failed`)"] if len(result.waiting) > SHOWN else []
        return dg.SkipReason("no new complete feedback file"
                             + (f"; {'; '.join(lines)}" if lines else "")
                             + (f"; landing: {', '.join(in_flight)}" if in_flight else "")
                             + (f"; failed, will be retried: {', '.join(retry)}" if retry else "")
                             + (f"; waiting on: {', '.join(waiting)}" if waiting else ""))

    return [feedback_sensor]
