"""drift_reports: Evidently reports comparing the champion's training data with new leads.

Reference = the rows the current champion was trained on (with its scores), logged with its
model version in MLflow (so no table written by a later asset is read here: no back-edge);
before the first promotion, the training split scored by the challenger.
Current = every lead the reference does not contain. Feature, score (PSI) and label drift
feed the promotion gate; each report is an HTML file under data/reports, logged to MLflow.
"""

import dagster as dg
import pandas as pd

from leadscore_assets.assets.common import check, check_results, check_specs, load_feature_set, warehouse_connection
from leadscore_assets.assets.specs import asset_kwargs, step_tags
from leadscore_assets.assets.tables import (
    DRIFT_SUMMARY,
    EVALUATION_REPORT,
    FEATURE_SCHEMA,
    FEATURES,
)
from leadscore_assets.lib.config import ProjectConfig
from leadscore_assets.lib.drift import (
    REFERENCE_ARTIFACT,
    drift_reference,
    feature_drift,
    label_drift,
    not_in_reference,
    score_drift,
)
from leadscore_assets.lib.features import ID, LABEL, SPLIT
from leadscore_assets.lib.registry import CHAMPION, current_champion, load_version, missing_inputs
from leadscore_assets.resources.mlflow_store import MlflowStore
from leadscore_assets.resources.storage import LeadscoreStorage
from leadscore_assets.resources.warehouse import Warehouse

MIN_ROWS = 20  # fewer current rows than this: the report would say nothing


def build(config: ProjectConfig) -> list:
    promo = config.promotion

    reads = [EVALUATION_REPORT.key(config), FEATURES.key(config), FEATURE_SCHEMA.key(config)]
    reports_spec = dg.AssetSpec(deps=reads, **asset_kwargs(
        config, "drift_reports", "monitoring",
        "Evidently data drift (per feature), prediction drift (score PSI) and label drift between the "
        "champion's training data and the leads it has not seen; HTML reports in MLflow and data/reports.",
        {"evidently", "mlflow"}))
    summary_spec = DRIFT_SUMMARY.spec(config, "monitoring", {"duckdb"}, reads)

    def _summary(warehouse: Warehouse, kind: str):
        with warehouse_connection(warehouse, config) as conn:
            rows = conn.execute(
                f"SELECT drift_share, drifted_columns, psi, html_path FROM {DRIFT_SUMMARY.of(config)} WHERE kind = ?",
                [kind],
            ).fetchall()
        return rows[0] if rows else None

    @check("feature_drift_within_policy",
           description=f"Share of drifted features <= {promo.max_feature_drift_share}.")
    def feature_drift_within_policy(warehouse: Warehouse) -> dg.AssetCheckResult:
        share, cols, _, html = _summary(warehouse, "features")
        return dg.AssetCheckResult(
            passed=share <= promo.max_feature_drift_share, severity=dg.AssetCheckSeverity.WARN,
            metadata={"drift_share": share, "drifted_columns": cols, "report": dg.MetadataValue.path(html)},
        )

    @check("prediction_psi_within_policy",
           description=f"Score PSI <= {promo.max_prediction_psi}.")
    def prediction_psi_within_policy(warehouse: Warehouse) -> dg.AssetCheckResult:
        _, _, psi, html = _summary(warehouse, "scores")
        return dg.AssetCheckResult(
            passed=psi <= promo.max_prediction_psi, severity=dg.AssetCheckSeverity.WARN,
            metadata={"psi": psi, "report": dg.MetadataValue.path(html)},
        )

    @check("label_drift_absent",
           description="The positive rate of newly labelled leads matches the champion's training data.")
    def label_drift_absent(warehouse: Warehouse) -> dg.AssetCheckResult:
        row = _summary(warehouse, "labels")
        if row is None:
            return dg.AssetCheckResult(passed=True, severity=dg.AssetCheckSeverity.WARN,
                                       description="not enough labelled new leads to compare")
        share, _, _, html = row
        return dg.AssetCheckResult(passed=share == 0, severity=dg.AssetCheckSeverity.WARN,
                                   metadata={"report": dg.MetadataValue.path(html)})

    checks = [feature_drift_within_policy, prediction_psi_within_policy, label_drift_absent]

    @dg.multi_asset(op_tags=step_tags(config), specs=[reports_spec, summary_spec], check_specs=check_specs(reports_spec.key, checks),
                    name=f"{config.name}_measure_drift")
    def drift_reports(context: dg.AssetExecutionContext, warehouse: Warehouse, mlflow_store: MlflowStore,
                      storage: LeadscoreStorage):
        name = config.registered_model_name
        with warehouse_connection(warehouse, config) as conn:
            frame = FEATURES.read(conn, config)
            fs = load_feature_set(conn, config)
            ev = EVALUATION_REPORT.read(conn, config).iloc[0]
        champion = current_champion(mlflow_store.client, name)
        model = load_version(name, CHAMPION) if champion is not None else None
        # the rows the champion learnt from, logged with its version (hashed lead ids)
        reference = mlflow_store.run_frame(champion.run_id, REFERENCE_ARTIFACT) if champion is not None else None
        if model is None or missing_inputs(model, frame.columns) or reference is None:
            # No champion, one trained on another feature set or logged before references were: judge
            # drift against this run's training rows.
            model, champion = mlflow_store.load_model(ev.model_uri), None
            train = frame[frame[SPLIT] == "train"]
            reference = drift_reference(train, fs.columns, LABEL, model.predict_proba(train[fs.columns])[:, 1],
                                        train[ID])
        current = not_in_reference(frame, frame[ID], reference)
        if len(current) < MIN_ROWS:
            current = frame[frame[SPLIT] == "test"]
        current_scores = model.predict_proba(current[fs.columns])[:, 1]
        out = storage.report_dir(config.name, "drift", context.run_id)
        numeric, categorical = fs.numeric, [*fs.categorical, *fs.target_encoded]
        reports = {
            "features": feature_drift(reference, current, numeric, categorical, out / "feature_drift.html"),
            "scores": score_drift(reference["score"].to_numpy(), current_scores, out / "score_drift.html",
                                  psi_threshold=promo.max_prediction_psi),
        }
        ref_labels, cur_labels = reference[LABEL].dropna(), current[LABEL].dropna()
        if len(ref_labels) >= MIN_ROWS and len(cur_labels) >= MIN_ROWS:
            reports["labels"] = label_drift(ref_labels.to_numpy(), cur_labels.to_numpy(), out / "label_drift.html")
        summary = pd.DataFrame([
            {"kind": k, "drift_share": r.drift_share, "drifted_columns": ",".join(r.drifted_columns),
             "psi": r.psi, "html_path": str(r.html_path), "reference_rows": len(reference), "current_rows": len(current),
             "dagster_run_id": context.run_id}
            for k, r in reports.items()
        ])
        with warehouse_connection(warehouse, config) as conn:
            DRIFT_SUMMARY.write(conn, config, summary)
        with mlflow_store.run(config.name, "drift", role="drift", tags={"leadscore.evaluation_run_id": str(ev.run_id)}) as run:
            mlflow_store.log_metrics({"feature_drift_share": float(reports["features"].drift_share),
                                "prediction_psi": float(reports["scores"].psi)})
            mlflow_store.log_artifacts(out, artifact_path="drift")
        feat, scores = reports["features"], reports["scores"]
        yield dg.MaterializeResult(asset_key=DRIFT_SUMMARY.key(config), metadata={
            "dagster/row_count": len(summary),
            "summary": dg.MetadataValue.md(summary[["kind", "drift_share", "psi"]].round(4).to_markdown(index=False))})
        yield dg.MaterializeResult(
            asset_key=reports_spec.key,
            metadata={
                "feature_drift_share": round(float(feat.drift_share), 4),
                "drifted_columns": dg.MetadataValue.json(feat.drifted_columns),
                "prediction_psi": round(float(scores.psi), 4),
                "label_drift": bool(reports["labels"].drifted_columns) if "labels" in reports else "not enough labels",
                "reference_rows": len(reference),
                "current_rows": len(current),
                "reference": "champion training data" if champion is not None else "training split (no champion yet)",
                # Evidently's HTML, opened in MLflow's artifact view; the file stays in data/reports too
                **{f"{k}_report": dg.MetadataValue.url(
                    mlflow_store.run_url(config.name, run.info.run_id, f"drift/{r.html_path.name}"))
                   for k, r in reports.items()},
                "mlflow_run": dg.MetadataValue.url(mlflow_store.run_url(config.name, run.info.run_id)),
                "report_dir": dg.MetadataValue.path(str(out)),
                "per_feature": dg.MetadataValue.md(feat.per_column.round(4).to_markdown(index=False)),
            }
        )
        yield from check_results(warehouse, reports_spec.key, checks)

    return [drift_reports]
