"""raw_contacts: the source export loaded verbatim (all text) into the warehouse."""


import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from leadscore_assets.assets.common import asset_kwargs, column_schema, table, write_table
from leadscore_assets.lib.config import ProjectConfig
from leadscore_assets.lib.ingest import SourceFileError, read_source
from leadscore_assets.resources.storage import LeadscoreStorage


def build(config: ProjectConfig) -> list:
    @dg.asset(
        **asset_kwargs(
            config, "raw_contacts", "raw",
            f"The {config.name} export exactly as delivered, every value as text, with its file and row number.",
            {"csv", "duckdb"},
        )
    )
    def raw_contacts(context: dg.AssetExecutionContext, storage: LeadscoreStorage, warehouse: DuckDBResource):
        path = storage.path(config.source.path)
        try:
            raw: pd.DataFrame = read_source(path, config.source)
        except SourceFileError as err:
            raise dg.Failure(description=str(err), metadata={"source_file": dg.MetadataValue.path(str(path))}) from err
        with warehouse.get_connection() as conn:
            write_table(conn, table(config, "raw_contacts"), raw)
        context.log.info(f"loaded {len(raw)} rows from {path}")
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": len(raw),
                "dagster/column_schema": column_schema(raw),
                "source_file": dg.MetadataValue.path(str(path)),
            }
        )

    return [raw_contacts]
