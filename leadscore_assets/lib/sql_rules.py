"""SQL written in a project YAML, parsed before it ever runs.

Label rules and row rules are one boolean expression over a row; a source `query` is one
SELECT. Both are parsed with sqlglot (DuckDB dialect), so a rule cannot smuggle in a second
statement (`...; DROP TABLE ...`) or a query that writes. Parsing also tells which columns an
expression reads, which is how the label's columns are kept out of the features however the
YAML spells them, and lets column names be rewritten to their normalised form.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlglot
from sqlglot import exp

DIALECT = "duckdb"
# Anything that changes data, schema or session state; none of it belongs in a rule or a query.
_WRITES = tuple(
    getattr(exp, name)
    for name in ("Create", "Drop", "Insert", "Update", "Delete", "Merge", "Copy", "Attach", "Detach", "Install", "Alter",
                 "Command", "Set", "Use", "Transaction", "Commit", "Rollback", "Pragma", "TruncateTable", "Export",
                 "LoadData")
)


class ConfigSqlError(ValueError):
    """A rule or query in the project YAML is not one read-only expression / SELECT.

    `key` is where it sits in the YAML (e.g. ("label", "positive")), so the loader can name the
    file and line."""

    def __init__(self, message: str, key: tuple[str, ...] = ()):
        super().__init__(message)
        self.key = key


def _parse(text: str, where: str, key: tuple[str, ...]) -> exp.Expression:
    try:
        statements = [s for s in sqlglot.parse(text, read=DIALECT) if s is not None]
    except sqlglot.errors.SqlglotError as err:
        raise ConfigSqlError(f"{where}: {text!r} does not parse as SQL: {str(err).splitlines()[0]}", key) from err
    if len(statements) != 1:
        raise ConfigSqlError(f"{where}: {text!r} holds {len(statements)} statements; exactly one is allowed", key)
    tree = statements[0]
    writes = [node for node in tree.walk() if isinstance(node, _WRITES)]
    if writes:
        raise ConfigSqlError(
            f"{where}: {text!r} contains a {writes[0].key.upper()} statement; only reads are allowed", key)
    return tree


def parse_row_expression(text: str, where: str, key: tuple[str, ...] = ()) -> exp.Expression:
    """One expression over the columns of a row: no statements, no subqueries."""
    tree = _parse(text, where, key)
    if isinstance(tree, exp.Query) or tree.find(exp.Query, exp.Subquery):
        raise ConfigSqlError(f"{where}: {text!r} must be an expression over the row's columns, not a query", key)
    return tree


def parse_select(text: str, where: str, key: tuple[str, ...] = ()) -> exp.Expression:
    """One read-only SELECT (joins, aggregates and CTEs allowed)."""
    tree = _parse(text, where, key)
    if not isinstance(tree, exp.Query):
        raise ConfigSqlError(f"{where}: {text!r} must be a single SELECT", key)
    return tree


def columns_read(text: str, where: str, key: tuple[str, ...] = ()) -> set[str]:
    """Column names an expression reads, as written."""
    return {col.name for col in parse_row_expression(text, where, key).find_all(exp.Column) if col.name}


def rename_columns(text: str, where: str, rename: Callable[[str], str], key: tuple[str, ...] = ()) -> str:
    """The expression with every column reference passed through `rename` (quoted when needed)."""
    tree = parse_row_expression(text, where, key)
    changed = False
    for col in tree.find_all(exp.Column):
        new = rename(col.name)
        if new != col.name:
            col.set("this", exp.to_identifier(new))
            changed = True
    return tree.sql(dialect=DIALECT) if changed else text
