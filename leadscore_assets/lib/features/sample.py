"""The modelling rows: the features table, or a stratified sample of it when it is larger than
`models.max_rows`.

Training, evaluation, the champion comparison, drift and the profile learn or measure
population figures, which a large sample gives as well as every row does; holding every row of
a ten-million-lead table in memory at each of those steps does not fit on one machine. Scoring
is not sampled: every lead gets its score and reasons (assets/scoring.py streams them).

The sample is the same in every step of a run and across runs: within each (split, label) cell
the rows with the lowest hash of their lead id are taken, in the same share from every cell, so
split sizes and positive rates are those of the table; every row labelled by CRM feedback is kept,
since those are the outcomes the model is retrained to learn. Rows keep the table's order.
"""

from __future__ import annotations

from dataclasses import dataclass

from leadscore_assets.lib.features.frame import FEEDBACK, ID, LABEL, SPLIT


@dataclass(frozen=True)
class ModellingRows:
    """How many of the features table's rows the modelling steps read, and how they were chosen."""

    total: int
    max_rows: int | None

    @property
    def sampled(self) -> bool:
        return self.max_rows is not None and self.total > self.max_rows

    @property
    def share(self) -> float:
        return self.max_rows / self.total if self.sampled else 1.0

    def sql(self, table: str, seed: int) -> str:
        """The SELECT that reads them from `table` (a DuckDB name), in table order."""
        if not self.sampled:
            return f"SELECT * FROM {table}"
        return f"""
            SELECT * EXCLUDE (_position, _rank, _cell) FROM (
                SELECT *, rowid AS _position,
                       row_number() OVER (PARTITION BY {SPLIT}, {LABEL} ORDER BY hash(CAST({ID} AS VARCHAR) || '#{int(seed)}'), {ID}) AS _rank,
                       count(*) OVER (PARTITION BY {SPLIT}, {LABEL}) AS _cell
                FROM {table})
            WHERE coalesce({FEEDBACK}, false) OR _rank <= ceil(_cell * {self.share!r})
            ORDER BY _position"""

    def describe(self, read: int) -> str:
        """For the asset pages: what the figures beside it were computed on."""
        if not self.sampled:
            return f"all {self.total:,} rows"
        return (f"{read:,} of {self.total:,} rows ({read / self.total:.1%}): a sample stratified by split and label, "
                f"every CRM-feedback row kept (models.max_rows = {self.max_rows:,})")

