"""Small helpers shared by the asset factories: table names, DuckDB I/O and UI metadata."""


import base64
import io

import dagster as dg
import duckdb
import pandas as pd

from leadscore_assets.lib.config import ProjectConfig

OWNER_DEFAULT = "team:growth-data"


def key(config: ProjectConfig, name: str) -> dg.AssetKey:
    """Asset keys read like warehouse addresses: [project, table]."""
    return dg.AssetKey([config.name, name])


def table(config: ProjectConfig, name: str) -> str:
    """The DuckDB table behind an asset: schema = project, table = asset name."""
    return f"{config.name}.{name}"


def write_table(conn: duckdb.DuckDBPyConnection, name: str, df: pd.DataFrame) -> None:
    """Replace a table with a DataFrame's contents (schema created on demand)."""
    schema = name.split(".")[0]
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    conn.register("_frame", df)
    try:
        conn.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM _frame")
    finally:
        conn.unregister("_frame")


def read_table(conn: duckdb.DuckDBPyConnection, name: str, where: str = "") -> pd.DataFrame:
    return conn.execute(f"SELECT * FROM {name} {where}").df()


def column_schema(df: pd.DataFrame) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(name=str(c), type=str(t)) for c, t in df.dtypes.items()])


def preview(df: pd.DataFrame, hide: list[str] | tuple[str, ...] = (), rows: int = 10) -> dg.MetadataValue:
    """A markdown preview with personal-data columns left out."""
    shown = df.drop(columns=[c for c in hide if c in df.columns]).head(rows)
    return dg.MetadataValue.md(shown.to_markdown(index=False) if len(shown) else "_empty_")


def figure_markdown(figures: dict[str, object]) -> str:
    """Embed matplotlib figures in markdown so the Dagster UI shows them inline."""
    parts = []
    for name, fig in figures.items():
        buf = io.BytesIO()
        fig.savefig(buf, format="png", bbox_inches="tight")
        parts.append(f"**{name.replace('_', ' ')}**\n\n![{name}](data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()})")
    return "\n\n".join(parts)


def asset_kwargs(config: ProjectConfig, name: str, group: str, description: str, kinds: set[str]) -> dict:
    """The spec every leadscore asset carries: key prefix per project, group per layer."""
    return {
        "key": key(config, name),
        "group_name": group,
        "owners": [config.owner or OWNER_DEFAULT],
        "kinds": kinds,
        "description": description,
        "tags": {"leadscore/project": config.name},
    }
