"""SQL written in a project YAML, parsed before it ever runs.

Label rules and row rules are one boolean expression over a row; a source `query` is one
SELECT. Both are parsed with sqlglot (DuckDB dialect), so a rule cannot smuggle in a second
statement (`...; DROP TABLE ...`) or a query that writes, and a source query reads only the
tables its YAML declares (no `read_csv('/etc/passwd')`, no `FROM 'file.csv'`). Parsing also tells
which columns an expression reads, which is how the label's columns are kept out of the features
however the YAML spells them, and lets column names be rewritten to their normalised form.
"""

from __future__ import annotations

import logging
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


def identifier(name: str) -> str:
    """A column name as SQL text, always quoted: a table may hold `case`, `order` or `call`."""
    return '"' + str(name).replace('"', '""') + '"'


class ConfigSqlError(ValueError):
    """A rule or query in the project YAML is not one read-only expression / SELECT.

    `key` is where it sits in the YAML (e.g. ("label", "positive")), so the loader can name the
    file and line."""

    def __init__(self, message: str, key: tuple[str, ...] = ()):
        super().__init__(message)
        self.key = key


def _parse(text: str, where: str, key: tuple[str, ...]) -> exp.Expression:
    parser_log = logging.getLogger("sqlglot")  # it warns when it falls back to a raw command: refused below
    level = parser_log.level
    parser_log.setLevel(logging.ERROR)
    try:
        statements = [s for s in sqlglot.parse(text, read=DIALECT) if s is not None]
    except sqlglot.errors.SqlglotError as err:
        raise ConfigSqlError(f"{where}: {text!r} does not parse as SQL: {str(err).splitlines()[0]}", key) from err
    finally:
        parser_log.setLevel(level)
    if len(statements) != 1:
        raise ConfigSqlError(f"{where}: {text!r} holds {len(statements)} statements; exactly one is allowed", key)
    tree = statements[0]
    writes = [node for node in tree.walk() if isinstance(node, _WRITES)]
    if writes:
        raise ConfigSqlError(
            f"{where}: {text!r} contains a {writes[0].key.upper()} statement; only reads are allowed", key)
    return tree


# Words that belong to an expression over a row; any other keyword where a value stands is taken
# for a column named like a keyword (`call`, `order`, `select`, ...) and quoted.
_EXPRESSION_WORDS = {
    "AND", "OR", "NOT", "IN", "IS", "NULL", "LIKE", "ILIKE", "GLOB", "SIMILAR", "TO", "ESCAPE", "BETWEEN", "CASE",
    "WHEN", "THEN", "ELSE", "END", "TRUE", "FALSE", "AS", "DISTINCT", "FROM", "DATE", "TIME", "TIMESTAMP", "INTERVAL",
    "EXISTS", "ANY", "ALL", "SOME", "COLLATE", "CAST", "TRY_CAST",
}
_QUOTE_HINT = ('a column named like an SQL keyword (call, order, group, select, ...) is written in double quotes '
               'inside the rule, e.g. positive: \'"order" = 1\'')


def _quote_keyword_columns(text: str) -> str | None:
    """`text` with every keyword standing where a column would (not a function, not a type after
    AS or ::) in double quotes; None when there is none or it cannot be tokenised."""
    from sqlglot.dialects.dialect import Dialect
    from sqlglot.tokens import TokenType

    try:
        tokens = Dialect.get_or_raise(DIALECT).tokenize(text)
    except sqlglot.errors.SqlglotError:
        return None
    spans = []
    for i, tok in enumerate(tokens):
        word = tok.text.isidentifier() and tok.token_type not in (TokenType.VAR, TokenType.IDENTIFIER, TokenType.STRING)
        before = tokens[i - 1].token_type if i else None
        after = tokens[i + 1].token_type if i + 1 < len(tokens) else None
        if (word and tok.text.upper() not in _EXPRESSION_WORDS and after != TokenType.L_PAREN
                and before not in (TokenType.ALIAS, TokenType.DCOLON)):
            spans.append((tok.start, tok.end))
    if not spans:
        return None
    out = text
    for start, end in reversed(spans):
        out = f'{out[:start]}"{out[start:end + 1]}"{out[end + 1:]}'
    return out


def parse_row_expression(text: str, where: str, key: tuple[str, ...] = ()) -> exp.Expression:
    """One expression over the columns of a row: no statements, no subqueries. A column named
    like a keyword may be written bare (`call = 1`): when the text only parses with such words
    quoted, it is read that way; otherwise the error says how to quote it."""
    try:
        tree = _parse(text, where, key)
    except ConfigSqlError as err:
        quoted = _quote_keyword_columns(text)
        try:
            tree = _parse(quoted, where, key) if quoted else None
        except ConfigSqlError:
            tree = None
        if tree is None or isinstance(tree, exp.Query):
            hint = "" if "statements;" in str(err) else f"; {_QUOTE_HINT}"
            raise ConfigSqlError(f"{err}{hint}", key) from err
    if isinstance(tree, exp.Query) or tree.find(exp.Query, exp.Subquery):
        raise ConfigSqlError(f"{where}: {text!r} must be an expression over the row's columns, not a query", key)
    return tree


def parse_select(text: str, where: str, key: tuple[str, ...] = ()) -> exp.Expression:
    """One read-only SELECT (joins, aggregates and CTEs allowed)."""
    tree = _parse(text, where, key)
    if not isinstance(tree, exp.Query):
        raise ConfigSqlError(f"{where}: {text!r} must be a single SELECT", key)
    return tree


# Functions that read files, other databases or run SQL text: never in a source query, wherever they sit.
_READERS = ("read_", "glob", "query", "query_table", "sniff_csv", "parquet_", "sqlite_", "postgres_", "mysql_",
            "iceberg_", "delta_", "duckdb_", "pragma_", "which_secret", "load_aws_credentials", "getenv")


def _function_name(node: exp.Func) -> str:
    return (node.name if isinstance(node, exp.Anonymous) else node.sql_name()).lower()


def check_reads_only(tree: exp.Expression, allowed: set[str] | list[str], where: str,
                     key: tuple[str, ...] = ()) -> None:
    """Refuse a query that reads anything but the `allowed` tables (and its own CTEs): no table
    function (`read_csv(...)`, `glob(...)`, `range(...)`), no file named as a table (`FROM 'x.csv'`),
    no schema- or database-qualified name, no undeclared table."""
    declared = {name.lower() for name in allowed}
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    shown = ", ".join(sorted(allowed)) or "(none declared)"

    def text(node: exp.Expression) -> str:
        return node.sql(dialect=DIALECT, normalize_functions="lower")

    def refuse(what: str) -> None:
        raise ConfigSqlError(f"{where} reads {what}; a query may read only the declared tables: {shown}", key)

    for node in tree.walk():
        if isinstance(node, exp.Table):
            if not isinstance(node.this, exp.Identifier):
                refuse(text(node.this if node.this is not None else node))
            name = node.name
            if node.args.get("db") or node.args.get("catalog"):
                refuse(f"{text(node).split(' AS ')[0]} (a qualified name)")
            if name.lower() not in declared | ctes:
                refuse(f"'{name}'" + (" (a file name)" if node.this.quoted and ("." in name or "/" in name)
                                      else " (not a declared table)"))
        elif isinstance(node, exp.Func) and _function_name(node).startswith(_READERS):
            refuse(text(node))


def columns_read(text: str, where: str, key: tuple[str, ...] = ()) -> set[str]:
    """Column names an expression reads, as written."""
    return {col.name for col in parse_row_expression(text, where, key).find_all(exp.Column) if col.name}


def rename_columns(text: str, where: str, rename: Callable[[str], str], key: tuple[str, ...] = ()) -> str:
    """The expression with every column reference passed through `rename`, written back quoted
    where DuckDB needs it (a renamed column, or one named like a keyword: `order` -> `"order"`)."""
    tree = parse_row_expression(text, where, key)
    changed = False
    for col in tree.find_all(exp.Column):
        new = rename(col.name)
        # a quoted name stays quoted (`"select"` must), a keyword gets quoted (`order` -> `"order"`)
        quoted = col.this.quoted or exp.to_identifier(new).sql(dialect=DIALECT) != new or None
        if new != col.name or quoted:
            col.set("this", exp.to_identifier(new, quoted=quoted))
            changed = True
    return tree.sql(dialect=DIALECT) if changed else text
