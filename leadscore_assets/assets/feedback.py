"""feedback_outcomes asset and the sensor that lands CRM outcome files exactly once.

The sensor scans `data/<feedback.folder>` each tick (lib/feedback.py decides which files are
complete and new) and starts one run of the project's pipeline per new file, with the file's
content hash as run key: the run loads the outcomes, relabels, retrains a challenger and lets
the promotion policy decide. Outcomes keep their provenance (file, hash, row, received time).
"""

import json
from pathlib import Path

import dagster as dg
import pandas as pd

from leadscore_assets.assets.common import (
    append_table,
    asset_kwargs,
    key,
    table,
    table_exists,
    warehouse_connection,
    write_table,
)
from leadscore_assets.lib.config import ProjectConfig
from leadscore_assets.lib.feedback import parse_feedback_file, resolve_conflicts, scan_folder
from leadscore_assets.resources.storage import LeadscoreStorage
from leadscore_assets.resources.warehouse import Warehouse

SENSOR_INTERVAL_S = 10  # with lib.feedback's quiet rule: a landed file is requested within ~10 s


class FeedbackFilesConfig(dg.Config):
    """The feedback files this run lands (set by the sensor; empty on ordinary runs)."""

    files: list[str] = []
    content_hashes: list[str] = []


def feedback_op_name(config: ProjectConfig) -> str:
    return f"{config.name}__feedback_outcomes"


def build(config: ProjectConfig) -> list:
    if config.feedback is None:
        return []
    spec, project = config.feedback, config
    outcomes_t, quarantine_t, unknown_t = (table(config, n) for n in
                                           ("feedback_outcomes", "feedback_quarantine", "feedback_unknown_leads"))

    @dg.asset(
        deps=[key(config, "validated_contacts")],
        **asset_kwargs(
            config, "feedback_outcomes", "feedback",
            f"CRM won/lost outcomes from files dropped in data/{spec.folder}/, with provenance; bad rows "
            "quarantined with reasons, unknown lead ids reported; one resolved outcome per lead (latest wins).",
            {"csv", "duckdb"},
        ),
    )
    def feedback_outcomes(
        context: dg.AssetExecutionContext, config: FeedbackFilesConfig, warehouse: Warehouse
    ) -> dg.MaterializeResult:
        batches = []
        with warehouse_connection(warehouse, project) as conn:
            known = {r[0] for r in conn.execute(
                f"SELECT {project.id_column} FROM {table(project, 'validated_contacts')}").fetchall()}
            seen = set()
            if table_exists(conn, table(project, "feedback_batches")):
                seen = {r[0] for r in conn.execute(f"SELECT content_hash FROM {table(project, 'feedback_batches')}").fetchall()}
            for path, digest in zip(config.files, config.content_hashes):
                if digest in seen:
                    context.log.info(f"{path}: content already landed, skipped")
                    continue
                batch = parse_feedback_file(Path(path), digest, known, outcome_labels=spec.outcome_labels,
                                            default_source=project.name)
                for name, frame in ((outcomes_t, batch.outcomes), (quarantine_t, batch.quarantined),
                                    (unknown_t, batch.unknown_leads)):
                    if len(frame):
                        append_table(conn, name, frame)
                batches.append({"file": Path(path).name, "content_hash": digest, "data_rows": batch.data_rows,
                                "outcomes": len(batch.outcomes), "quarantined": len(batch.quarantined),
                                "unknown_leads": len(batch.unknown_leads),
                                "received_at": batch.outcomes.received_at.max() if len(batch.outcomes) else pd.NaT,
                                "dagster_run_id": context.run_id})
                seen.add(digest)
            if batches:
                append_table(conn, table(project, "feedback_batches"), pd.DataFrame(batches))
            all_outcomes = conn.execute(f"SELECT * FROM {outcomes_t}").df() if table_exists(conn, outcomes_t) else None
            if all_outcomes is not None and len(all_outcomes):
                resolved, resolutions = resolve_conflicts(all_outcomes)
            else:
                resolved = pd.DataFrame(columns=["lead_id", "label", "outcome", "outcome_at", "content_hash", "received_at"])
                resolutions = pd.DataFrame(columns=["lead_id"])
            write_table(conn, table(project, "feedback_labels"), resolved)
            write_table(conn, table(project, "feedback_resolutions"), resolutions)
        for b in batches:
            context.log.info(f"{b['file']}: {b['outcomes']} outcomes, {b['quarantined']} quarantined, "
                             f"{b['unknown_leads']} unknown lead ids")
        return dg.MaterializeResult(
            metadata={
                "files_landed": dg.MetadataValue.json([b["file"] for b in batches]),
                "batches": dg.MetadataValue.md(pd.DataFrame(batches).to_markdown(index=False) if batches else "_none this run_"),
                "labelled_leads": len(resolved),
                "conflicts_resolved": len(resolutions),
            }
        )

    return [feedback_outcomes]


def build_sensor(config: ProjectConfig, job) -> list:
    if config.feedback is None:
        return []
    folder_rel = config.feedback.folder

    @dg.sensor(
        name=f"{config.name}_feedback_sensor", job=job, minimum_interval_seconds=SENSOR_INTERVAL_S,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"New complete CRM outcome files in data/{folder_rel}/ -> one retrain run per file.",
    )
    def feedback_sensor(context: dg.SensorEvaluationContext, storage: LeadscoreStorage):
        folder = storage.path(folder_rel)
        folder.mkdir(parents=True, exist_ok=True)
        result = scan_folder(folder, json.loads(context.cursor) if context.cursor else None)
        requests = [
            dg.RunRequest(
                run_key=f.content_hash,
                run_config={"ops": {feedback_op_name(config): {"config": {
                    "files": [str(f.path)], "content_hashes": [f.content_hash]}}}},
                tags={"leadscore/feedback_file": f.path.name, "leadscore/content_hash": f.content_hash[:16]},
            )
            for f in result.ready
        ]
        context.update_cursor(json.dumps(result.state))
        waiting = [f"{p.name} (not complete yet)" for p in result.pending]
        repeated = [f"{f.path.name} (skipped: same content as {f.duplicate_of}, already landed)"
                    for f in result.duplicates]
        for line in repeated:
            context.log.info(line)
        if requests:
            return dg.SensorResult(run_requests=requests)
        return dg.SkipReason("no new complete feedback file"
                             + (f"; {'; '.join(repeated)}" if repeated else "")
                             + (f"; waiting on: {', '.join(waiting)}" if waiting else ""))

    return [feedback_sensor]
