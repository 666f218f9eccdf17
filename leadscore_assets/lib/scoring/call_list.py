"""The call list: every scored lead, best first, with the context a salesperson reads.

Built from `lead_scores` and the validated rows: the lead id, the non-personal context columns
the project names under `call_list.columns` (company, job title, ...), grade, probability,
contact flag and every reason. Personal data never enters it (the config refuses to name it).
No file is opened here: the list is written into streams the caller opened; the files, their
names and the publishing swap are resources/call_list_files.py's.
"""

from __future__ import annotations

from typing import BinaryIO, Iterable, TextIO

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from leadscore_assets.lib.project.config import ProjectConfig
from leadscore_assets.lib.scoring.explain import REASON_COLUMNS
from leadscore_assets.lib.features.frame import ID
from leadscore_assets.lib.scoring.spreadsheet import write_spreadsheet_csv_batches

VALUE_COLUMNS = ("expected_order_value", "expected_revenue")
# DuckDB's integer types and the pandas dtype a column of them with NULLs takes in its frames
NULLABLE_INTEGERS = {"TINYINT": "Int8", "SMALLINT": "Int16", "INTEGER": "Int32", "BIGINT": "Int64",
                     "UTINYINT": "UInt8", "USMALLINT": "UInt16", "UINTEGER": "UInt32", "UBIGINT": "UInt64"}


def call_list(scores: pd.DataFrame, validated: pd.DataFrame, config: ProjectConfig) -> pd.DataFrame:
    """Ranked leads (scores' order) with their context columns joined by id."""
    context = [c for c in config.call_list.columns if c in validated.columns]
    ranked = scores.reset_index(drop=True)
    if context:
        ctx = validated[[config.id_column, *context]].drop_duplicates(config.id_column)
        ctx = ctx.rename(columns={config.id_column: ID}).astype({ID: str})
        ranked = ranked.merge(ctx, on=ID, how="left", validate="one_to_one")
    ranked.insert(0, "rank", range(1, len(ranked) + 1))
    return ranked[shown_columns(context, ranked.columns)]


def shown_columns(context: list[str], have) -> list[str]:
    """The call list's columns in order, of those `have` holds."""
    shown = ["rank", ID, *context, "grade", "probability", "decile", "contact", *VALUE_COLUMNS, *REASON_COLUMNS]
    return [c for c in shown if c in set(have)]


def _q(column: str) -> str:
    return '"' + str(column).replace('"', '""') + '"'


def call_list_query(scores: str, validated: str, id_column: str, context: list[str], scores_columns,
                    doubles: Iterable[str] = ()) -> str:
    """The call list in SQL, what `call_list` gives but its rank (`with_rank` numbers the rows as they
    come, sparing DuckDB a window over every lead): `scores` (a table ranked in its row order) with
    the `context` columns of each lead's first row in `validated` (by id, as text), in rank order;
    `doubles` are context columns read as DOUBLE (see `context_dtypes`)."""
    doubles = set(doubles)
    ctx = "".join(f", {_q(c)}" for c in context)
    first = (f"SELECT CAST({_q(id_column)} AS VARCHAR) AS __id{ctx} FROM {validated} "
             f"QUALIFY row_number() OVER (PARTITION BY {_q(id_column)} ORDER BY rowid) = 1")
    select = []
    for c in shown_columns(context, [*context, *scores_columns]):
        if c in context:
            select.append(f"CAST(v.{_q(c)} AS DOUBLE) AS {_q(c)}" if c in doubles else f"v.{_q(c)}")
        else:
            select.append(f"s.{_q(c)}")
    return (f"SELECT {', '.join(select)} FROM {scores} AS s LEFT JOIN ({first}) AS v ON v.__id = s.{_q(ID)} "
            "ORDER BY s.rowid")


def with_rank(batches: Iterable[pd.DataFrame]) -> Iterable[pd.DataFrame]:
    """`batches` of the list in rank order, each with its first column `rank` (1, 2, ... across them)."""
    start = 1
    for batch in batches:
        batch.insert(0, "rank", range(start, start + len(batch)))
        start += len(batch)
        yield batch


def context_dtypes(types: dict[str, str], with_nulls: set[str], missed: bool) -> tuple[set[str], dict[str, str]]:
    """How the whole-frame call list typed the context columns (DuckDB's frame of the validated rows,
    then a left merge), for batches that each hold only some leads: the integer columns to read as
    DOUBLE (no NULL in `validated`, but a lead without a validated row: the merge made them float)
    and the pandas dtype of the others (a column with NULLs in `validated` is nullable in every batch).
    `types`: the context columns' DuckDB types; `missed`: some lead has no validated row."""
    doubles, dtypes = set(), {}
    for column, kind in types.items():
        if kind in NULLABLE_INTEGERS:
            if column in with_nulls:
                dtypes[column] = NULLABLE_INTEGERS[kind]
            elif missed:
                doubles.add(column)
        elif kind == "BOOLEAN":
            if column in with_nulls:
                dtypes[column] = "boolean"
            elif missed:
                dtypes[column] = "object"
    return doubles, dtypes


def top_of_call_list(calls: pd.DataFrame, top: int) -> pd.DataFrame:
    """The top leads as shown on the asset page: probability rounded, a dash where a lead has no
    such reason."""
    shown = calls.head(top).copy()
    shown["probability"] = shown.probability.round(4)
    for c in REASON_COLUMNS:
        if c in shown:
            shown[c] = shown[c].fillna("").replace("", "-")
    return shown


def write_call_list(calls: pd.DataFrame, csv_out: TextIO, parquet_out: BinaryIO) -> None:
    """The list as CSV (into the text stream `csv_out`) and Parquet (into the binary stream
    `parquet_out`), streams the caller opened (resources/call_list_files.py names and publishes the files).

    The CSV is for people: opened in a spreadsheet, so its text cells are neutralised (`'=...`,
    see lib/scoring/spreadsheet.py) and quoted. The Parquet copy is for machines and keeps the raw values."""
    write_call_list_batches([calls], csv_out, parquet_out)


def write_call_list_batches(batches: Iterable[pd.DataFrame], csv_out: TextIO, parquet_out: BinaryIO, top: int = 0,
                            timestamps: pd.DataFrame | None = None) -> pd.DataFrame:
    """`write_call_list` for a list given in batches (same columns and dtypes, at least one), each
    written as it comes: memory holds one batch. Returns the list's first `top` rows.
    `timestamps`: see `write_spreadsheet_csv_batches`. The streams are left open."""
    head: list[pd.DataFrame] = []
    writer = None

    def to_parquet_too(frames):
        nonlocal writer
        kept = 0
        for frame in frames:
            if writer is None:  # the first batch's schema; a text column still all empty is text
                schema = pa.Schema.from_pandas(frame, preserve_index=False)
                for i, field in enumerate(schema):
                    if pa.types.is_null(field.type):
                        schema = schema.set(i, field.with_type(pa.string()))
                writer = pq.ParquetWriter(parquet_out, schema)
            writer.write_table(pa.Table.from_pandas(frame, schema=writer.schema, preserve_index=False))
            if kept < top or not head:
                head.append(frame.head(max(top - kept, 0)))
                kept += len(head[-1])
            yield frame

    try:
        write_spreadsheet_csv_batches(to_parquet_too(batches), csv_out, timestamps)
    finally:
        if writer is not None:
            writer.close()
    return pd.concat(head, ignore_index=True) if len(head) > 1 else head[0].reset_index(drop=True)
