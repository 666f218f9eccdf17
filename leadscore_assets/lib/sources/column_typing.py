"""Automatic column typing for bring-your-own tables that declare no `columns:`.

A column is numeric, boolean or datetime when nearly all of its present values parse as such;
long, sentence-like strings are free `text` (left out of features unless configured); other
strings are categorical. The id column is declared non-null and unique.
"""

from __future__ import annotations

import pandas as pd

from leadscore_assets.lib.project.config import ColumnSpec, ProjectConfig
from leadscore_assets.lib.validation import LINEAGE, normalise

PARSE_SHARE = 0.98  # share of present values that must parse for a type to be chosen
TEXT_MIN_MEAN_LENGTH = 30
TEXT_MIN_MEAN_WORDS = 4  # sentences, not category labels
_BOOL = {"true", "false", "0", "1", "yes", "no", "t", "f", "y", "n"}


def infer_type(series: pd.Series) -> str:
    present = series.dropna()
    if present.empty:
        return "string"
    if pd.api.types.is_bool_dtype(present):
        return "boolean"
    if pd.api.types.is_integer_dtype(present):
        return "integer"
    if pd.api.types.is_float_dtype(present):
        return "float"
    if pd.api.types.is_datetime64_any_dtype(present):
        return "datetime"
    text = present.astype(str).str.strip()
    text = text[text != ""]
    if text.empty:
        return "string"
    if text.str.lower().isin(_BOOL).all() and text.str.lower().nunique() <= 2 and not text.str.fullmatch(r"[01]").all():
        return "boolean"
    num = pd.to_numeric(text, errors="coerce")
    if num.notna().mean() >= PARSE_SHARE:
        return "integer" if (num.dropna() % 1 == 0).all() else "float"
    dates = pd.to_datetime(text, errors="coerce", utc=True, format="mixed")
    if dates.notna().mean() >= PARSE_SHARE and text.str.contains(r"\d{4}|\d{1,2}[/-]\d{1,2}", regex=True).mean() >= PARSE_SHARE:
        return "datetime"
    if text.str.len().mean() >= TEXT_MIN_MEAN_LENGTH and text.str.split().str.len().mean() >= TEXT_MIN_MEAN_WORDS:
        return "text"
    return "string"


def infer_columns(raw: pd.DataFrame, config: ProjectConfig) -> dict[str, ColumnSpec]:
    """Column specs for every (normalised) raw column, with the id declared unique and required."""
    df = normalise(raw, config)
    specs = {}
    for col in df.columns:
        if col in LINEAGE:
            continue
        kind = infer_type(df[col])
        if col == config.id_column:
            specs[col] = ColumnSpec(type="string", nullable=False, unique=True)
        else:
            specs[col] = ColumnSpec(type=kind)
    return specs


def with_columns(config: ProjectConfig, columns: dict[str, ColumnSpec]) -> ProjectConfig:
    """The config with its columns resolved, failing with every unknown column the YAML names."""
    problems = config.unknown_columns(columns)
    if problems:
        raise ValueError(f"project '{config.name}': " + "; ".join(problems) + f" (columns found: {sorted(columns)})")
    return config.model_copy(update={"columns": columns})
