"""published: the end of a run. Only when every asset and blocking check of the project passed
is this run's staged warehouse copy swapped in for readers, and the champion alias moved to
what this run decided. A run stopped anywhere earlier publishes nothing (write-audit-publish).

Publishing is one unit (resources/publication.py): the run's decision and call list are recorded in
the staged copy, the copy is swapped in (the replaced file kept as the last good copy), and only
then are the alias and the call list made what the published file says, by the same `reconcile`
every run calls when it takes the project. A process killed between the steps leaves a state the
next run repairs."""

import dagster as dg

from leadscore_assets.assets.common import warehouse_connection
from leadscore_assets.assets.specs import asset_kwargs, step_tags
from leadscore_assets.assets.tables import MODEL_DECISIONS
from leadscore_assets.lib.project.config import ProjectConfig
from leadscore_assets.resources.publication import publish_unit
from leadscore_assets.resources.mlflow_store import MlflowStore
from leadscore_assets.resources.storage import LeadscoreStorage
from leadscore_assets.resources.warehouse import ProjectBusyError, Warehouse


def decision_of_run(conn, config: ProjectConfig, run_id: str) -> tuple[str, str] | None:
    """(decision, challenger version) recorded by this run's champion_model, if it ran."""
    if not MODEL_DECISIONS.exists(conn, config):
        return None
    rows = conn.execute(f"SELECT decision, challenger_version FROM {MODEL_DECISIONS.of(config)} WHERE dagster_run_id = ?",
                        [run_id]).fetchall()
    return (str(rows[-1][0]), str(rows[-1][1])) if rows else None


def build(config: ProjectConfig, upstream: list[dg.AssetKey]) -> list:
    @dg.asset(
        op_tags=step_tags(config),
        deps=upstream,
        **asset_kwargs(
            config, "published", "publish",
            f"The run's staged copy of `warehouse/{config.name}.duckdb` swapped in for readers (one atomic "
            "rename) and the champion alias moved, only after every upstream asset and blocking check passed; "
            "a blocked run leaves the published tables as they were and its staged copy for inspection.",
            {"duckdb", "mlflow"},
        ),
    )
    def published(context: dg.AssetExecutionContext, warehouse: Warehouse, mlflow_store: MlflowStore,
                  storage: LeadscoreStorage):
        with warehouse_connection(warehouse, config) as conn:
            decided = decision_of_run(conn, config, context.run_id)
        try:
            result = publish_unit(warehouse, config.name, context.run_id, config.registered_model_name,
                                  client=mlflow_store.client, call_list_folder=storage.report_dir(config.name, "call_list"))
        except ProjectBusyError as err:
            raise dg.Failure(description=str(err)) from err
        context.log.info(f"published {len(result['tables'])} tables to {result['path']}")
        for line in result["moved"]:  # the alias and the call list following the published file
            context.log.info(line)
        mlflow_store.end_parent_run(config.name)  # the project's part of this Dagster run is done
        return dg.MaterializeResult(metadata={
            "path": dg.MetadataValue.path(result["path"]),
            "tables": dg.MetadataValue.json(sorted(result["tables"])),
            "champion_moved_to": decided[1] if decided and decided[0] == "promoted" else "unchanged",
            "last_good": dg.MetadataValue.path(result["last_good"]) if result["last_good"] else "none (first publish)",
            "repaired_at_start": dg.MetadataValue.json(result["repaired_at_start"]),
            **{f"call_list_{kind}": dg.MetadataValue.path(str(path)) for kind, path in result["call_list"].items()},
        })

    return [published]
