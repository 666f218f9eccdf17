"""The label rule, evaluated in DuckDB: positive, negative, or unlabelled (NULL).

Unlabelled rows (still-open leads) are scored but never trained on: treating them as
negatives would teach the model that every lead in progress failed.
"""

from __future__ import annotations

import duckdb

from leadscore_assets.lib.config import ProjectConfig


class LabelRuleError(ValueError):
    """The configured label expression does not parse or does not run on the validated table."""


def label_select_sql(config: ProjectConfig, validated_table: str) -> str:
    rule = config.label
    return f"""
        SELECT {config.id_column} AS lead_id,
               CASE WHEN coalesce(({rule.positive}), false) THEN 1
                    WHEN coalesce(({rule.negative}), false) THEN 0
               END AS label
        FROM {validated_table}
    """


def check_label_rule(conn: duckdb.DuckDBPyConnection, config: ProjectConfig, validated_table: str) -> None:
    """Fail with the project and expression named when the rule is not valid SQL for the table."""
    for side in ("positive", "negative"):
        expr = getattr(config.label, side)
        try:
            conn.execute(f"SELECT count(*) FROM {validated_table} WHERE {expr}").fetchall()
        except duckdb.Error as err:
            raise LabelRuleError(f"project '{config.name}': label.{side} expression {expr!r} is invalid: {err}") from err
