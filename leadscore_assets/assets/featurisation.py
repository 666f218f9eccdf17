"""data_profile and features: model inputs with personal data removed, plus the split."""


import dagster as dg
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from leadscore_assets.assets.common import (
    Check,
    check,
    check_results,
    check_specs,
    column_schema,
    config_with_columns,
    feature_set_of,
    load_feature_set,
    png_markdown,
    preview,
    read_modelling_rows,
    resolved_config,
    save_feature_set,
    select_in_batches,
    warehouse_connection,
    write_figures,
)
from leadscore_assets.assets.inputs import Reads, StagedTable
from leadscore_assets.assets.specs import asset_kwargs, step_tags
from leadscore_assets.assets.tables import (
    COLUMN_TYPES,
    FEATURE_SCHEMA,
    FEATURES,
    FEEDBACK_BATCHES,
    LABELS,
    VALIDATED_CONTACTS,
)
from leadscore_assets.lib.project.config import ProjectConfig
from leadscore_assets.lib.features.frame import (
    FEEDBACK,
    LABEL,
    NEWEST_FEEDBACK,
    SPLIT,
    FeatureSet,
    as_datetime,
    build_feature_frame,
    distinct_value_columns,
    feature_batch,
    label_columns,
    newest_date_columns,
    short_splits_of_counts,
    source_columns,
    split_minimums,
    whole_table_feature_set,
)
from leadscore_assets.lib.features.leakage import (
    categorical_separation,
    leaks,
    numeric_separation,
    single_feature_separation,
)
from leadscore_assets.lib.validation.personal_data import detect_personal_columns
from leadscore_assets.lib.features.profiling import profile, profile_figures, profile_markdown
from leadscore_assets.resources.mlflow_store import MlflowStore
from leadscore_assets.resources.storage import LeadscoreStorage
from leadscore_assets.resources.warehouse import Warehouse
from leadscore_assets.lib.project.sql_rules import identifier

# Up to this many validated leads the features are built as one frame; above it, batch by batch:
# the whole-table decisions (feature set, reference dates, label, split) first, then the rows of
# BATCH_ROWS leads at a time appended in the leads' order, so the step's memory does not grow
# with the table. Both give the same table. Module constants, so tests can force tiny batches.
BATCHED_ABOVE_ROWS = 500_000
BATCH_ROWS = 250_000


def build(config: ProjectConfig) -> list:
    reads = Reads(config, labels=LABELS, validated_contacts=VALIDATED_CONTACTS, column_types=COLUMN_TYPES,
                  feedback_batches=FEEDBACK_BATCHES if config.feedback else None)
    features_spec = dg.AssetSpec(deps=reads.deps, **asset_kwargs(
        config, FEATURES.name, "features",
        "One row per lead: readable model inputs (no personal data, no post-outcome columns), "
        "label and split (out-of-time when the source has a creation date).",
        {"pandas", "duckdb"}))

    checks = build_checks(config)

    @dg.multi_asset(op_tags=step_tags(config), specs=[features_spec, FEATURE_SCHEMA.spec(config, "features", {"duckdb"}, reads.deps)],
                    ins=reads.ins, check_specs=check_specs(FEATURES.key(config), checks), name=f"{config.name}_build_features")
    def features(warehouse: Warehouse, labels: StagedTable, validated_contacts: StagedTable, column_types: StagedTable,
                 **feedback: StagedTable):
        resolved = config_with_columns(config, column_types)
        with warehouse_connection(warehouse, config) as conn:
            batches = _existing(conn, feedback.get("feedback_batches"))
            built = write_features_in_batches(conn, resolved, validated_contacts.sql, labels.sql, batches) \
                if batched(conn, resolved, validated_contacts.sql, labels.sql) else None
            if built is not None:  # `frame`: every lead's label, split and feedback flags (what the figures count)
                fs, frame, head, schema = built
            else:
                frame, fs = whole_feature_frame(conn, resolved, validated_contacts.sql, labels.sql, batches)
                FEATURES.write(conn, config, frame)
                head, schema = frame, column_schema(frame)
            save_feature_set(conn, config, fs)
        counts = frame[SPLIT].value_counts().to_dict()
        rates = frame.groupby(SPLIT)[LABEL].mean().dropna().round(4).to_dict()
        yield dg.MaterializeResult(asset_key=FEATURE_SCHEMA.key(config), metadata={
            "dagster/row_count": len(fs.columns), "columns": dg.MetadataValue.md(fs.to_frame().to_markdown(index=False))})
        yield dg.MaterializeResult(
            asset_key=FEATURES.key(config),
            metadata={
                "dagster/row_count": len(frame),
                "dagster/column_schema": schema,
                "numeric_features": dg.MetadataValue.json(fs.numeric),
                "categorical_features": dg.MetadataValue.json(fs.categorical),
                "target_encoded_features": dg.MetadataValue.json(fs.target_encoded),
                "multi_hot_features": dg.MetadataValue.json(list(fs.multi_hot)),
                "split_rows": dg.MetadataValue.json({k: int(v) for k, v in counts.items()}),
                "split_positive_rate": dg.MetadataValue.json(rates),
                "split_kind": "out-of-time" if config.split.time_column else "stratified",
                "feedback_rows_trained_on": int((frame[FEEDBACK] & (frame[SPLIT] == "train")).sum()),
                "newest_feedback_held_out": int((frame[NEWEST_FEEDBACK] & (frame[SPLIT] == "test")).sum()),
                "preview": preview(head),
            }
        )
        del frame, head  # the checks read the written table
        yield from check_results(warehouse, FEATURES.key(config), checks)

    profile_reads = Reads(config, features=FEATURES, feature_schema=FEATURE_SCHEMA)

    @dg.asset(
        op_tags=step_tags(config),
        ins=profile_reads.ins,
        **asset_kwargs(
            config, "data_profile", "features",
            "Missing shares, constant columns, cardinality, positive rate by category and correlated pairs.",
            {"pandas", "mlflow"},
        ),
    )
    def data_profile(context: dg.AssetExecutionContext, mlflow_store: MlflowStore, storage: LeadscoreStorage,
                     features: StagedTable, feature_schema: StagedTable) -> dg.MaterializeResult:
        (frame, modelling_rows), fs = read_modelling_rows(features, config), feature_set_of(feature_schema)
        categorical = [*fs.categorical, *fs.target_encoded]
        p = profile(frame, frame[LABEL], categorical, fs.numeric)
        cols = p["columns"]
        figures = profile_figures(frame, frame[LABEL], categorical, fs.numeric)
        out = storage.report_dir(config.name, "profile", context.run_id)
        with mlflow_store.run(config.name, "data profile", role="data_profile") as run:
            pngs = write_figures(figures, out, mlflow_store, "profile")  # each figure rendered once
            (out / "profile.md").write_text(profile_markdown(p))
            mlflow_store.log_artifact(out / "profile.md", artifact_path="profile")
        pictures = png_markdown(pngs)
        for fig in figures.values():
            plt.close(fig)
        return dg.MaterializeResult(
            metadata={
                "modelling_rows": modelling_rows,
                "pictures_in_mlflow": dg.MetadataValue.url(mlflow_store.run_url(config.name, run.info.run_id, "profile")),
                "pictures": dg.MetadataValue.md(pictures or "_no features to picture_"),
                "profile": dg.MetadataValue.md(profile_markdown(p)),
                "constant_columns": dg.MetadataValue.json(cols.loc[cols.constant, "column"].tolist()),
                "quasi_constant_columns": dg.MetadataValue.json(cols.loc[cols.quasi_constant, "column"].tolist()),
                "max_missing_share": round(float(cols.missing_share.max()), 4) if len(cols) else 0.0,
            }
        )

    return [features, data_profile]


def whole_feature_frame(conn, config: ProjectConfig, validated_sql: str, labels_sql: str,
                        batches_sql: str | None) -> tuple[pd.DataFrame, FeatureSet]:
    """`build_feature_frame` over the whole validated table, reading only the columns it uses."""
    columns = ", ".join(map(identifier, source_columns(config)))
    validated = conn.execute(f"SELECT {columns} FROM {validated_sql}").df()
    labelled = conn.execute(f"SELECT lead_id, label, label_source FROM {labels_sql}").df()
    newest = newest_feedback_leads(conn, labels_sql, batches_sql)
    fed = set(labelled.loc[labelled.label_source == "crm_feedback", "lead_id"])
    return build_feature_frame(validated, labelled[["lead_id", "label"]], config, newest, fed)


def batched(conn, config: ProjectConfig, validated_sql: str, labels_sql: str) -> bool:
    """Whether the features are built batch by batch: more than BATCHED_ABOVE_ROWS validated leads,
    whose text ids join their labels in SQL as `build_feature_frame` joins them (its text of an id
    is the id itself), else in one frame."""
    rows = conn.execute(f"SELECT count(*) FROM {validated_sql}").fetchall()[0][0]
    if rows <= BATCHED_ABOVE_ROWS:
        return False
    types = {t for (t,) in conn.execute(
        f"SELECT typeof({identifier(config.id_column)}) FROM (SELECT * FROM {validated_sql} LIMIT 1) "
        f"UNION ALL SELECT typeof(lead_id) FROM (SELECT * FROM {labels_sql} LIMIT 1)").fetchall()}
    return types == {"VARCHAR"}


def write_features_in_batches(conn, config: ProjectConfig, validated_sql: str, labels_sql: str,
                              batches_sql: str | None) -> tuple[FeatureSet, pd.DataFrame, pd.DataFrame, dg.TableSchema] | None:
    """Write the features table BATCH_ROWS leads at a time, the same table `build_feature_frame`
    gives: whole-table decisions from SQL and single columns (levels -> feature set, newest dates ->
    `days_since` references, label join -> label, feedback flags and split), then each batch's rows.
    Returns the feature set, the label/split/feedback columns of every lead (what the metadata
    counts), the first rows (preview) and the column schema; None, having written nothing, when an
    id has more than one label row (the one-frame route's merge decides what that gives)."""
    fs = whole_table_feature_set(config, {
        c: conn.execute(f"SELECT DISTINCT {identifier(c)} FROM {validated_sql}").df().iloc[:, 0]
        for c in distinct_value_columns(config)})
    references = {c: newest_date(conn, validated_sql, c) for c in newest_date_columns(config)}
    in_newest = ("l.feedback_hash = (SELECT content_hash FROM " + batches_sql
              + " ORDER BY received_at DESC NULLS LAST LIMIT 1)") if batches_sql else "false"
    time_column = config.split.time_column
    time = f", {identifier(time_column)} AS time" if time_column else ""
    lowest, highest = conn.execute(f"SELECT min(rowid), max(rowid) FROM {validated_sql}").fetchall()[0]
    # each lead's label and feedback flags, joined BATCH_ROWS leads at a time (a join of the whole
    # table holds every id in DuckDB's hash table), in the table's order
    whole = pd.concat([conn.execute(f"""
        SELECT l.label::DOUBLE AS label, coalesce(l.label_source = 'crm_feedback', false) AS fed,
               coalesce({in_newest}, false) AS newest {", v.time" if time_column else ""}
        FROM (SELECT rowid AS position, {identifier(config.id_column)} AS id {time} FROM {validated_sql}
              WHERE rowid >= {start} AND rowid < {start + BATCH_ROWS}) v
        LEFT JOIN {labels_sql} l ON l.lead_id = v.id
        ORDER BY v.position""").df() for start in range(lowest, highest + 1, BATCH_ROWS)], ignore_index=True)
    if len(whole) != conn.execute(f"SELECT count(*) FROM {validated_sql}").fetchall()[0][0]:
        return None
    time = as_datetime(whole.pop("time")).to_numpy() if time_column else None
    label, newest, fed = (whole.pop(c).to_numpy() for c in ("label", "newest", "fed"))
    del whole
    labelled = label_columns(label, time, config, newest, fed)
    del label, newest, fed, time
    first: list[pd.DataFrame] = []

    def frames():
        start = 0
        sql = f"SELECT {', '.join(map(identifier, source_columns(config)))} FROM {validated_sql}"
        for part in select_in_batches(conn, sql, BATCH_ROWS):  # the leads in table order while `conn` writes
            if not len(part):
                continue
            end = start + len(part)
            out = feature_batch(part, config, fs, references, {k: v[start:end] for k, v in labelled.items()})
            if sum(map(len, first)) < 10:
                first.append(out.head(10))
            start = end
            yield out

    rows = FEATURES.write_batches(conn, config, frames())
    if rows != len(labelled[LABEL]):
        raise RuntimeError(f"features: {rows} rows written for {len(labelled[LABEL])} validated leads")
    head = pd.concat(first, ignore_index=True).head(10)
    return fs, pd.DataFrame(labelled), head, column_schema(first[0])


def newest_date(conn, validated_sql: str, column: str) -> pd.Timestamp:
    """`as_datetime(column).max()` of the whole table: DuckDB's max of a date or timestamp column,
    the column itself read when it holds anything else (text, whose max is not the newest date)."""
    kind = conn.execute(f"DESCRIBE SELECT {identifier(column)} FROM {validated_sql}").fetchall()[0][1]
    newest = kind.startswith(("TIMESTAMP", "DATE"))
    values = conn.execute(f"SELECT {'max(' if newest else ''}{identifier(column)}{')' if newest else ''} "
                          f"FROM {validated_sql}").df().iloc[:, 0]
    return as_datetime(values).max()


def train_separation(conn, config: ProjectConfig, fs: FeatureSet) -> pd.DataFrame:
    """`single_feature_separation` of the training rows of the features table, read one column at
    a time (the table may not fit in memory; each feature is judged on its own anyway)."""
    def train(column: str) -> pd.Series:
        return conn.execute(f"SELECT {identifier(column)} FROM {FEATURES.of(config)} WHERE {SPLIT} = 'train'").df().iloc[:, 0]

    y = train(LABEL).to_numpy().astype(int)
    if len(np.unique(y)) < 2:  # nothing to separate (the labels check reports this)
        return single_feature_separation(pd.DataFrame(index=range(len(y))), y, fs, config.split.seed)
    rows = [(c, "numeric", numeric_separation(train(c), y)) for c in fs.numeric]
    rows += [(c, "categorical", categorical_separation(train(c), y, config.split.seed))
             for c in [*fs.categorical, *fs.target_encoded, *fs.multi_hot]]
    out = pd.DataFrame(rows, columns=["feature", "encoding", "auc"])
    return out.sort_values("auc", ascending=False, kind="stable").reset_index(drop=True)


def newest_feedback_leads(conn, labels_sql: str, feedback_batches_sql: str | None) -> set[str]:
    """Leads labelled by the newest CRM feedback file (part of them is held out for the test split)."""
    if feedback_batches_sql is None:
        return set()
    return {r[0] for r in conn.execute(f"""
        SELECT lead_id FROM {labels_sql} WHERE feedback_hash = (
            SELECT content_hash FROM {feedback_batches_sql}
            ORDER BY received_at DESC NULLS LAST LIMIT 1)""").fetchall()}


def _existing(conn, table: StagedTable | None) -> str | None:
    """The SQL name of a staged table when it exists (the feedback batches before any file landed: not)."""
    if table is None:
        return None
    schema, name = table.sql.split(".")
    found = conn.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?",
                         [schema, name]).fetchall()[0][0]
    return table.sql if found else None


def build_checks(config: ProjectConfig) -> list[Check]:
    """Blocking checks on the features: every split has enough of both classes, no personal data
    and no single column that gives the label away."""

    minimums = split_minimums(config)

    @check("splits_have_both_classes", blocking=True,
           description="Train, validation and test each hold enough positives and negatives to be trained "
                       "on, judged and evaluated (each class at least: "
                       + ", ".join(f"{k} {v}" for k, v in minimums.items())
                       + "), checked before any model is trained: e.g. CRM feedback that labels every lead "
                       "leaves no held-out rows.")
    def splits_have_both_classes(warehouse: Warehouse) -> dg.AssetCheckResult:
        with warehouse_connection(warehouse, config) as conn:  # counted in SQL: the table may not fit in memory
            grouped = conn.execute(f"SELECT {SPLIT}, {LABEL}, count(*), count(*) FILTER ({FEEDBACK}) "
                                   f"FROM {FEATURES.of(config)} WHERE {LABEL} IS NOT NULL GROUP BY ALL").fetchall()
        counts: dict[tuple[str, int], int] = {}
        for split, label, n, _ in grouped:
            if label in (0, 1):
                counts[(split, int(label))] = counts.get((split, int(label)), 0) + n
        short = short_splits_of_counts(counts, minimums)
        table = {name: {"positives": counts.get((name, 1), 0), "negatives": counts.get((name, 0), 0)}
                 for name in minimums}
        fed = int(sum(f for *_, f in grouped))
        labelled = sum(n for _, _, n, _ in grouped)
        why = (f" {fed} of the {labelled} labelled leads are labelled by CRM feedback, which is trained on "
               "(only part of the newest batch is held out for test)." if fed else "")
        return dg.AssetCheckResult(
            passed=not short,
            description=None if not short else (
                "; ".join(short) + f": too few labelled leads for every split, so no model is trained.{why} "
                "Label more leads, or wait for more outcomes."),
            metadata={"labelled_by_split": dg.MetadataValue.json(table),
                      "needed_per_class": dg.MetadataValue.json(minimums),
                      "short": dg.MetadataValue.json(short)},
        )

    @check("no_personal_data", blocking=True,
           description="No personal-data or excluded (post-outcome) column reaches the features, and no "
                       "feature's values look like emails, phone numbers, URLs or people's names "
                       "(unless listed under features.not_personal).")
    def no_personal_data(warehouse: Warehouse) -> dg.AssetCheckResult:
        with warehouse_connection(warehouse, config) as conn:
            cols = [r[0] for r in conn.execute(f"DESCRIBE {FEATURES.of(config)}").fetchall()]
            fs = load_feature_set(conn, config)
            text = [c for c in (*fs.categorical, *fs.target_encoded, *fs.multi_hot) if c in resolved_config(conn, config).columns]
            sample = conn.execute(f"SELECT {', '.join(map(identifier, text)) or '1'} FROM {VALIDATED_CONTACTS.of(config)} "
                                  "USING SAMPLE reservoir(2000 ROWS) REPEATABLE (42)").df() if text else None
        leaked = sorted(set(cols) & {*config.personal_data, *config.features.exclude})
        detected = detect_personal_columns(sample, text, config.features.not_personal) if text else None
        looks = [] if detected is None else [f"'{c}' looks like {k} ({s:.0%} of values)"
                                             for c, k, s in zip(detected.column, detected.kind, detected.share)]
        problems = [f"'{c}' is declared personal or excluded" for c in leaked] + looks
        return dg.AssetCheckResult(
            passed=not problems,
            description=None if not problems else (
                "; ".join(problems) + ": add it to personal_data (or features.not_personal if it is not personal)"),
            metadata={"leaked_columns": dg.MetadataValue.json(leaked),
                      "looks_personal": dg.MetadataValue.json(looks)},
        )

    limit = config.features.max_single_feature_auc

    @check("no_label_leakage", blocking=True,
           description=f"No single feature separates the training labels with ROC-AUC above {limit} "
                       "(either way): such a column is almost always recorded after the outcome. "
                       "Accept a legitimate one under features.accept_leaky.")
    def no_label_leakage(warehouse: Warehouse) -> dg.AssetCheckResult:
        with warehouse_connection(warehouse, config) as conn:
            fs = load_feature_set(conn, config)
            separation = train_separation(conn, config, fs)
        leaked = leaks(separation, limit, config.features.accept_leaky, config.features.dates)
        named = ", ".join(f"'{f}' (AUC {a:.3f})" for f, a in zip(leaked.feature, leaked.auc))
        return dg.AssetCheckResult(
            passed=leaked.empty,
            description=None if leaked.empty else (
                f"{named} alone separate(s) the training labels above {limit}: recorded after the outcome? "
                "Exclude it under features.exclude, or accept it under features.accept_leaky"),
            metadata={
                "leaking_features": dg.MetadataValue.json(leaked.feature.tolist()),
                "max_single_feature_auc": float(separation.auc.max()) if len(separation) else 0.5,
                "single_feature_auc": dg.MetadataValue.md(separation.head(15).round(4).to_markdown(index=False)),
            },
        )

    return [splits_have_both_classes, no_personal_data, no_label_leakage]
