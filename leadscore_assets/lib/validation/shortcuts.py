"""Two shortcuts `validate` takes when it can vouch that every row is valid.

The full route (`in_full.py`) costs ~7 ms for one row and ~35 ms for 1,000, most of it what
only invalid rows need (row-by-row reasons, duplicate hashing, counts, the quarantine table) and
pandas steps repeated per column. A served lead has a 25 ms budget, and most requests and many
files are clean, so:

- `one_record`: a single row, value by value on Python scalars (~0.5 ms);
- `clean_batch`: any number of rows of text (what an export or a JSON request holds), column by
  column on arrays.

Both apply the same rules, from `rules.py`, in the order the full route applies them (normalise;
type; future dates; unique ids; row rules; then nullability, pattern, allowed values, min and
max), and answer only when every row passes: anything else (a failure, a missing or misordered
column, a typed source, a rule kind they do not know) returns None and the full route names
each failure. Tests hold them to the full route on every project's raw rows.
"""

from __future__ import annotations

import re
from datetime import datetime

import numpy as np
import pandas as pd

from leadscore_assets.lib.project.config import ProjectConfig
from leadscore_assets.lib.validation.rules import (
    COLLAPSED, FALSE, FILE, LINEAGE, NULL_TOKENS, REASON, ROW, TRUE, ValidationResult, clean_texts, coerce, load_time,
    passes_schema, rule_failures,
)

_SCALARS = (str, int, float, bool, np.integer, np.floating, np.bool_)
_DTYPES = {"integer": "Int64", "float": "float64", "boolean": "boolean", "datetime": "datetime64[ns]"}


class _Declined(Exception):
    """The shortcut cannot vouch for this record: the full route takes it."""


def _missing(value) -> bool:
    return value is None or value is pd.NA or value is pd.NaT or (isinstance(value, (float, np.floating)) and np.isnan(value))


def one_record(raw: pd.DataFrame, config: ProjectConfig, now: datetime | pd.Timestamp | None) -> ValidationResult | None:
    """The result of `validate` for a one-row `raw` whose row is valid, else None."""
    if len(raw) != 1:
        return None
    try:
        typed = _typed_record(raw.iloc[0].to_dict(), config, now)
    except (_Declined, ValueError):  # ValueError: colliding names, a broken rule: the full route says so
        return None
    if typed is None:
        return None
    columns = {c: _one_value_array(typed[c], spec.type) for c, spec in config.columns.items()}
    valid = pd.DataFrame({**columns, ROW: raw[ROW].to_numpy().astype("int64"), FILE: raw[FILE].to_numpy()})
    try:
        if any(rule_failures(valid, rule.expression, config.name) for rule in config.validation.row_rules):
            return None
    except ValueError:
        return None
    return _all_valid(valid, raw)


def _one_value_array(value, kind: str):
    """One typed value as the one-element column the full route holds it in."""
    if kind in ("integer", "boolean"):
        return pd.array([value], dtype=_DTYPES[kind])
    if kind == "float":
        return np.array([np.nan if value is None else value], dtype="float64")
    if kind == "datetime":
        return np.array([np.datetime64("NaT") if value is None else value.to_datetime64()], dtype="datetime64[ns]")
    return np.array([value], dtype=object)


def clean_batch(raw: pd.DataFrame, config: ProjectConfig, now: datetime | pd.Timestamp | None) -> ValidationResult | None:
    """The result of `validate` for `raw` when its every row is valid and every configured column
    is sent as text, else None."""
    try:
        names = config.naming.columns([c for c in raw.columns if c not in LINEAGE])
    except ValueError:  # colliding names: the full route says so
        return None
    found = [c for c in names.values() if c in config.columns]
    if sorted(found) != sorted(config.columns):  # a column missing: every row quarantined, the full way
        return None
    if config.validation.ordered_columns and found != list(config.columns):
        return None
    lowercase, columns = set(config.normalise.lowercase), {}
    for source, col in names.items():
        spec = config.columns.get(col)
        if spec is None:
            continue  # validate types and checks the configured columns only
        values = raw[source].to_numpy()
        null = pd.isna(values)
        if values.dtype != object or not set(map(type, values[~null])) <= {str}:
            return None
        text = clean_texts(values, col in lowercase)
        if spec.type in ("string", "text"):
            text[pd.isna(text)] = None
            columns[col] = text
            continue
        columns[col], bad = coerce(pd.Series(text, name=col), spec)
        if bad.any():
            return None
    typed = pd.DataFrame({c: columns[c] for c in config.columns})
    latest = load_time(now) + pd.Timedelta(hours=config.validation.future_tolerance_hours)
    if any((typed[c] > latest).any() for c, spec in config.columns.items() if spec.type == "datetime"):
        return None
    ids = typed[config.id_column]
    if ids.isna().any() or not ids.astype(str).is_unique:  # repeated ids and exact copies
        return None
    try:
        if any(rule_failures(typed, rule.expression, config.name) for rule in config.validation.row_rules):
            return None
    except ValueError:  # a broken rule: the full route refuses it
        return None
    if not passes_schema(typed, config):
        return None
    typed[ROW] = raw[ROW].to_numpy().astype("int64")
    typed[FILE] = raw[FILE].to_numpy()
    return _all_valid(typed, raw)


def _all_valid(valid: pd.DataFrame, raw: pd.DataFrame) -> ValidationResult:
    """Every row valid: no quarantine (an empty one shaped as the full route's), no counts."""
    empty = {c: np.array([], dtype=raw[c].dtype if c in LINEAGE else object) for c in raw.columns}
    quarantined = pd.DataFrame({**empty, COLLAPSED: np.array([], dtype=bool), REASON: np.array([], dtype=object)})
    return ValidationResult(valid=valid, quarantined=quarantined, table_errors=[], failure_counts={})


def _typed_record(record: dict, config: ProjectConfig, now) -> dict | None:
    """The typed values of one raw record, or None when a value fails a rule (row rules aside)."""
    for spec in config.columns.values():
        if spec.allowed is not None and spec.type in ("boolean", "datetime"):
            raise _Declined("allowed values of a boolean or datetime")
        if (spec.min is not None or spec.max is not None) and spec.type not in ("integer", "float"):
            raise _Declined("min/max of a non-number")
    names = config.naming.columns([c for c in record if c not in LINEAGE])
    values = {}
    for raw_name, value in record.items():
        if raw_name in LINEAGE:
            continue
        if isinstance(value, str):
            value = value.strip()
            value = None if value == "" or value in NULL_TOKENS else value
        elif _missing(value):
            value = None
        elif not isinstance(value, _SCALARS) and not isinstance(value, pd.Timestamp):
            raise _Declined(type(value).__name__)
        values[names[raw_name]] = value
    for col in config.normalise.lowercase:
        if isinstance(values.get(col), str):
            values[col] = values[col].lower()
        elif values.get(col) is not None:
            raise _Declined("lowercase of a non-text value")
    if any(c not in values for c in config.columns):
        raise _Declined("missing column")
    if config.validation.ordered_columns and [c for c in values if c in config.columns] != list(config.columns):
        raise _Declined("columns out of order")
    typed = {}
    for col, spec in config.columns.items():
        typed[col], bad = _coerce_value(values[col], spec)
        if bad:
            return None
    latest = load_time(now) + pd.Timedelta(hours=config.validation.future_tolerance_hours)
    if any(spec.type == "datetime" and typed[c] is not None and typed[c] > latest for c, spec in config.columns.items()):
        return None
    for col, spec in config.columns.items():  # pandera's checks (row rules: on the typed frame, by the caller)
        value = typed[col]
        if value is None:
            if not spec.nullable:
                return None
            continue
        if not _passes_checks(value, spec):
            return None
    return typed


def _coerce_value(value, spec) -> tuple[object, bool]:
    """`rules.coerce` of one value: (typed value or None, present but unparseable)."""
    if value is None:
        return None, False
    kind = spec.type
    if kind in ("string", "text"):
        if isinstance(value, pd.Timestamp):
            raise _Declined("a date in a text column")
        return (value if isinstance(value, str) else str(value.item() if isinstance(value, np.generic) else value)), False
    if kind in ("integer", "float"):
        if isinstance(value, pd.Timestamp):
            raise _Declined("a date in a number column")
        num = pd.to_numeric(value, errors="coerce") if isinstance(value, str) else value
        num = float(num)
        if np.isnan(num):
            return None, True
        if kind == "integer":
            return (None, True) if num % 1 != 0 else (int(num), False)
        return num, False
    if kind == "boolean":
        text = str(value.item() if isinstance(value, np.generic) else value).lower()
        return (True, False) if text in TRUE else (False, False) if text in FALSE else (None, True)
    parsed, bad = coerce(pd.Series([value]), spec)  # datetimes: pandas' own parser, as the full route uses
    when = parsed.iloc[0]
    return (None if pd.isna(when) else pd.Timestamp(when)), bool(bad[0])


def _passes_checks(value, spec) -> bool:
    try:
        if spec.pattern and re.match(spec.pattern, value) is None:
            return False
        if spec.allowed is not None:
            allowed = [float(v) for v in spec.allowed] if spec.type in ("integer", "float") else spec.allowed
            if value not in allowed:
                return False
        if spec.min is not None and not value >= spec.min:
            return False
        return spec.max is None or value <= spec.max
    except TypeError:  # a comparison the full route reports as a failure
        return False
