"""validated_contacts + quarantined_contacts, and the blocking checks that guard them."""


import json

import dagster as dg
import pandas as pd

from leadscore_assets.assets.common import (
    Check,
    asset_kwargs,
    check,
    check_results,
    check_specs,
    column_schema,
    preview,
    resolved_config,
    save_resolved_columns,
    step_tags,
    warehouse_connection,
)
from leadscore_assets.assets.tables import (
    COLUMN_TYPES,
    QUARANTINED_CONTACTS,
    RAW_CONTACTS,
    VALIDATED_CONTACTS,
)
from leadscore_assets.lib.column_typing import infer_columns, with_columns
from leadscore_assets.lib.config import ProjectConfig
from leadscore_assets.lib.validation import COLLAPSED, REASON, ROW, validate
from leadscore_assets.resources.storage import LeadscoreStorage
from leadscore_assets.resources.warehouse import Warehouse
from leadscore_assets.lib.sql_rules import identifier


def build(config: ProjectConfig) -> list:
    raw_key = RAW_CONTACTS.key(config)
    valid_key = VALIDATED_CONTACTS.key(config)
    valid_spec = dg.AssetSpec(
        deps=[raw_key],
        **asset_kwargs(
            config, "validated_contacts", "validated",
            "Typed, normalised contacts that pass every pandera rule of the project config.",
            {"pandera", "duckdb"},
        ),
    )
    quarantine_spec = dg.AssetSpec(
        deps=[raw_key],
        **asset_kwargs(
            config, "quarantined_contacts", "validated",
            "Raw rows that failed validation, verbatim, each with the reason (file, row, column, rule).",
            {"pandera", "duckdb"},
        ),
    )

    types_spec = COLUMN_TYPES.spec(config, "validated", {"duckdb"}, deps=[raw_key])

    checks = build_checks(config)

    @dg.multi_asset(op_tags=step_tags(config), specs=[valid_spec, quarantine_spec, types_spec],
                    check_specs=check_specs(valid_key, checks), name=f"{config.name}_validate_contacts")
    def validate_contacts(context: dg.AssetExecutionContext, warehouse: Warehouse, storage: LeadscoreStorage):
        with warehouse_connection(warehouse, config) as conn:
            raw = RAW_CONTACTS.read(conn, config)
            try:
                resolved = config if config.columns else with_columns(config, infer_columns(raw, config))
                result = validate(raw, resolved)
            except ValueError as err:
                raise dg.Failure(description=str(err)) from err
            save_resolved_columns(conn, resolved)
            VALIDATED_CONTACTS.write(conn, config, result.valid)
            QUARANTINED_CONTACTS.write(conn, config, result.quarantined)
        for err in result.table_errors:
            context.log.error(err)
        reasons = result.failure_counts
        results_path = storage.report_dir(config.name, "validation") / "validation_results.json"
        results_path.write_text(json.dumps({
            "project": config.name, "raw_rows": len(raw), "valid_rows": len(result.valid),
            "quarantined_rows": len(result.quarantined), "table_errors": result.table_errors,
            "failures_by_rule": reasons,
            "columns": {c: s.type for c, s in resolved.columns.items()},
        }, indent=2))
        yield dg.MaterializeResult(asset_key=COLUMN_TYPES.key(config), metadata={
            "columns": dg.MetadataValue.md(pd.DataFrame(
                [{"column": c, "type": spec.type, "declared": bool(config.columns)} for c, spec in resolved.columns.items()]
            ).to_markdown(index=False)),
        })
        yield dg.MaterializeResult(
            asset_key=valid_key,
            metadata={
                "dagster/row_count": len(result.valid),
                "dagster/column_schema": column_schema(result.valid),
                "raw_rows": len(raw),
                "preview": preview(result.valid, hide=config.personal_data),
            },
        )
        yield dg.MaterializeResult(
            asset_key=QUARANTINED_CONTACTS.key(config),
            metadata={
                "dagster/row_count": len(result.quarantined),
                "quarantine_share": float(len(result.quarantined) / max(len(raw), 1)),
                "exact_duplicates_collapsed": int(result.quarantined[COLLAPSED].sum()),
                "table_errors": dg.MetadataValue.json(result.table_errors),
                "failures_by_rule": dg.MetadataValue.json(reasons),
                "validation_results": dg.MetadataValue.path(str(results_path)),
                "reasons": preview(result.quarantined[[ROW, REASON]], rows=20),
            },
        )
        yield from check_results(warehouse, valid_key, checks)

    return [validate_contacts]


def build_checks(config: ProjectConfig) -> list[Check]:
    """Blocking checks: a failed one stops labels, features, models and scores downstream."""
    valid_key = VALIDATED_CONTACTS.key(config)
    valid_t, raw_t, quar_t = (t.of(config) for t in (VALIDATED_CONTACTS, RAW_CONTACTS, QUARANTINED_CONTACTS))

    @check("schema_matches_config", blocking=True,
           description="Every configured column is present in the source and the validated table.")
    def schema_matches_config(warehouse: Warehouse) -> dg.AssetCheckResult:
        with warehouse_connection(warehouse, config) as conn:
            declared = resolved_config(conn, config).columns
            cols = [r[0] for r in conn.execute(f"DESCRIBE {valid_t}").fetchall()]
            errors = conn.execute(
                f"SELECT DISTINCT {REASON}::VARCHAR FROM {quar_t} WHERE {REASON}::VARCHAR LIKE '%required column%' LIMIT 5"
            ).fetchall()
        missing = [c for c in declared if c not in cols]
        # each reason starts "<file> row <n>: "; the table-level problem after it is the same for every row
        problems = sorted({e[0].split(";")[0].split(": ", 1)[-1] for e in errors})
        return dg.AssetCheckResult(
            passed=not missing and not problems,
            metadata={"missing_columns": dg.MetadataValue.json(missing), "errors": dg.MetadataValue.json(problems)},
            description="; ".join(problems) or None,
        )

    @check("ids_unique", blocking=True,
           description=f"'{config.id_column}' is non-null and unique in the validated table.")
    def ids_unique(warehouse: Warehouse) -> dg.AssetCheckResult:
        with warehouse_connection(warehouse, config) as conn:
            total, distinct, nulls = conn.execute(
                f"SELECT count(*), count(DISTINCT {identifier(config.id_column)}), count(*) - count({identifier(config.id_column)}) FROM {valid_t}"
            ).fetchall()[0]
        return dg.AssetCheckResult(
            passed=total == distinct and nulls == 0,
            metadata={"rows": total, "distinct_ids": distinct, "null_ids": nulls},
        )

    @check("rows_accounted_for", blocking=True,
           description="Every raw row is in exactly one of validated and quarantined.")
    def rows_accounted_for(warehouse: Warehouse) -> dg.AssetCheckResult:
        with warehouse_connection(warehouse, config) as conn:
            raw, valid, quar, lost, twice = conn.execute(f"""
                WITH seen AS (SELECT {ROW} FROM {valid_t} UNION ALL SELECT {ROW} FROM {quar_t}),
                     counts AS (SELECT r.{ROW}, count(s.{ROW}) AS n FROM {raw_t} r LEFT JOIN seen s USING ({ROW}) GROUP BY 1)
                SELECT (SELECT count(*) FROM {raw_t}), (SELECT count(*) FROM {valid_t}), (SELECT count(*) FROM {quar_t}),
                       count(*) FILTER (WHERE n = 0), count(*) FILTER (WHERE n > 1) FROM counts
            """).fetchall()[0]
        return dg.AssetCheckResult(
            passed=lost == 0 and twice == 0 and raw == valid + quar,
            metadata={"raw": raw, "validated": valid, "quarantined": quar, "lost": lost, "counted_twice": twice},
        )

    @check("quarantine_within_limits", blocking=True,
           description="Enough valid rows, and a quarantined share under the configured maximum.")
    def quarantine_within_limits(warehouse: Warehouse) -> dg.AssetCheckResult:
        with warehouse_connection(warehouse, config) as conn:
            valid, quar, collapsed = conn.execute(
                f"SELECT (SELECT count(*) FROM {valid_t}), (SELECT count(*) FROM {quar_t}), "
                f"(SELECT count(*) FILTER ({COLLAPSED}) FROM {quar_t})"
            ).fetchall()[0]
        quar -= collapsed  # exact copies of kept rows are not bad data
        share = quar / max(valid + quar, 1)
        limits = config.validation
        passed = valid >= limits.min_rows and share <= limits.max_quarantine_share
        return dg.AssetCheckResult(
            passed=passed,
            metadata={"valid_rows": valid, "quarantine_share": float(share), "exact_duplicates_collapsed": collapsed,
                      "max_quarantine_share": limits.max_quarantine_share, "min_rows": limits.min_rows},
            description=None if passed else (
                f"{valid} valid rows (min {limits.min_rows}), quarantine share {share:.1%} "
                f"(max {limits.max_quarantine_share:.0%}): see {quar_t} for the reasons"
            ),
        )

    return [schema_matches_config, ids_unique, rows_accounted_for, quarantine_within_limits]
