"""The label rule, evaluated in DuckDB: positive, negative, or unlabelled (NULL).

Unlabelled rows (still-open leads) are scored but never trained on: treating them as
negatives would teach the model that every lead in progress failed.
"""

from __future__ import annotations

import duckdb

from leadscore_assets.lib.project.config import ProjectConfig
from leadscore_assets.lib.project.sql_rules import identifier, parse_row_expression


class LabelRuleError(ValueError):
    """The configured label expression does not parse or does not run on the validated table."""


def label_select_sql(config: ProjectConfig, validated_table: str, feedback_table: str | None = None) -> str:
    """Rule labels, overridden per lead by the resolved CRM outcome when there is one."""
    rule = config.label
    rule_label = f"""CASE WHEN coalesce(({rule.positive}), false) THEN 1
                    WHEN coalesce(({rule.negative}), false) THEN 0 END"""
    if feedback_table is None:
        return f"""
            SELECT {identifier(config.id_column)} AS lead_id, {rule_label} AS label,
                   CASE WHEN {rule_label} IS NOT NULL THEN 'source' END AS label_source,
                   NULL::VARCHAR AS feedback_hash
            FROM {validated_table}
        """
    return f"""
        SELECT v.{identifier(config.id_column)} AS lead_id,
               coalesce(f.label::INTEGER, {rule_label}) AS label,
               CASE WHEN f.label IS NOT NULL THEN 'crm_feedback' WHEN {rule_label} IS NOT NULL THEN 'source' END AS label_source,
               f.content_hash AS feedback_hash
        FROM {validated_table} v LEFT JOIN {feedback_table} f ON f.lead_id = v.{identifier(config.id_column)}
    """


def check_label_rule(conn: duckdb.DuckDBPyConnection, config: ProjectConfig, validated_table: str) -> None:
    """Fail with the project and expression named when the rule is not valid SQL for the table."""
    for side in ("positive", "negative"):
        expr = getattr(config.label, side)
        try:  # parsed again here: a config built in code may have skipped validation
            parse_row_expression(expr, f"project '{config.name}': label.{side}", ("label", side))
        except ValueError as err:
            raise LabelRuleError(str(err)) from err
        try:
            conn.execute(f"SELECT count(*) FROM {validated_table} WHERE {expr}").fetchall()
        except duckdb.Error as err:
            raise LabelRuleError(f"project '{config.name}': label.{side} expression {expr!r} is invalid: {err}") from err
