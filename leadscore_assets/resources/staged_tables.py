"""Tables as asset inputs: what a step reads arrives as a parameter, so the lineage is the data flow.

An asset that reads `[project, features]` declares it as an input (assets/inputs.py derives the
input and the dependency from one declaration) and gets a `StagedTable`: a handle on that table
in this run's staged copy of the project's warehouse (resources/warehouse.py), read when the
body asks (`features.read()`, `features.sql` inside `features.connection()`), never before, so a
step that needs only a count does not load a million rows. Nothing is written through it: each
asset writes its own tables through the table contract (assets/tables.py) and reports with
`MaterializeResult`, which is why this is an input manager only.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import dagster as dg
import duckdb
import pandas as pd

from leadscore_assets.resources.publication import CorruptWarehouseError
from leadscore_assets.resources.warehouse import ProjectBusyError, Warehouse

INPUT_MANAGER_KEY = "staged_tables"


@dataclass(frozen=True)
class StagedTable:
    """One upstream table of this run's staged warehouse copy."""

    project: str
    name: str
    warehouse: Warehouse

    @property
    def sql(self) -> str:
        """Its DuckDB name, `<project>.<table>`, for SQL run inside `connection()`."""
        return f"{self.project}.{self.name}"

    @contextmanager
    def connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """This run's staged copy (the first connection of a run claims the project; a second run
        of it fails here, naming the run that holds it)."""
        try:
            with self.warehouse.connection(self.project) as conn:
                yield conn
        except (ProjectBusyError, CorruptWarehouseError) as err:
            raise dg.Failure(description=str(err)) from err

    def exists(self) -> bool:
        with self.connection() as conn:
            return self._exists(conn)

    def read(self, columns: str = "*", where: str = "", params: list | None = None) -> pd.DataFrame:
        with self.connection() as conn:
            return conn.execute(f"SELECT {columns} FROM {self.sql} {where}", params or []).df()

    def read_if_exists(self, columns: str = "*") -> pd.DataFrame | None:
        with self.connection() as conn:
            return conn.execute(f"SELECT {columns} FROM {self.sql}").df() if self._exists(conn) else None

    def _exists(self, conn: duckdb.DuckDBPyConnection) -> bool:
        return bool(conn.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?",
                                 [self.project, self.name]).fetchall()[0][0])


@dg.input_manager(required_resource_keys={"warehouse"})
def staged_tables(context: dg.InputContext) -> StagedTable:
    """The handle of the upstream asset `[project, table]` in this run's staged copy."""
    project, name = context.asset_key.path
    return StagedTable(project, name, context.resources.warehouse)
