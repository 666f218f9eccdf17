"""data_profile and features: model inputs with personal data removed, plus the split."""


import dagster as dg

from leadscore_assets.assets.common import (
    asset_kwargs,
    column_schema,
    key,
    load_feature_set,
    preview,
    read_table,
    resolved_config,
    save_feature_set,
    table,
    table_exists,
    warehouse_connection,
    write_table,
)
from leadscore_assets.lib.config import ProjectConfig
from leadscore_assets.lib.features import FEEDBACK, LABEL, NEWEST_FEEDBACK, SPLIT, build_feature_frame
from leadscore_assets.lib.leakage import leaks, single_feature_separation
from leadscore_assets.lib.personal_data import detect_personal_columns
from leadscore_assets.lib.profiling import profile, profile_markdown
from leadscore_assets.resources.warehouse import Warehouse


def build(config: ProjectConfig) -> list:
    @dg.asset(
        deps=[key(config, "labels"), key(config, "validated_contacts")],
        **asset_kwargs(
            config, "features", "features",
            "One row per lead: readable model inputs (no personal data, no post-outcome columns), "
            "label and split (out-of-time when the source has a creation date).",
            {"pandas", "duckdb"},
        ),
    )
    def features(warehouse: Warehouse) -> dg.MaterializeResult:
        with warehouse_connection(warehouse, config) as conn:
            resolved = resolved_config(conn, config)
            validated = read_table(conn, table(config, "validated_contacts"))
            labels = read_table(conn, table(config, "labels"))
            newest = set()
            if config.feedback and table_exists(conn, table(config, "feedback_batches")):
                newest = {r[0] for r in conn.execute(f"""
                    SELECT lead_id FROM {table(config, 'labels')} WHERE feedback_hash = (
                        SELECT content_hash FROM {table(config, 'feedback_batches')}
                        ORDER BY received_at DESC NULLS LAST LIMIT 1)""").fetchall()}
            fed = set(labels.loc[labels.label_source == "crm_feedback", "lead_id"])
            frame, fs = build_feature_frame(validated, labels, resolved, newest, fed)
            write_table(conn, table(config, "features"), frame)
            save_feature_set(conn, config, fs)
        counts = frame[SPLIT].value_counts().to_dict()
        rates = frame.groupby(SPLIT)[LABEL].mean().dropna().round(4).to_dict()
        return dg.MaterializeResult(
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

    @dg.asset(
        deps=[key(config, "features")],
        **asset_kwargs(
            config, "data_profile", "features",
            "Missing shares, constant columns, cardinality, positive rate by category and correlated pairs.",
            {"pandas"},
        ),
    )
    def data_profile(warehouse: Warehouse) -> dg.MaterializeResult:
        with warehouse_connection(warehouse, config) as conn:
            frame = read_table(conn, table(config, "features"))
            fs = load_feature_set(conn, config)
        p = profile(frame, frame[LABEL], [*fs.categorical, *fs.target_encoded], fs.numeric)
        cols = p["columns"]
        return dg.MaterializeResult(
            metadata={
                "profile": dg.MetadataValue.md(profile_markdown(p)),
                "constant_columns": dg.MetadataValue.json(cols.loc[cols.constant, "column"].tolist()),
                "quasi_constant_columns": dg.MetadataValue.json(cols.loc[cols.quasi_constant, "column"].tolist()),
                "max_missing_share": float(cols.missing_share.max()) if len(cols) else 0.0,
            }
        )

    @dg.asset_check(asset=features, name="no_personal_data", blocking=True,
                    description="No personal-data or excluded (post-outcome) column reaches the features, and no "
                                "feature's values look like emails, phone numbers, URLs or people's names "
                                "(unless listed under features.not_personal).")
    def no_personal_data(warehouse: Warehouse) -> dg.AssetCheckResult:
        with warehouse_connection(warehouse, config) as conn:
            cols = [r[0] for r in conn.execute(f"DESCRIBE {table(config, 'features')}").fetchall()]
            fs = load_feature_set(conn, config)
            text = [c for c in (*fs.categorical, *fs.target_encoded, *fs.multi_hot) if c in resolved_config(conn, config).columns]
            sample = conn.execute(f"SELECT {', '.join(text) or '1'} FROM {table(config, 'validated_contacts')} "
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

    @dg.asset_check(asset=features, name="no_label_leakage", blocking=True,
                    description=f"No single feature separates the training labels with ROC-AUC above {limit} "
                                "(either way): such a column is almost always recorded after the outcome. "
                                "Accept a legitimate one under features.accept_leaky.")
    def no_label_leakage(warehouse: Warehouse) -> dg.AssetCheckResult:
        with warehouse_connection(warehouse, config) as conn:
            train = read_table(conn, table(config, "features"), f"WHERE {SPLIT} = 'train'")
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

    return [features, data_profile, no_personal_data, no_label_leakage]
