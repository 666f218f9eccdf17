"""data_profile and features: model inputs with personal data removed, plus the split."""


import dagster as dg
import matplotlib.pyplot as plt

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
    resolved_config,
    save_feature_set,
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
    build_feature_frame,
    short_splits,
    split_minimums,
)
from leadscore_assets.lib.features.leakage import leaks, single_feature_separation
from leadscore_assets.lib.validation.personal_data import detect_personal_columns
from leadscore_assets.lib.features.profiling import profile, profile_figures, profile_markdown
from leadscore_assets.resources.mlflow_store import MlflowStore
from leadscore_assets.resources.storage import LeadscoreStorage
from leadscore_assets.resources.warehouse import Warehouse
from leadscore_assets.lib.project.sql_rules import identifier


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
        validated, labelled = validated_contacts.read(), labels.read()
        newest = newest_feedback_leads(labels, feedback["feedback_batches"]) if feedback else set()
        fed = set(labelled.loc[labelled.label_source == "crm_feedback", "lead_id"])
        frame, fs = build_feature_frame(validated, labelled, resolved, newest, fed)
        with warehouse_connection(warehouse, config) as conn:
            FEATURES.write(conn, config, frame)
            save_feature_set(conn, config, fs)
        counts = frame[SPLIT].value_counts().to_dict()
        rates = frame.groupby(SPLIT)[LABEL].mean().dropna().round(4).to_dict()
        yield dg.MaterializeResult(asset_key=FEATURE_SCHEMA.key(config), metadata={
            "dagster/row_count": len(fs.columns), "columns": dg.MetadataValue.md(fs.to_frame().to_markdown(index=False))})
        yield dg.MaterializeResult(
            asset_key=FEATURES.key(config),
            metadata={
                "dagster/row_count": len(frame),
                "dagster/column_schema": column_schema(frame),
                "numeric_features": dg.MetadataValue.json(fs.numeric),
                "categorical_features": dg.MetadataValue.json(fs.categorical),
                "target_encoded_features": dg.MetadataValue.json(fs.target_encoded),
                "multi_hot_features": dg.MetadataValue.json(list(fs.multi_hot)),
                "split_rows": dg.MetadataValue.json({k: int(v) for k, v in counts.items()}),
                "split_positive_rate": dg.MetadataValue.json(rates),
                "split_kind": "out-of-time" if config.split.time_column else "stratified",
                "feedback_rows_trained_on": int((frame[FEEDBACK] & (frame[SPLIT] == "train")).sum()),
                "newest_feedback_held_out": int((frame[NEWEST_FEEDBACK] & (frame[SPLIT] == "test")).sum()),
                "preview": preview(frame),
            }
        )
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
        frame, fs = features.read(), feature_set_of(feature_schema)
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
                "pictures_in_mlflow": dg.MetadataValue.url(mlflow_store.run_url(config.name, run.info.run_id, "profile")),
                "pictures": dg.MetadataValue.md(pictures or "_no features to picture_"),
                "profile": dg.MetadataValue.md(profile_markdown(p)),
                "constant_columns": dg.MetadataValue.json(cols.loc[cols.constant, "column"].tolist()),
                "quasi_constant_columns": dg.MetadataValue.json(cols.loc[cols.quasi_constant, "column"].tolist()),
                "max_missing_share": round(float(cols.missing_share.max()), 4) if len(cols) else 0.0,
            }
        )

    return [features, data_profile]


def newest_feedback_leads(labels: StagedTable, feedback_batches: StagedTable) -> set[str]:
    """Leads labelled by the newest CRM feedback file (part of them is held out for the test split)."""
    if not feedback_batches.exists():
        return set()
    with labels.connection() as conn:
        return {r[0] for r in conn.execute(f"""
            SELECT lead_id FROM {labels.sql} WHERE feedback_hash = (
                SELECT content_hash FROM {feedback_batches.sql}
                ORDER BY received_at DESC NULLS LAST LIMIT 1)""").fetchall()}


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
        with warehouse_connection(warehouse, config) as conn:
            labelled = conn.execute(f"SELECT {SPLIT}, {LABEL}, {FEEDBACK} FROM {FEATURES.of(config)} "
                                    f"WHERE {LABEL} IS NOT NULL").df()
        short = short_splits(labelled[LABEL], labelled[SPLIT], minimums)
        table = {name: {"positives": int(((labelled[SPLIT] == name) & (labelled[LABEL] == 1)).sum()),
                        "negatives": int(((labelled[SPLIT] == name) & (labelled[LABEL] == 0)).sum())}
                 for name in minimums}
        fed = int(labelled[FEEDBACK].sum())
        why = (f" {fed} of the {len(labelled)} labelled leads are labelled by CRM feedback, which is trained on "
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
            train = FEATURES.read(conn, config, f"WHERE {SPLIT} = 'train'")
            fs = load_feature_set(conn, config)
        separation = single_feature_separation(train[fs.columns], train[LABEL].to_numpy(), fs, config.split.seed)
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
