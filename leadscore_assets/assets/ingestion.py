"""raw_contacts: the source export loaded verbatim (all text) into the warehouse."""


import dagster as dg

from leadscore_assets.assets.common import column_schema, warehouse_connection
from leadscore_assets.assets.specs import asset_kwargs, step_tags
from leadscore_assets.assets.tables import QUARANTINED_SOURCE_ROWS, RAW_CONTACTS, source_table
from leadscore_assets.lib.project.config import ProjectConfig
from leadscore_assets.lib.sources.csv_text import SourceFileError
from leadscore_assets.resources.source_loader import SourceTargets, load_source
from leadscore_assets.resources.storage import LeadscoreStorage
from leadscore_assets.resources.warehouse import Warehouse


AS_DELIVERED = {"csv": "CSV read as text", "parquet": "Parquet with its own types",
                "sqlite": "SQLite table with its own types", "duckdb": "DuckDB table with its own types"}


def source_description(config: ProjectConfig) -> str:
    """What the source is, in the words of its files: 'CSV read as text', 'SQLite tables ...'."""
    specs = config.source.table_specs()
    kinds = sorted({spec.kind for spec in specs.values()})
    shown = "; ".join(AS_DELIVERED[k] for k in kinds)
    combined = f", {len(specs)} tables combined by the project's query" if config.source.query else ""
    return f"The {config.name} source as delivered ({shown}{combined}), "


def build(config: ProjectConfig) -> list:
    kinds = {*(spec.kind for spec in config.source.table_specs().values()), "duckdb"}
    sources = [source_table(n) for n in config.source.tables]
    raw = dg.AssetSpec(deps=[t.key(config) for t in sources], **asset_kwargs(
        config, RAW_CONTACTS.name, "raw",
        source_description(config) + "with its file and row number; source-table rows breaking their rules are quarantined.",
        kinds))
    specs = [raw, QUARANTINED_SOURCE_ROWS.spec(config, "raw", {"duckdb"}),
             *(t.spec(config, "raw", kinds) for t in sources)]

    @dg.multi_asset(op_tags=step_tags(config), specs=specs, name=f"{config.name}_load_source")
    def load_source_tables(context: dg.AssetExecutionContext, storage: LeadscoreStorage, warehouse: Warehouse):
        files = [str(storage.path(spec.path)) for spec in config.source.table_specs().values()]
        with warehouse_connection(warehouse, config) as conn:
            try:
                counts = load_source(conn, config, storage.path(""), SourceTargets(
                    RAW_CONTACTS.of(config), QUARANTINED_SOURCE_ROWS.of(config), lambda n: source_table(n).of(config)),
                    log=context.log.warning)
            except SourceFileError as err:
                raise dg.Failure(description=str(err), metadata={"source_files": dg.MetadataValue.json(files)}) from err
            schema = conn.execute(f"SELECT * FROM {RAW_CONTACTS.of(config)} LIMIT 0").df()
            rows = conn.execute(f"SELECT count(*) FROM {RAW_CONTACTS.of(config)}").fetchall()[0][0]
            dropped = QUARANTINED_SOURCE_ROWS.read(conn, config)
        context.log.info(f"loaded {rows} rows from {files}")
        for t in sources:
            yield dg.MaterializeResult(asset_key=t.key(config), metadata={"dagster/row_count": counts[t.name[7:]]})
        yield dg.MaterializeResult(asset_key=QUARANTINED_SOURCE_ROWS.key(config), metadata={
            "dagster/row_count": len(dropped),
            "by_reason": dg.MetadataValue.json(dropped.reason.str.split(":").str[0].value_counts().to_dict()),
        })
        yield dg.MaterializeResult(asset_key=RAW_CONTACTS.key(config), metadata={
            "dagster/row_count": rows,
            "dagster/column_schema": column_schema(schema),
            "source_files": dg.MetadataValue.json(files),
            "rows_by_table": dg.MetadataValue.json(counts),
        })

    return [load_source_tables]
