import duckdb
import pytest
from dagster_duckdb import DuckDBResource

from leadscore_assets.assets.common import warehouse_connection


def test_a_failing_body_does_not_leave_the_warehouse_open(tmp_path):
    db = str(tmp_path / "w.duckdb")
    warehouse = DuckDBResource(database=db)
    with pytest.raises(RuntimeError):
        with warehouse_connection(warehouse) as conn:
            conn.execute("CREATE TABLE t AS SELECT 1 AS x")
            raise RuntimeError("asset failed")
    # A read-only connection in the same process fails while a read-write handle is still open.
    with duckdb.connect(db, read_only=True) as ro:
        assert ro.execute("SELECT x FROM t").fetchall() == [(1,)]
