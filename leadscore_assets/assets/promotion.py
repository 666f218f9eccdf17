"""champion_model: register the challenger, judge it against the champion, move the aliases.

Both models are scored on the same held-out rows (the out-of-time test split, which holds the
leads labelled by the newest CRM feedback). Every decision is a row in `<project>.model_decisions`
and a tag on the MLflow model version. Aliases move only here, at the very end of a run, so a
retrain that fails earlier never touches the champion.
"""

import time
from datetime import datetime, timezone

import dagster as dg
import numpy as np
import pandas as pd

from leadscore_assets.assets.common import config_with_columns, feature_set_of, read_modelling_rows, warehouse_connection
from leadscore_assets.assets.inputs import Reads, StagedTable
from leadscore_assets.assets.specs import asset_kwargs, step_tags
from leadscore_assets.assets.tables import (
    COLUMN_TYPES,
    DRIFT_SUMMARY,
    EVALUATION_REPORT,
    FEATURES,
    FEATURE_SCHEMA,
    MODEL_DECISIONS,
    RAW_CONTACTS,
    REVENUE_MODEL,
    VALIDATED_CONTACTS,
)
from leadscore_assets.lib.project.config import ProjectConfig
from leadscore_assets.lib.evaluation.metrics import selection_score
from leadscore_assets.lib.monitoring.drift import REFERENCE_ARTIFACT, drift_reference
from leadscore_assets.lib.features.frame import ID, LABEL, SPLIT
from leadscore_assets.lib.evaluation.promotion import compare_on_held_out, decide, decision_row, roc_auc_intervals
from leadscore_assets.lib.scoring.registry import (
    CHAMPION,
    current_champion,
    load_version,
    missing_inputs,
    register_challenger,
)
from leadscore_assets.lib.scoring.serving import date_references, days_since_columns, raw_columns
from leadscore_assets.resources.mlflow_store import MlflowStore
from leadscore_assets.resources.warehouse import Warehouse


FIGURES = ("challenger_metric", "champion_metric", "metric_gain", "prediction_psi", "feature_drift_share",
           "champion_age_days")


def build(config: ProjectConfig) -> list:
    metric = config.models.selection_metric

    reads = Reads(config, after=("drift_reports",), evaluation_report=EVALUATION_REPORT, drift_summary=DRIFT_SUMMARY,
                  features=FEATURES, feature_schema=FEATURE_SCHEMA, column_types=COLUMN_TYPES, raw_contacts=RAW_CONTACTS,
                  validated_contacts=VALIDATED_CONTACTS,
                  revenue_model=REVENUE_MODEL if config.revenue else None)  # the served model carries the revenue stage
    champion_spec = dg.AssetSpec(deps=reads.deps, **asset_kwargs(
        config, "champion_model", "models",
        f"The challenger registered as '{config.registered_model_name}' (alias `challenger`): the served model, "
        "raw leads in, scores and reasons out. Promoted to `champion` only when it beats the champion on the "
        "same held-out rows and the drift guardrails allow it; the replaced champion keeps the alias `previous`.",
        {"mlflow"}))

    @dg.multi_asset(op_tags=step_tags(config), specs=[champion_spec, MODEL_DECISIONS.spec(config, "models", {"duckdb"}, reads.deps)],
                    ins=reads.ins, name=f"{config.name}_judge_challenger")
    def champion_model(context: dg.AssetExecutionContext, warehouse: Warehouse, mlflow_store: MlflowStore,
                       evaluation_report: StagedTable, drift_summary: StagedTable, features: StagedTable,
                       feature_schema: StagedTable, **served_from: StagedTable):
        client, name = mlflow_store.client, config.registered_model_name
        ev, drift = evaluation_report.read().iloc[0], drift_summary.read().set_index("kind")
        (frame, modelling_rows), fs = read_modelling_rows(features, config), feature_set_of(feature_schema)
        served = served_model_parts(config, **served_from)
        champion = current_champion(client, name)
        challenger_model = mlflow_store.load_model(ev.model_uri)
        # its scores on every row, once: the served model's deciles, the drift reference (train rows)
        # and the comparison (test rows) all read them (each had predicted its rows again)
        scores = challenger_model.predict_proba(frame[fs.columns])[:, 1] if len(frame) else np.zeros(0)
        version = register_served_challenger(context, mlflow_store, config, ev, frame, fs, scores, served)
        champion_model_ = load_version(name, CHAMPION, client) if champion is not None else None
        gone = missing_inputs(champion_model_, frame.columns) if champion_model_ is not None else None
        unusable = f"its input columns {gone} are no longer features" if gone else None
        comparison = compare_on_held_out(frame, fs, challenger_model, None if unusable else champion_model_,
                                         metric, config.models.seed, p_challenger=scores[(frame[SPLIT] == "test").to_numpy()])
        challenger_metric = selection_score(comparison.metrics["challenger"], metric)
        champion_metric = selection_score(comparison.metrics["champion"], metric) if "champion" in comparison.metrics else None
        decision = decide(
            config.promotion, challenger_metric, champion_metric,
            prediction_psi=float(drift.loc["scores", "psi"]) if champion is not None else None,
            feature_drift_share=float(drift.loc["features", "drift_share"]) if champion is not None else None,
            champion_age_days=None if champion_metric is None else
            (time.time() * 1000 - champion.creation_timestamp) / 86_400_000,
            champion_unusable=unusable,
            challenger_auc=max(float(ev.selection_roc_auc), comparison.metrics["challenger"]["roc_auc"]),
            held_out=comparison.held_out,
        )
        row = decision_row(decision, comparison, metric, decided_at=datetime.now(timezone.utc).replace(tzinfo=None),
                           dagster_run_id=context.run_id, challenger_version=version,
                           champion_version=None if champion is None else str(champion.version))
        with warehouse_connection(warehouse, config) as conn:
            MODEL_DECISIONS.append(conn, config, pd.DataFrame([row]).astype({k: "float64" for k in FIGURES}))
        record_decision(context, client, config, version, decision)
        now_champion = client.get_model_version(name, version) if decision.promote else champion
        yield dg.MaterializeResult(asset_key=MODEL_DECISIONS.key(config), metadata={
            "decision": row["decision"], "reason": decision.reason, "challenger_version": version})
        yield dg.MaterializeResult(asset_key=champion_spec.key, metadata={**champion_page(
            config, mlflow_store, ev, version, decision, comparison, now_champion), "modelling_rows": modelling_rows})

    return [champion_model]


def served_model_parts(config: ProjectConfig, column_types: StagedTable, raw_contacts: StagedTable,
                       validated_contacts: StagedTable, revenue_model: StagedTable | None = None) -> dict:
    """What the served model is built from besides the sklearn pipeline: the resolved config, raw
    column names, reference dates of `days_since` features, the revenue model (if any)."""
    resolved = config_with_columns(config, column_types)
    with raw_contacts.connection() as conn:
        raw_cols = raw_columns(conn.execute(f"DESCRIBE {raw_contacts.sql}").fetchall())
        newest = {c: conn.execute(f'SELECT max("{c}") FROM {validated_contacts.sql}').fetchall()[0][0]
                  for c in days_since_columns(resolved)}
    return {
        "config": resolved,
        "raw_cols": raw_cols,
        "references": date_references(resolved, newest),
        "revenue_uri": revenue_model.read().model_uri.iloc[0] if revenue_model is not None else None,
    }


def register_served_challenger(context, mlflow_store: MlflowStore, config: ProjectConfig, ev, frame: pd.DataFrame,
                               fs, scores: np.ndarray, served: dict) -> str:
    """Log the serving pyfunc around the evaluated sklearn pipeline (lib/scoring/serving.py) in a run of its
    own next to the evaluation run it wraps, with the drift reference, and register it as the
    challenger; returns its version. `scores`: the pipeline's P(positive) on `frame`'s rows."""
    is_train = (frame[SPLIT] == "train").to_numpy()
    train = frame[is_train]
    with mlflow_store.run(config.name, f"serving: {ev.candidate}", role="serving",
                          tags={"leadscore.evaluation_run_id": str(ev.run_id)}):
        serving_uri = mlflow_store.log_serving_model(
            config=served["config"], fs=fs, raw_cols=served["raw_cols"], sklearn_model_uri=ev.model_uri, frame=frame,
            threshold=float(f"{ev.threshold:.6f}"),  # as tagged below, as lead_scores reads it
            references=served["references"], revenue_model_uri=served["revenue_uri"], scores=scores)
        # what drift is judged against while this version is champion (monitoring.py)
        mlflow_store.log_frame(drift_reference(train, fs.columns, LABEL, scores[is_train], train[ID]), REFERENCE_ARTIFACT)
    return register_challenger(mlflow_store.client, config.registered_model_name, serving_uri, tags={
        "leadscore.project": config.name, "leadscore.candidate": str(ev.candidate),
        "leadscore.threshold": f"{ev.threshold:.6f}", "leadscore.threshold_policy": str(ev.threshold_policy),
        "leadscore.calibration": str(ev.calibration), "leadscore.run_id": str(ev.run_id),
        "dagster.run_id": context.run_id,
    })


def record_decision(context, client, config: ProjectConfig, version: str, decision) -> None:
    """The decision on the model version (tags) and on the run's page. The champion alias moves in
    `published`, at the end of a run that passed every check: a failure anywhere before leaves the
    champion (and the published tables) untouched."""
    verdict = "promoted" if decision.promote else "rejected"
    name = config.registered_model_name
    client.set_model_version_tag(name, version, "leadscore.decision", verdict)
    client.set_model_version_tag(name, version, "leadscore.decision_reason", decision.reason)
    context.log.info(f"challenger v{version} {verdict}: {decision.reason}")
    context.instance.add_run_tags(context.run_id, {  # the Runs list and run view show tags
        f"leadscore/{config.name}.decision": f"{verdict} v{version}",
        f"leadscore/{config.name}.decision_reason": decision.reason[:250]})


def champion_page(config: ProjectConfig, mlflow_store: MlflowStore, ev, version: str, decision, comparison,
                  now_champion) -> dict:
    """What the champion_model asset page shows: the decision and why, both models' figures on the
    held-out rows, links to the model version, run and experiment."""
    metric, name = config.models.selection_metric, config.registered_model_name
    table_md = pd.DataFrame(comparison.metrics).T[["roc_auc", "pr_auc", "brier", "log_loss"]].round(4).to_markdown()
    return {
        "decision": "promoted" if decision.promote else "rejected",
        "reason": decision.reason,
        "challenger_version": version,
        "champion_version_after_publish": str(now_champion.version) if now_champion is not None else "none",
        "model_uri": f"models:/{name}@champion",
        f"challenger_{metric}": round(float(decision.challenger_metric), 4),
        **({f"champion_{metric}": round(float(decision.champion_metric), 4)} if decision.champion_metric is not None
           else {}),
        "metric_gain": (round(float(decision.metric_gain), 4) if decision.metric_gain is not None
                        else dg.MetadataValue.null()),
        "mlflow_model_version": dg.MetadataValue.url(mlflow_store.model_version_url(name, version)),
        "mlflow_run": dg.MetadataValue.url(mlflow_store.run_url(config.name, str(ev.run_id))),
        "mlflow_experiment": dg.MetadataValue.url(mlflow_store.experiment_url(config.name)),
        "comparison_on_held_out_rows": dg.MetadataValue.md(table_md),
        **comparison.feedback_rows,
        **{k: v for k, v in roc_auc_intervals(comparison).items() if v is not None},
    }
