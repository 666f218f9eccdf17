"""The full validation route: every rule on every row, each failure named.

It keeps what only invalid rows need (row-by-row reasons, exact copies collapsed, repeated ids,
per-rule counts, the quarantine table) and is the reference the shortcuts of `shortcuts.py` are
held to. `validate` (the package's one entry) takes it whenever a shortcut cannot vouch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd
import pandera.pandas as pa

from leadscore_assets.lib.project.config import ProjectConfig
from leadscore_assets.lib.validation.personal_data import contains_personal_data
from leadscore_assets.lib.validation.rules import (
    COLLAPSED, FILE, LINEAGE, REASON, ROW, ValidationResult, check_rule, coerce, load_time, normalise, pandera_schema,
    passes_schema, rule_failures, type_rules,
)

MAX_SHOWN_ID = 64  # a longer "id" is free text, not an id: not quoted in a reason


@dataclass
class Failures:
    """Failure messages collected per raw row number, plus table-level problems.

    A row's message is what follows "<file> row <n> (lead '<id>')": " column 'x': rule" or
    ": what is wrong"; `columns` holds the columns whose value failed, per row (a row whose id
    failed is not named by its id). Messages never hold a cell value.
    """

    by_row: dict[int, list[str]] = field(default_factory=dict)
    table: list[str] = field(default_factory=list)
    columns: dict[int, set[str]] = field(default_factory=dict)

    def add(self, row: int, message: str) -> None:
        self.by_row.setdefault(int(row), []).append(message)

    def column(self, row: int, col: str, rule: str) -> None:
        """The value of `col` in `row` breaks `rule` (words that never quote the value)."""
        self.add(row, f" column '{col}': {rule}")
        self.columns.setdefault(int(row), set()).add(col)



def _collapse_exact_duplicates(df: pd.DataFrame, failures: Failures, id_column: str | None = None) -> set[int]:
    """Rows whose every value repeats an earlier row (a re-export, a double paste): set aside
    naming the row they repeat. They are not errors and do not count against the quarantine limit.
    Rows compare as text; when the `id_column`'s text is unique no two rows can, and none is hashed."""
    if id_column in df.columns and len(df) and df[id_column].astype(str).is_unique:
        return set()
    data = df.drop(columns=[c for c in LINEAGE if c in df.columns])
    if data.empty:
        return set()
    digest = pd.Series(pd.util.hash_pandas_object(data.astype(str), index=False).to_numpy(), index=df.index)
    first = pd.Series(df.index, index=df.index).groupby(digest.to_numpy()).transform("first")
    repeated = first[first != first.index]
    for row, kept in repeated.items():
        failures.add(row, f": exact duplicate of row {kept} (collapsed: the lead is kept once)")
    return {int(r) for r in repeated.index}


def _quarantine_repeated_ids(typed: pd.DataFrame, config: ProjectConfig, failures: Failures, collapsed: set[int]) -> int:
    """Keep one row per id (the first, or the most complete), quarantine the others naming the kept row."""
    id_col = config.id_column
    if typed[id_col].dropna().is_unique:  # no id repeats: nothing to keep or drop
        return 0
    order = pd.DataFrame({"id": typed[id_col], "row": typed.index, "filled": typed.notna().sum(axis=1).to_numpy()})
    order = order[order.id.notna() & ~order.row.isin(collapsed)]
    if config.normalise.deduplicate == "most_complete":
        order = order.sort_values(["filled", "row"], ascending=[False, True], kind="stable")
    else:
        order = order.sort_values("row", kind="stable")
    kept = order.drop_duplicates("id").set_index("id").row
    dropped = order[order.duplicated("id")]
    how = "more complete row" if config.normalise.deduplicate == "most_complete" else "first seen at row"
    for ident, row in zip(dropped.id, dropped.row):
        failures.add(row, f" column '{id_col}': duplicate id (kept {how} {kept[ident]})")
    return len(dropped)


def validate_in_full(raw: pd.DataFrame, config: ProjectConfig, now: datetime | pd.Timestamp | None = None) -> ValidationResult:
    """Split raw rows (with `_row_number`, `_source_file`) into typed valid rows and quarantine.

    Row-level failures quarantine the row; table-level failures (a missing column) quarantine
    every row, because no row can be trusted, and are returned as `table_errors`. A date later
    than the load time `now` (default: the current UTC time; naive times are UTC) plus
    `validation.future_tolerance_hours` is a row failure of its column.
    """
    df = normalise(raw, config).set_index(ROW, drop=False)
    source = str(df[FILE].iloc[0]) if len(df) else config.source.path
    failures = Failures()
    counts: dict[str, int] = {}

    missing = [c for c in config.columns if c not in df.columns]
    for col in missing:
        failures.table.append(f"required column '{col}' is missing")
    if config.validation.ordered_columns and not missing:
        found = [c for c in df.columns if c in config.columns]
        if found != list(config.columns):
            failures.table.append(f"columns out of order: expected {list(config.columns)}, found {found}")

    columns = {}
    for col, spec in config.columns.items():
        if col in missing:
            continue
        columns[col], bad = coerce(df[col], spec)
        n_bad = int(bad.sum())
        if n_bad:
            given = df.loc[bad, col]
            for row, rule in zip(given.index, type_rules(spec.type, given)):
                failures.column(row, col, rule)
        counts[f"{col}:type"] = n_bad
    if df.index.is_unique:  # one frame built at once (row numbers are unique within a file)
        typed = pd.DataFrame(columns, index=df.index)
    else:
        typed = pd.DataFrame(index=df.index)
        for col, values in columns.items():
            typed[col] = values

    loaded = load_time(now)
    latest = loaded + pd.Timedelta(hours=config.validation.future_tolerance_hours)
    for col, spec in config.columns.items():
        if spec.type != "datetime" or col in missing:
            continue
        future = (typed[col] > latest).to_numpy()  # NaT compares False: missing and unparseable dates are not future
        counts[f"{col}:future"] = int(future.sum())
        if not counts[f"{col}:future"]:
            continue
        rule = (f"is in the future: a date more than {config.validation.future_tolerance_hours:g} h after the load"
                f" time ({loaded:%Y-%m-%d %H:%M} UTC)")  # the date itself is a value: not shown
        for row in df.index[future]:
            failures.column(row, col, rule)

    collapsed = _collapse_exact_duplicates(df, failures, config.id_column)
    counts["exact_duplicate:collapsed"] = len(collapsed)
    if config.id_column in typed:
        counts[f"{config.id_column}:duplicate"] = _quarantine_repeated_ids(typed, config, failures, collapsed)
    for rule in config.validation.row_rules:
        failing = rule_failures(typed, rule.expression, config.name)
        for row in failing:
            failures.add(row, f": rule {rule.name!r} ({rule.expression}) is false")
        counts[f"rule:{rule.name}"] = len(failing)

    if not missing:
        candidate = typed.drop(index=list(failures.by_row)) if failures.by_row else typed
        try:
            if not passes_schema(candidate, config):
                pandera_schema(config).validate(candidate, lazy=True)
        except pa.errors.SchemaErrors as err:  # its failure cases hold the values: only column, check and row leave
            for col, check, index in zip(err.failure_cases["column"], err.failure_cases["check"].astype(str),
                                         err.failure_cases["index"]):
                counts[f"{col}:{check}"] = counts.get(f"{col}:{check}", 0) + 1
                if pd.isna(index):
                    failures.table.append(f"column '{col}' fails {check}")
                    continue
                failures.column(int(index), col, check_rule(check))

    bad_rows = set(df.index) if failures.table else set(failures.by_row)
    is_bad = df.index.isin(bad_rows)
    if is_bad.any():
        valid = typed.loc[~is_bad].copy()
        valid[ROW] = df.loc[~is_bad, ROW].astype("int64")
        valid[FILE] = df.loc[~is_bad, FILE]
    else:  # every row valid: the typed frame itself (built here, nobody else holds it)
        valid = typed
        valid[ROW] = df[ROW].astype("int64")
        valid[FILE] = df[FILE]
    quarantined = raw.iloc[np.flatnonzero(is_bad)].set_index(ROW, drop=False)
    table_reason = "; ".join(failures.table)
    quarantined[COLLAPSED] = quarantined.index.isin(collapsed) & (table_reason == "")
    leads = _shown_lead_ids(typed, config, failures) if failures.by_row else {}
    quarantined[REASON] = pd.Series([
        "; ".join(filter(None, [table_reason and f"{source} row {r}: {table_reason} (whole file quarantined)",
                                *(f"{source} row {r}{leads.get(int(r), '')}{message}"
                                  for message in failures.by_row.get(int(r), []))]))
        for r in quarantined.index
    ], index=quarantined.index, dtype=object)
    return ValidationResult(
        valid=valid.reset_index(drop=True),
        quarantined=_as_objects(quarantined.reset_index(drop=True), [c for c in raw.columns if c not in LINEAGE]),
        table_errors=[f"{source}: {e}" for e in failures.table],
        failure_counts={k: v for k, v in counts.items() if v},
    )


def _shown_lead_ids(typed: pd.DataFrame, config: ProjectConfig, failures: Failures) -> dict[int, str]:
    """The " (lead '<id>')" of each failed row whose id may be quoted: the id column is not personal
    data, the row's id is present and did not fail itself, and it looks like an id (short, no
    email address or URL in it)."""
    id_col = config.id_column
    if id_col not in typed or id_col in set(config.personal_data):
        return {}
    rows = [r for r in failures.by_row if id_col not in failures.columns.get(r, ())]
    ids = typed[id_col]
    shown = {}
    for row in rows:
        if row not in ids.index:
            continue
        value = ids.loc[row]
        if isinstance(value, pd.Series):  # a row number repeated (several files): no single id
            continue
        part = lead_part(value)
        if part:
            shown[row] = part
    return shown


def lead_part(value: object) -> str:
    """The " (lead '<id>')" naming a row by its typed id `value`, or "" when it may not be quoted
    (missing, longer than an id, or holding an email address or a URL). The serving's one-lead
    path words its reasons with it too."""
    text = None if value is None or pd.isna(value) else str(value)
    if text and len(text) <= MAX_SHOWN_ID and not contains_personal_data(text, phones=False):
        return f" (lead {text!r})"
    return ""


def _as_objects(df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """`df` with `columns` as object columns (those already object left as they are)."""
    cast = {c: object for c in columns if df[c].dtype != object}
    return df.astype(cast) if cast else df
