"""The modelling rows: a large features table is read as a sample that keeps its split sizes,
positive rates, every CRM-feedback row and its order; a small one is read whole."""

import duckdb
import numpy as np
import pandas as pd
import pytest

from leadscore_assets.lib.features.frame import FEEDBACK, ID, LABEL, SPLIT
from leadscore_assets.lib.features.sample import ModellingRows


@pytest.fixture
def table():
    rng = np.random.default_rng(3)
    n = 20_000
    split = rng.choice(["train", "validation", "test"], size=n, p=[0.6, 0.2, 0.2])
    label = pd.array((rng.random(n) < np.where(split == "test", 0.15, 0.05)).astype(int), dtype="Int64")
    label[rng.random(n) < 0.1] = pd.NA  # still-open leads
    frame = pd.DataFrame({ID: [f"lead-{i}" for i in range(n)], SPLIT: split, LABEL: label,
                          FEEDBACK: rng.random(n) < 0.01, "x": rng.normal(size=n)})
    conn = duckdb.connect()
    conn.execute("CREATE TABLE features AS SELECT * FROM frame")
    yield conn, frame
    conn.close()


def read(conn, rows: ModellingRows, seed: int = 42) -> pd.DataFrame:
    return conn.execute(rows.sql("features", seed)).df()


def cells(frame: pd.DataFrame) -> pd.Series:
    return frame.groupby([SPLIT, frame[LABEL].astype("string").fillna("open")]).size()


def test_a_table_within_the_limit_is_read_whole_in_order(table):
    conn, frame = table
    rows = ModellingRows(len(frame), 20_000)
    got = read(conn, rows)
    assert not rows.sampled and got[ID].tolist() == frame[ID].tolist()
    assert rows.describe(len(got)) == "all 20,000 rows"
    assert read(conn, ModellingRows(len(frame), None))[ID].tolist() == frame[ID].tolist()


def test_a_larger_table_keeps_each_split_and_labels_share(table):
    conn, frame = table
    rows = ModellingRows(len(frame), 5_000)
    got = read(conn, rows)
    fed = frame[FEEDBACK].sum()
    assert 5_000 <= len(got) <= 5_000 + fed + 10  # ceil per cell, plus feedback rows kept outside their cell's share
    share = cells(got[~got[FEEDBACK]]) / cells(frame[~frame[FEEDBACK]])
    assert share.between(0.24, 0.27).all(), share  # the same share from every (split, label) cell
    rates = got.groupby(SPLIT)[LABEL].mean() - frame.groupby(SPLIT)[LABEL].mean()
    assert rates.abs().max() < 0.01
    assert "of 20,000 rows" in rows.describe(len(got)) and "max_rows = 5,000" in rows.describe(len(got))


def test_every_feedback_row_is_kept_and_the_table_order_too(table):
    conn, frame = table
    got = read(conn, ModellingRows(len(frame), 2_000))
    assert set(frame.loc[frame[FEEDBACK], ID]) <= set(got[ID])
    position = {lead: i for i, lead in enumerate(frame[ID])}
    assert pd.Series([position[lead] for lead in got[ID]]).is_monotonic_increasing
    assert list(got.columns) == list(frame.columns)


def test_the_same_rows_each_read_and_other_rows_under_another_seed(table):
    conn, frame = table
    rows = ModellingRows(len(frame), 3_000)
    first, again, other = read(conn, rows), read(conn, rows), read(conn, rows, seed=7)
    assert first[ID].tolist() == again[ID].tolist()
    assert set(first[ID]) != set(other[ID])
