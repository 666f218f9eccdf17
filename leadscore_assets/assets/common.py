"""Small helpers shared by the asset factories: the warehouse connection, checks and UI
metadata. Asset specs: assets/specs.py; table names and typed reads and writes: assets/tables.py."""


import base64
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd

from leadscore_assets.assets.tables import COLUMN_TYPES, FEATURE_SCHEMA
from leadscore_assets.lib.sources.column_typing import with_columns
from leadscore_assets.lib.project.config import ColumnSpec, ProjectConfig
from leadscore_assets.lib.features.frame import FeatureSet
from leadscore_assets.lib.features.sample import ModellingRows
from leadscore_assets.lib.evaluation.metrics import figure_png
from leadscore_assets.lib.validation.personal_data import is_text_column, value_kind
from leadscore_assets.resources.publication import CorruptWarehouseError
from leadscore_assets.resources.staged_tables import StagedTable
from leadscore_assets.resources.warehouse import ProjectBusyError, Warehouse


@contextmanager
def warehouse_connection(warehouse: Warehouse, config: ProjectConfig) -> Iterator[duckdb.DuckDBPyConnection]:
    """This run's staged copy of the project's warehouse file (see resources/warehouse.py),
    closed even when the body raises.

    The first connection of a run claims the project: a second run of it fails here, at once,
    naming the run that holds it.
    """
    try:
        with warehouse.connection(config.name) as conn:
            yield conn
    except (ProjectBusyError, CorruptWarehouseError) as err:  # another run holds it / the published file is bad
        raise dg.Failure(description=str(err)) from err


DUCKDB_VECTOR = 2048  # rows per DuckDB vector: `fetch_df_chunk` counts in vectors


def select_in_batches(conn: duckdb.DuckDBPyConnection, sql: str, rows: int) -> Iterator[pd.DataFrame]:
    """The rows of query `sql` as frames of at most `rows` (whole DuckDB vectors, at least one), in
    the query's order, read through a cursor of its own so `conn` stays free for writing: at least
    one frame, empty (its columns typed) when the query has no rows."""
    cursor = conn.cursor()
    try:
        cursor.execute(sql)
        vectors = max(1, rows // DUCKDB_VECTOR)
        batch = cursor.fetch_df_chunk(vectors)
        yield batch
        while len(batch):
            batch = cursor.fetch_df_chunk(vectors)
            if len(batch):
                yield batch
    finally:
        cursor.close()


def column_schema(df: pd.DataFrame) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(name=str(c), type=str(t)) for c, t in df.dtypes.items()])


def preview(df: pd.DataFrame, hide: list[str] | tuple[str, ...] = (), rows: int = 10) -> dg.MetadataValue:
    """A markdown preview with personal-data columns left out, and any other cell that holds an
    email address, a phone number or a profile URL shown as `(hidden: email)`: a preview reaches
    the event log before the checks have looked at the table."""
    shown = df.drop(columns=[c for c in hide if c in df.columns]).head(rows)
    shown = shown.apply(lambda s: s.map(_masked) if is_text_column(s) else s) if len(shown) else shown
    return dg.MetadataValue.md(shown.to_markdown(index=False) if len(shown) else "_empty_")


def _masked(value: object) -> object:
    kind = value_kind(value)
    return f"(hidden: {kind})" if kind else value


def table_value(frame: pd.DataFrame) -> dg.MetadataValue:
    """A Dagster table (the asset page shows it as one, no "Show Markdown" click), floats rounded
    to 4 places, NaN as empty cells, numpy scalars as Python ones."""
    shown = frame.round(4).astype(object).where(frame.notna(), None)
    schema = dg.TableSchema(columns=[dg.TableColumn(str(c), "float" if frame[c].dtype.kind == "f" else
                                                    "int" if frame[c].dtype.kind in "iu" else
                                                    "bool" if frame[c].dtype.kind == "b" else "string")
                                     for c in frame.columns])
    records = [dg.TableRecord({str(k): v.item() if hasattr(v, "item") else v for k, v in r.items()})
               for r in shown.to_dict("records")]
    return dg.MetadataValue.table(records=records, schema=schema)


def png_markdown(pngs: dict[str, bytes]) -> str:
    """Embed rendered PNGs (name -> bytes) in markdown so the Dagster UI shows them inline."""
    return "\n\n".join(f"**{name.replace('_', ' ')}**\n\n![{name}](data:image/png;base64,{base64.b64encode(png).decode()})"
                       for name, png in pngs.items())


def figure_markdown(figures: dict[str, object]) -> str:
    """Embed matplotlib figures in markdown so the Dagster UI shows them inline (renders each one:
    when the figures are also written or logged, render once with `write_figures` and use `png_markdown`)."""
    return png_markdown({name: figure_png(fig) for name, fig in figures.items()})


def write_figures(figures: dict[str, object], out: Path, mlflow_store=None, artifact_path: str | None = None
                  ) -> dict[str, bytes]:
    """Render each figure once: write it to `out/<name>.png` and, given a store, log that file to
    the active MLflow run under `artifact_path/<name>.png` (where `log_figure` put it). The PNG
    bytes by name, for `png_markdown`."""
    pngs = {}
    for name, fig in figures.items():
        pngs[name] = figure_png(fig)
        path = out / f"{name}.png"
        path.write_bytes(pngs[name])
        if mlflow_store is not None:
            mlflow_store.log_artifact(path, artifact_path=artifact_path)
    return pngs


@dataclass(frozen=True)
class Check:
    """One asset check: its spec and how it is evaluated from the warehouse."""

    name: str
    blocking: bool
    description: str
    evaluate: Callable[[Warehouse], dg.AssetCheckResult]


def check(name: str, description: str, blocking: bool = False) -> Callable[[Callable], Check]:
    def wrap(evaluate: Callable[[Warehouse], dg.AssetCheckResult]) -> Check:
        return Check(name, blocking, description, evaluate)
    return wrap


def check_specs(asset: dg.AssetKey, checks: list[Check]) -> list[dg.AssetCheckSpec]:
    """The specs of an asset's checks, declared on the asset itself: they run in the asset's own
    step, right after it writes (no step process of their own under the multiprocess executor of
    `score_all_sources`), and each is still its own blocking or advisory check in the UI."""
    return [dg.AssetCheckSpec(c.name, asset=asset, blocking=c.blocking, description=c.description) for c in checks]


def check_results(warehouse: Warehouse, asset: dg.AssetKey, checks: list[Check]) -> list[dg.AssetCheckResult]:
    """Evaluate the checks against what the asset just wrote. A failed blocking check fails the
    step after the asset is recorded, so nothing downstream runs (Dagster's in-step check rule)."""
    results = []
    for c in checks:
        r = c.evaluate(warehouse)
        results.append(dg.AssetCheckResult(check_name=c.name, asset_key=asset, passed=r.passed, metadata=r.metadata,
                                           description=r.description, severity=r.severity))
    return results


def save_resolved_columns(conn: duckdb.DuckDBPyConnection, config: ProjectConfig) -> None:
    """Persist the column specs validation used (declared or inferred) for downstream assets."""
    rows = [{"column": c, **spec.model_dump(mode="json")} for c, spec in config.columns.items()]
    frame = pd.DataFrame([{"column_name": r["column"], "spec": json.dumps(r)} for r in rows])
    COLUMN_TYPES.write(conn, config, frame)


def resolved_config(conn: duckdb.DuckDBPyConnection, config: ProjectConfig) -> ProjectConfig:
    """The config with its columns: declared in YAML, or as inferred when validation ran."""
    if config.columns:
        return config
    stored = conn.execute(f"SELECT spec FROM {COLUMN_TYPES.of(config)}").fetchall()
    return with_columns(config, column_specs(raw for (raw,) in stored))


def save_feature_set(conn: duckdb.DuckDBPyConnection, config: ProjectConfig, fs: FeatureSet) -> None:
    FEATURE_SCHEMA.write(conn, config, fs.to_frame())


def load_feature_set(conn: duckdb.DuckDBPyConnection, config: ProjectConfig) -> FeatureSet:
    """The feature set decided when features were built (it depends on the data)."""
    return FeatureSet.from_frame(FEATURE_SCHEMA.read(conn, config))


def feature_set_of(feature_schema: StagedTable) -> FeatureSet:
    """The feature set decided when features were built (it depends on the data)."""
    return FeatureSet.from_frame(feature_schema.read())


def read_modelling_rows(features: StagedTable, config: ProjectConfig) -> tuple[pd.DataFrame, str]:
    """The features table as the modelling steps read it (whole, or its stratified sample above
    `models.max_rows`), and the words that say which, for the step's page."""
    with features.connection() as conn:
        rows = ModellingRows(conn.execute(f"SELECT count(*) FROM {features.sql}").fetchall()[0][0], config.models.max_rows)
        frame = conn.execute(rows.sql(features.sql, config.models.seed)).df()
    return frame, rows.describe(len(frame))


def config_with_columns(config: ProjectConfig, column_types: StagedTable) -> ProjectConfig:
    """The config with its columns: declared in YAML, or as inferred when validation ran."""
    if config.columns:
        return config
    return with_columns(config, column_specs(column_types.read("spec").spec))


def column_specs(stored) -> dict[str, ColumnSpec]:
    """The column specs `save_resolved_columns` stored, one JSON text each, by column name."""
    specs = {}
    for raw in stored:
        d = json.loads(raw)
        name = d.pop("column")
        specs[name] = ColumnSpec(**d)
    return specs
