"""validated_contacts + quarantined_contacts, and the blocking checks that guard them (the table
written by validated_tables.validate_table)."""

import json

import dagster as dg
import pandas as pd

from leadscore_assets.assets.common import (
    Check,
    check,
    check_results,
    check_specs,
    column_schema,
    preview,
    resolved_config,
    save_resolved_columns,
    warehouse_connection,
)
from leadscore_assets.assets.inputs import Reads, StagedTable
from leadscore_assets.assets.specs import asset_kwargs, step_tags
from leadscore_assets.assets.validated_tables import REASON_ROWS, Validated, validate_table
from leadscore_assets.assets.tables import (
    COLUMN_TYPES,
    QUARANTINED_CONTACTS,
    RAW_CONTACTS,
    VALIDATED_CONTACTS,
)
from leadscore_assets.lib.project.config import ProjectConfig
from leadscore_assets.lib.validation.personal_data import (
    VALUE_KIND_WORDS,
    contains_personal_data,
    is_text_column,
    personal_name_kind,
    scan_values,
    share_text,
)
from leadscore_assets.lib.validation import (
    COLLAPSED, FILE, LINEAGE, REASON, ROW, lead_part,
)
from leadscore_assets.resources.storage import LeadscoreStorage
from leadscore_assets.resources.warehouse import Warehouse
from leadscore_assets.lib.project.sql_rules import identifier


def build(config: ProjectConfig) -> list:
    reads = Reads(config, raw_contacts=RAW_CONTACTS)
    valid_key = VALIDATED_CONTACTS.key(config)
    valid_spec = dg.AssetSpec(
        deps=reads.deps,
        **asset_kwargs(
            config, "validated_contacts", "validated",
            "Typed, normalised contacts that pass every pandera rule of the project config.",
            {"pandera", "duckdb"},
        ),
    )
    quarantine_spec = dg.AssetSpec(
        deps=reads.deps,
        **asset_kwargs(
            config, "quarantined_contacts", "validated",
            "Raw rows that failed validation, verbatim, each with the reason (file, row, column, rule).",
            {"pandera", "duckdb"},
        ),
    )

    types_spec = COLUMN_TYPES.spec(config, "validated", {"duckdb"}, deps=reads.deps)

    checks = build_checks(config)

    @dg.multi_asset(op_tags=step_tags(config), specs=[valid_spec, quarantine_spec, types_spec],
                    ins=reads.ins, check_specs=check_specs(valid_key, checks), name=f"{config.name}_validate_contacts")
    def validate_contacts(context: dg.AssetExecutionContext, warehouse: Warehouse, storage: LeadscoreStorage,
                          raw_contacts: StagedTable):
        with warehouse_connection(warehouse, config) as conn:
            try:
                outcome = validate_table(conn, config, raw_contacts.sql)
            except ValueError as err:
                raise dg.Failure(description=str(err)) from err
            resolved = outcome.resolved
            save_resolved_columns(conn, resolved)
        if outcome.partitions > 1:
            context.log.info(f"{outcome.raw_rows} raw rows validated in {outcome.partitions} partitions by id")
        for err in outcome.table_errors:
            context.log.error(err)
        for warning in personal_name_warnings(outcome.personal_values, resolved):
            context.log.warning(warning)
        results_path = write_validation_results(storage, config, resolved, outcome)
        yield dg.MaterializeResult(asset_key=COLUMN_TYPES.key(config), metadata=column_types_page(config, resolved))
        yield dg.MaterializeResult(asset_key=valid_key, metadata={
            "dagster/row_count": outcome.valid_rows, "dagster/column_schema": column_schema(outcome.valid_head),
            "raw_rows": outcome.raw_rows, "preview": preview(outcome.valid_head, hide=config.personal_data)})
        yield dg.MaterializeResult(asset_key=QUARANTINED_CONTACTS.key(config),
                                   metadata=quarantine_page(outcome, results_path))
        yield from check_results(warehouse, valid_key, checks)

    return [validate_contacts]


def write_validation_results(storage: LeadscoreStorage, config: ProjectConfig, resolved: ProjectConfig,
                             outcome: Validated):
    """validation_results.json in the project's reports: counts, table errors, failures by rule, column types."""
    path = storage.report_dir(config.name, "validation") / "validation_results.json"
    path.write_text(json.dumps({
        "project": config.name, "raw_rows": outcome.raw_rows, "valid_rows": outcome.valid_rows,
        "quarantined_rows": outcome.quarantined_rows, "table_errors": outcome.table_errors,
        "failures_by_rule": outcome.failure_counts,
        "columns": {c: s.type for c, s in resolved.columns.items()},
    }, indent=2))
    return path


def column_types_page(config: ProjectConfig, resolved: ProjectConfig) -> dict:
    return {"columns": dg.MetadataValue.md(pd.DataFrame(
        [{"column": c, "type": spec.type, "declared": bool(config.columns)} for c, spec in resolved.columns.items()]
    ).to_markdown(index=False))}


def quarantine_page(outcome: Validated, results_path) -> dict:
    """What the quarantined_contacts page shows: how many, why (by rule and row), the results file."""
    return {
        "dagster/row_count": outcome.quarantined_rows,
        "quarantine_share": float(outcome.quarantined_rows / max(outcome.raw_rows, 1)),
        "exact_duplicates_collapsed": outcome.collapsed,
        "table_errors": dg.MetadataValue.json(outcome.table_errors),
        "failures_by_rule": dg.MetadataValue.json(outcome.failure_counts),
        "validation_results": dg.MetadataValue.path(str(results_path)),
        "reasons": preview(outcome.reasons_head, rows=REASON_ROWS),
    }


def build_checks(config: ProjectConfig) -> list[Check]:
    """Blocking checks: a failed one stops labels, features, models and scores downstream."""
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

    @check("no_undeclared_personal_data", blocking=True,
           description="No email address, phone number or profile URL in any value of a text column not declared "
                       "under personal_data (one value is enough): every such column can reach the features, the "
                       "call list, reports, MLflow artifacts and the event log. Names the column, what it holds and "
                       "its share, with example rows, never a value.")
    def no_undeclared_personal_data(warehouse: Warehouse) -> dg.AssetCheckResult:
        with warehouse_connection(warehouse, config) as conn:
            described = {r[0]: r[1] for r in conn.execute(f"DESCRIBE {valid_t}").fetchall()}
            text = outgoing_columns([c for c, kind in described.items() if kind == "VARCHAR"], config)
            read = [c for c in dict.fromkeys([ROW, FILE, config.id_column, *text]) if c in described]
            valid = conn.execute(f"SELECT {', '.join(map(identifier, read))} FROM {valid_t}").df()
            headers = [r[0] for r in conn.execute(f"DESCRIBE {raw_t}").fetchall()]
        problems, findings, scanned = personal_data_findings(valid, config, headers)
        return dg.AssetCheckResult(
            passed=not problems,
            description=None if not problems else "; ".join(problems) + ". " + personal_data_advice(findings, config),
            metadata={"scanned_columns": dg.MetadataValue.json(scanned),
                      "findings": dg.MetadataValue.json(findings)},
        )

    @check("personal_column_names_declared",
           description="No column named like personal data (first_name, surname, email, phone, address, dob, ...) "
                       "goes undeclared: a warning naming it, to be listed under personal_data (or "
                       "features.not_personal when it is not personal). Advisory: names alone are ambiguous.")
    def personal_column_names_declared(warehouse: Warehouse) -> dg.AssetCheckResult:
        with warehouse_connection(warehouse, config) as conn:
            resolved = resolved_config(conn, config)
            cols = [r[0] for r in conn.execute(f"DESCRIBE {valid_t}").fetchall()]
            named = [c for c in outgoing_columns(cols, config) if personal_name_kind(c)]
            valid = conn.execute(f"SELECT {', '.join(map(identifier, named))} FROM {valid_t}").df() if named \
                else pd.DataFrame()
        warnings = personal_name_warnings(valid, resolved)
        return dg.AssetCheckResult(
            passed=not warnings, severity=dg.AssetCheckSeverity.WARN,
            description="; ".join(warnings) or None,
            metadata={"named_like_personal_data": dg.MetadataValue.json(personal_named_columns(valid, resolved))},
        )

    return [schema_matches_config, ids_unique, rows_accounted_for, quarantine_within_limits,
            no_undeclared_personal_data, personal_column_names_declared]


# -- personal data not declared: found in the values, or said by a column's name ------------------


def outgoing_columns(columns: list[str], config: ProjectConfig) -> list[str]:
    """The validated columns that may leave the pipeline (features, call list, reports, MLflow,
    metadata): every one but the lineage, the declared personal data (dropped from features, kept
    out of the call list and previews) and the columns the project lists as not personal."""
    skip = {c.casefold() for c in (*config.personal_data, *config.features.not_personal)}
    return [c for c in columns if c not in LINEAGE and c.casefold() not in skip]


def _column_named(column: str, config: ProjectConfig, headers: dict[str, str]) -> str:
    """'company_name' as the YAML writes it, with the file's own header when that differs."""
    named = config.written(column)
    header = headers.get(column)
    shown = header and header != column and f"'{header}'" not in named and not contains_personal_data(header)
    return named + (f" ({header!r} in the file)" if shown else "")


def personal_data_findings(valid: pd.DataFrame, config: ProjectConfig,
                           headers: list[str] = ()) -> tuple[list[str], list[dict], list[str]]:
    """(problems, findings, scanned columns) for the validated rows: every value of every outgoing
    text column scanned (lib/personal_data.scan_values). A problem names the column, what it holds,
    the share and up to three example rows (file, row number and, when it may be quoted, the lead
    id), never a value."""
    try:
        by_canonical = {canon: raw for raw, canon in config.naming.columns(
            [h for h in headers if h not in LINEAGE]).items()}
    except ValueError:
        by_canonical = {}
    scanned = [c for c in outgoing_columns(list(valid.columns), config) if is_text_column(valid[c])]
    hits = scan_values(valid, scanned)
    id_col = config.id_column
    quote_ids = id_col in valid.columns and id_col not in config.personal_data and id_col not in set(hits.column)
    problems, findings = [], []
    for hit in hits.itertuples(index=False):
        examples = []
        for p in hit.examples:
            row = valid.iloc[p]
            where = f"{row[FILE]} row {row[ROW]}" if FILE in valid.columns and ROW in valid.columns else f"row {p + 1}"
            examples.append(where + (lead_part(row[id_col]) if quote_ids else ""))
        share = share_text(hit.hits, hit.values)
        problems.append(f"{_column_named(hit.column, config, by_canonical)} holds {VALUE_KIND_WORDS[hit.kind]} in "
                        f"{share}, e.g. {', '.join(examples)}")
        findings.append({"column": hit.column, "kind": hit.kind, "hits": hit.hits, "values": hit.values,
                         "share": hit.share, "examples": examples})
    return problems, findings, scanned


def personal_data_advice(findings: list[dict], config: ProjectConfig) -> str:
    """The way out, in YAML: declare the columns personal (dropped), or fix the source rows."""
    columns = list(dict.fromkeys(f["column"] for f in findings))
    listed = [c for c in columns if c in config.call_list.columns]
    names = ", ".join(columns)
    advice = (f"Personal data would reach the features, the call list, reports, MLflow and the event log: add "
              f"{names} to `personal_data:` in defs.yaml (dropped from the features, kept out of the call list")
    advice += f"; take {', '.join(listed)} out of `call_list.columns` too)" if listed else ")"
    if config.id_column in columns:
        advice += (f"; the id column {config.id_column} stays the call list's key when declared personal, but is "
                   "never quoted in reasons or logs")
    return advice + (", or correct those rows in the source. A column whose values are not personal data goes "
                     "under `features.not_personal:`.")


def personal_named_columns(valid: pd.DataFrame, config: ProjectConfig) -> dict[str, str]:
    """Outgoing columns whose name says personal data (first_name, surname, email, dob, ...), with
    what, unless they hold two values at most: a yes/no `email` (AER ResumeNames: did the resume
    give one) is a flag, not a contact detail."""
    return {c: kind for c in outgoing_columns(list(valid.columns), config)
            if (kind := personal_name_kind(c)) and valid[c].nunique(dropna=True) > 2}


def personal_name_warnings(valid: pd.DataFrame, config: ProjectConfig) -> list[str]:
    """One warning per outgoing column named like personal data, saying where it goes."""
    features = set(config.feature_columns()) if config.columns else set()
    out = []
    for col, kind in personal_named_columns(valid, config).items():
        goes = [w for w, yes in (("a model input", col in features), ("in the call list", col in config.call_list.columns),
                                 ("the lead id", col == config.id_column)) if yes]
        where = " and ".join(goes) if goes else "kept in the validated table"
        out.append(f"{config.written(col)} is named like personal data ({kind}) but not declared personal ({where}): "
                   "add it to `personal_data:` in defs.yaml if it holds personal data, or to "
                   "`features.not_personal:` if it does not")
    return out
