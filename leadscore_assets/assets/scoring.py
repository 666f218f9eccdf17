"""lead_scores: every lead, labelled or not, scored by the current champion, with reasons.

Each lead gets its probability, decile, grade (A-D around the champion's threshold), a
contact / do-not-contact flag and its top three reasons raising and lowering the score, in
words a salesperson reads ("job_title = ceo raises the score").
"""

from datetime import datetime, timezone

import dagster as dg
import numpy as np
import pandas as pd

from leadscore_assets.assets.common import column_schema, load_feature_set, table_value, warehouse_connection
from leadscore_assets.assets.specs import asset_kwargs, key, step_tags
from leadscore_assets.assets.tables import (
    FEATURES,
    FEATURE_SCHEMA,
    LEAD_SCORES,
    MODEL_DECISIONS,
    REVENUE_MODEL,
    SCORE_HISTORY,
    VALIDATED_CONTACTS,
)
from leadscore_assets.assets.effectiveness import record_score_history
from leadscore_assets.lib.config import ProjectConfig
from leadscore_assets.lib.evaluation import deciles
from leadscore_assets.lib.explain import REASON_COLUMNS, explain, reasons
from leadscore_assets.lib.features import ID, SPLIT
from leadscore_assets.assets.publishing import decision_of_run
from leadscore_assets.lib.registry import (
    current_champion,
    load_serving_parts,
    load_version,
    uncalibrated,
)
from leadscore_assets.lib.serving import deciles_from_cut_points
from leadscore_assets.lib.call_list import call_list, published_call_list, top_of_call_list, write_call_list
from leadscore_assets.lib.thresholds import grades
from leadscore_assets.resources.mlflow_store import MlflowStore
from leadscore_assets.resources.storage import LeadscoreStorage
from leadscore_assets.resources.warehouse import Warehouse

def build(config: ProjectConfig) -> list:
    scores_spec = dg.AssetSpec(
        deps=[key(config, "champion_model"), MODEL_DECISIONS.key(config), FEATURES.key(config), FEATURE_SCHEMA.key(config),
              VALIDATED_CONTACTS.key(config), *([REVENUE_MODEL.key(config)] if config.revenue else [])],
        **asset_kwargs(
            config, "lead_scores", "scoring",
            f"Probability, decile, grade A-D, contact flag and top reasons for every lead, from "
            f"`models:/{config.registered_model_name}@champion`.",
            {"mlflow", "shap", "duckdb"},
        ),
    )

    # the op keeps the name it had as a single asset (step keys unchanged); score_history is
    # appended in the same step, so a run that scores always records what it scored
    @dg.multi_asset(op_tags=step_tags(config), name=f"{config.name}__lead_scores",
                    specs=[scores_spec, SCORE_HISTORY.spec(config, "scoring", {"duckdb"}, [LEAD_SCORES.key(config)])])
    def lead_scores(context: dg.AssetExecutionContext, warehouse: Warehouse, mlflow_store: MlflowStore,
                    storage: LeadscoreStorage):
        name = config.registered_model_name
        with warehouse_connection(warehouse, config) as conn:
            decided = decision_of_run(conn, config, context.run_id)
        if decided:  # this run judged a challenger: score with the model `published` will make champion
            version = current_champion(mlflow_store.client, name) if decided[0] != "promoted" else \
                mlflow_store.client.get_model_version(name, decided[1])
        else:
            version = current_champion(mlflow_store.client, name)
        if version is None:
            raise dg.Failure(description=(
                f"no champion for {name}: no model has been promoted yet (see {MODEL_DECISIONS.of(config)} "
                "for why the challenger was rejected); scores are left as they were"))
        threshold = float(version.tags.get("leadscore.threshold", 0.5))
        served = load_serving_parts(name, str(version.version))  # None: a version from before serving models
        model = served["model"] if served else load_version(name, str(version.version))
        with warehouse_connection(warehouse, config) as conn:
            frame = FEATURES.read(conn, config)
            validated = VALIDATED_CONTACTS.read(conn, config)  # the call list's context columns
            fs = load_feature_set(conn, config)
        x = frame[fs.columns]
        p = model.predict_proba(x)[:, 1]
        # the served model's background (the same seeded sample of its training rows, encoded), so reasons agree
        background = served["background"] if served else x[frame[SPLIT] == "train"]
        chunk, seed = config.models.explain_max_rows, config.models.seed
        parts = [reasons(explain(uncalibrated(model), x.iloc[i:i + chunk], fs.columns, background=background, seed=seed),
                         x.iloc[i:i + chunk])
                 for i in range(0, len(x), chunk)]
        why = pd.concat(parts) if parts else pd.DataFrame(columns=[*REASON_COLUMNS, "reasons_up", "reasons_down"])
        scores = pd.DataFrame({
            ID: frame[ID].astype(str),
            "probability": p,
            # the champion's cut points on all leads when it was built: the served model's deciles
            "decile": deciles_from_cut_points(p, served["cut_points"]) if served else deciles(p),
            "grade": grades(p, threshold),
            "contact": p >= threshold,
            "threshold": threshold,
        })
        if config.revenue:
            # the revenue stage the scoring version carries (what it serves), else this run's
            revenue = served.get("revenue_model") if served else None
            if revenue is None:
                with warehouse_connection(warehouse, config) as conn:
                    uri = conn.execute(f"SELECT model_uri FROM {REVENUE_MODEL.of(config)}").fetchall()[0][0]
                revenue = mlflow_store.load_model(uri)
            scores["expected_order_value"] = revenue.predict(x)
            scores["expected_revenue"] = scores.probability * scores.expected_order_value
        scores = pd.concat([scores, why.reindex(scores.index)[[*REASON_COLUMNS, "reasons_up", "reasons_down"]]], axis=1)
        scores["model_name"] = name
        scores["model_version"] = str(version.version)
        scores["scored_at"] = datetime.now(timezone.utc).replace(tzinfo=None)
        scores = scores.sort_values("probability", ascending=False, kind="stable")
        with warehouse_connection(warehouse, config) as conn:
            LEAD_SCORES.write(conn, config, scores)
            history = record_score_history(conn, config, scores, context.run_id)
        calls = call_list(scores, validated, config)
        files = write_call_list(calls, storage.report_dir(config.name, "call_list"), context.run_id)
        by_grade = scores.groupby("grade").probability.agg(["size", "min", "max"]).round(4).reset_index()
        yield dg.MaterializeResult(
            asset_key=LEAD_SCORES.key(config),
            metadata={
                # first on the page: who to call, as a table
                f"top_{config.call_list.top}_leads": table_value(top_of_call_list(calls, config.call_list.top)),
                "dagster/row_count": len(scores),
                "dagster/column_schema": column_schema(scores),
                "model_version": str(version.version),
                "threshold": round(threshold, 4),
                "contacted": int(scores.contact.sum()),
                "mean_probability": round(float(np.mean(p)), 4),
                **({"expected_revenue_total": round(float(scores.expected_revenue.sum()), 2)} if config.revenue else {}),
                "by_grade": dg.MetadataValue.md(by_grade.to_markdown(index=False)),
                # the whole ranked list for the sales team, where `published` puts this run's list
                # (this run's own copies are renamed there, so their names would not exist after it)
                **{f"call_list_{kind}": dg.MetadataValue.path(str(path))
                   for kind, path in published_call_list(files).items()},
            }
        )
        yield dg.MaterializeResult(asset_key=SCORE_HISTORY.key(config), metadata={
            "dagster/row_count": history["rows"], "appended": history["appended"], "pruned": history["pruned"]})

    return [lead_scores]
