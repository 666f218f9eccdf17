"""raw_contacts: the source export loaded verbatim (all text) into the warehouse."""


import dagster as dg

from leadscore_assets.assets.common import asset_kwargs, column_schema, table, warehouse_connection
from leadscore_assets.lib.config import ProjectConfig
from leadscore_assets.lib.ingest import SourceFileError, load_source
from leadscore_assets.resources.storage import LeadscoreStorage
from leadscore_assets.resources.warehouse import Warehouse


def build(config: ProjectConfig) -> list:
    @dg.asset(
        **asset_kwargs(
            config, "raw_contacts", "raw",
            f"The {config.name} source as delivered (a CSV as text; typed tables keep their types), "
            "with its file and row number; source-table rows breaking their rules are quarantined.",
            {"csv", "duckdb"},
        )
    )
    def raw_contacts(context: dg.AssetExecutionContext, storage: LeadscoreStorage, warehouse: Warehouse):
        files = [str(storage.path(spec.path)) for spec in config.source.table_specs().values()]
        with warehouse_connection(warehouse, config) as conn:
            try:
                counts = load_source(conn, config, storage.path(""), log=context.log.warning)
            except SourceFileError as err:
                raise dg.Failure(description=str(err), metadata={"source_files": dg.MetadataValue.json(files)}) from err
            schema = conn.execute(f"SELECT * FROM {table(config, 'raw_contacts')} LIMIT 0").df()
            rows = conn.execute(f"SELECT count(*) FROM {table(config, 'raw_contacts')}").fetchall()[0][0]
        context.log.info(f"loaded {rows} rows from {files}")
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": rows,
                "dagster/column_schema": column_schema(schema),
                "source_files": dg.MetadataValue.json(files),
                "rows_by_table": dg.MetadataValue.json(counts),
            }
        )

    return [raw_contacts]
