"""labels: the project's label rule evaluated over the validated table in DuckDB."""


import dagster as dg

from leadscore_assets.assets.common import check, check_results, check_specs, warehouse_connection
from leadscore_assets.assets.inputs import Reads, StagedTable
from leadscore_assets.assets.specs import asset_kwargs, step_tags
from leadscore_assets.assets.tables import (
    FEEDBACK_LABELS,
    LABELS,
    VALIDATED_CONTACTS,
)
from leadscore_assets.lib.project.config import ProjectConfig
from leadscore_assets.lib.labels.label_rule import LabelRuleError, check_label_rule, label_select_sql
from leadscore_assets.resources.warehouse import Warehouse


def build(config: ProjectConfig) -> list:
    low, high = config.validation.positive_rate

    @check("positive_rate_plausible", blocking=True,
           description=f"Both classes present and the labelled positive rate within [{low:.0%}, {high:.0%}].")
    def positive_rate_plausible(warehouse: Warehouse) -> dg.AssetCheckResult:
        with warehouse_connection(warehouse, config) as conn:
            pos, neg = conn.execute(
                f"SELECT count(*) FILTER (label = 1), count(*) FILTER (label = 0) FROM {LABELS.of(config)}"
            ).fetchall()[0]
        rate = pos / max(pos + neg, 1)
        passed = pos > 0 and neg > 0 and low <= rate <= high
        return dg.AssetCheckResult(
            passed=passed,
            metadata={"positive": pos, "negative": neg, "positive_rate": float(rate)},
            description=None if passed else (
                f"no positives ({neg} negatives): the label rule never holds" if pos == 0 else
                f"no negatives ({pos} positives): the label rule always holds" if neg == 0 else
                f"{pos} positives, {neg} negatives: rate {rate:.1%} outside [{low:.0%}, {high:.0%}]"),
        )

    reads = Reads(config, validated_contacts=VALIDATED_CONTACTS, feedback_labels=FEEDBACK_LABELS if config.feedback else None)

    @dg.asset(
        op_tags=step_tags(config),
        check_specs=check_specs(LABELS.key(config), [positive_rate_plausible]),
        ins=reads.ins,
        **asset_kwargs(
            config, "labels", "labels",
            f"1 when `{config.label.positive}`; 0 when `{config.label.negative}`; otherwise unlabelled "
            "(still open: scored, never trained on)" + ("; a CRM outcome overrides the rule." if config.feedback else "."),
            {"duckdb"},
        ),
    )
    def labels(warehouse: Warehouse, validated_contacts: StagedTable, **feedback: StagedTable) -> dg.MaterializeResult:
        src = validated_contacts.sql
        with validated_contacts.connection() as conn:
            try:
                check_label_rule(conn, config, src)
            except LabelRuleError as err:
                raise dg.Failure(description=str(err)) from err
            fb = feedback["feedback_labels"].sql if feedback else None
            LABELS.write_select(conn, config, label_select_sql(config, src, fb))
            pos, neg, unl, from_crm = conn.execute(
                f"SELECT count(*) FILTER (label = 1), count(*) FILTER (label = 0), count(*) FILTER (label IS NULL), "
                f"count(*) FILTER (label_source = 'crm_feedback') FROM {LABELS.of(config)}"
            ).fetchall()[0]
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": pos + neg + unl,
                "positive": pos,
                "negative": neg,
                "unlabelled": unl,
                "labelled_by_crm_feedback": from_crm,
                "positive_rate": float(pos / max(pos + neg, 1)),
            },
            check_results=check_results(warehouse, LABELS.key(config), [positive_rate_plausible]),
        )

    return [labels]
