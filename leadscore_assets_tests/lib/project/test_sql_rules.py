import duckdb
import pytest

from leadscore_assets.lib.project.sql_rules import ConfigSqlError, columns_read, parse_row_expression, rename_columns

KEYWORD_COLUMNS = ("call", "order", "group", "select", "limit")


@pytest.mark.parametrize("rule, rows", [
    ("call = 1", 1), ("order > 1 AND call = 1", 1), ("group = 'b'", 1), ("select = 0", 1),
    ("limit IS NOT NULL AND select IN (0, 1)", 2), ('"order" = 2', 1),
])
def test_a_column_named_like_a_keyword_works_in_a_rule_as_written(rule, rows):
    """`label: {positive: "call = 1"}` used to be refused as "contains a COMMAND statement"."""
    conn = duckdb.connect()
    conn.execute('CREATE TABLE leads ("call" INT, "order" INT, "group" VARCHAR, "select" INT, "limit" INT)')
    conn.execute("INSERT INTO leads VALUES (1, 2, 'b', 0, 5), (0, 1, 'a', 1, 7)")
    assert columns_read(rule, "label.positive") <= set(KEYWORD_COLUMNS)
    runnable = rename_columns(rule, "label.positive", lambda name: name)
    assert conn.execute(f"SELECT count(*) FROM leads WHERE {runnable}").fetchall()[0][0] == rows


def test_statements_stay_refused_when_keywords_are_quoted():
    for text in ("call some_procedure()", "x = 1; DROP TABLE leads", "select * from leads"):
        with pytest.raises(ConfigSqlError):
            parse_row_expression(text, "label.positive")


def test_a_rule_that_cannot_be_read_says_how_to_quote_a_keyword_column():
    with pytest.raises(ConfigSqlError, match='double quotes.*"order" = 1'):
        parse_row_expression("order = = 1", "label.positive")
