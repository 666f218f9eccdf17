"""The revenue model learns from the converting leads in one order, so the same data and seed give
the same model (and the same expected revenue per lead) run after run."""

import duckdb

from leadscore_assets.assets.revenue import converting_rows_sql


def test_the_revenue_models_rows_come_in_the_features_tables_order_whatever_the_join_does():
    conn = duckdb.connect()
    conn.execute("SET threads = 2")  # a parallel hash join: rows come out as its threads finish
    n = 400_000
    conn.execute(f"CREATE TABLE f AS SELECT 'id' || lpad(i::VARCHAR, 7, '0') AS lead_id, (i % 3 = 0)::INT AS label, "
                 f"random() AS x FROM range({n}) t(i) ORDER BY random()")
    conn.execute(f"CREATE TABLE v AS SELECT 'id' || lpad(i::VARCHAR, 7, '0') AS \"Session ID\", (i % 7) AS revenue "
                 f"FROM range({n}) t(i) ORDER BY random()")
    sql = converting_rows_sql("f", "v", "Session ID", "revenue")
    got = conn.execute(sql).df()
    kept = set(got.lead_id)
    assert len(kept) == len(got) > 100_000 and (got._revenue > 0).all() and (got.label == 1).all()
    in_table_order = [i for i in conn.execute("SELECT lead_id FROM f").df().lead_id if i in kept]
    assert got.lead_id.tolist() == in_table_order
    assert conn.execute(sql).df().equals(got)
