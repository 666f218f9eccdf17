"""drift_reports: Evidently reports comparing the champion's training data with new leads.

Reference = the rows the current champion was trained on (with its scores), logged with its
model version in MLflow (so no table written by a later asset is read here: no back-edge);
before the first promotion, the training split scored by the challenger.
Current = every lead the reference does not contain. Feature, score (PSI) and label drift
feed the promotion gate; each report is an HTML file under data/reports, logged to MLflow.
"""

import dagster as dg
import pandas as pd

from leadscore_assets.assets.common import (
    check,
    check_results,
    check_specs,
    feature_set_of,
    read_modelling_rows,
    warehouse_connection,
)
from leadscore_assets.assets.inputs import Reads, StagedTable
from leadscore_assets.assets.specs import asset_kwargs, step_tags
from leadscore_assets.assets.tables import (
    DRIFT_SUMMARY,
    EVALUATION_REPORT,
    FEATURE_SCHEMA,
    FEATURES,
)
from leadscore_assets.lib.project.config import ProjectConfig
from leadscore_assets.lib.monitoring.drift import (
    REFERENCE_ARTIFACT,
    COMPARED_ROWS,
    compared_rows,
    current_rows,
    drift_reference,
    drift_reports as drift_reports_between,
    drift_summary,
    rows_after_training,
)
from leadscore_assets.lib.features.frame import ID, LABEL, SPLIT
from leadscore_assets.lib.scoring.registry import CHAMPION, current_champion, load_version, missing_inputs
from leadscore_assets.resources.mlflow_store import MlflowStore
from leadscore_assets.resources.storage import LeadscoreStorage, write_files
from leadscore_assets.resources.warehouse import Warehouse

def build(config: ProjectConfig) -> list:
    promo = config.promotion

    reads = Reads(config, evaluation_report=EVALUATION_REPORT, features=FEATURES, feature_schema=FEATURE_SCHEMA)
    reports_spec = dg.AssetSpec(deps=reads.deps, **asset_kwargs(
        config, "drift_reports", "monitoring",
        "Evidently data drift (per feature), prediction drift (score PSI) and label drift between the "
        "champion's training data and the leads it has not seen; HTML reports in MLflow and data/reports.",
        {"evidently", "mlflow"}))
    summary_spec = DRIFT_SUMMARY.spec(config, "monitoring", {"duckdb"}, reads.deps)

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
                    ins=reads.ins, name=f"{config.name}_measure_drift")
    def drift_reports(context: dg.AssetExecutionContext, warehouse: Warehouse, mlflow_store: MlflowStore,
                      storage: LeadscoreStorage, evaluation_report: StagedTable, features: StagedTable,
                      feature_schema: StagedTable):
        (frame, modelling_rows), fs = read_modelling_rows(features, config), feature_set_of(feature_schema)
        ev = evaluation_report.read().iloc[0]
        model, reference, reference_rows, current, against = reference_and_current(mlflow_store, config, frame, fs,
                                                                                   ev.model_uri)
        ref_compared, cur_compared = (compared_rows(rows, seed=config.models.seed) for rows in (reference, current))
        out = storage.report_dir(config.name, "drift", context.run_id)
        reports = drift_reports_between(ref_compared, cur_compared, model.predict_proba(cur_compared[fs.columns])[:, 1],
                                        fs.numeric, [*fs.categorical, *fs.target_encoded], LABEL, out,
                                        promo.max_prediction_psi)
        summary = drift_summary(reports, reference_rows, len(current), context.run_id)
        write_files(out, {r.html_path.name: r.html.encode("utf-8") for r in reports.values()})
        with warehouse_connection(warehouse, config) as conn:
            DRIFT_SUMMARY.write(conn, config, summary)
        with mlflow_store.run(config.name, "drift", role="drift", tags={"leadscore.evaluation_run_id": str(ev.run_id)}) as run:
            mlflow_store.log_metrics({"feature_drift_share": float(reports["features"].drift_share),
                                      "prediction_psi": float(reports["scores"].psi)})
            mlflow_store.log_artifacts(out, artifact_path="drift")
        yield dg.MaterializeResult(asset_key=DRIFT_SUMMARY.key(config), metadata={
            "dagster/row_count": len(summary),
            "summary": dg.MetadataValue.md(summary[["kind", "drift_share", "psi"]].round(4).to_markdown(index=False))})
        yield dg.MaterializeResult(asset_key=reports_spec.key, metadata={**drift_page(
            config, mlflow_store, run.info.run_id, reports, reference_rows, len(current), against, out),
            "rows_compared": rows_compared(len(ref_compared), reference_rows, len(cur_compared), len(current)),
            "modelling_rows": modelling_rows})
        yield from check_results(warehouse, reports_spec.key, checks)

    return [drift_reports]


def reference_and_current(mlflow_store: MlflowStore, config: ProjectConfig, frame: pd.DataFrame, fs,
                          challenger_uri: str):
    """(model, reference rows, how many rows the reference stands for, current rows, what the
    reference is): the champion, the rows it learnt from (logged with its version, hashed lead
    ids) and the leads it has not seen; with no champion, one trained on another feature set or
    logged before references were, this run's challenger against its training split (scored on
    the rows compared only, `compared_rows`), the other splits current."""
    name = config.registered_model_name
    client = mlflow_store.client
    champion = current_champion(client, name)
    model = load_version(name, CHAMPION, client) if champion is not None else None
    reference = mlflow_store.run_frame(champion.run_id, REFERENCE_ARTIFACT) if champion is not None else None
    if model is not None and not missing_inputs(model, frame.columns) and reference is not None:
        return model, reference, len(reference), current_rows(frame, reference), "champion training data"
    model = mlflow_store.load_model(challenger_uri)
    train = frame[frame[SPLIT] == "train"]
    rows, train = len(train), compared_rows(train, seed=config.models.seed)
    reference = drift_reference(train, fs.columns, LABEL, model.predict_proba(train[fs.columns])[:, 1], train[ID])
    return model, reference, rows, rows_after_training(frame), "training split (no champion yet)"


def rows_compared(ref_compared: int, reference: int, cur_compared: int, current: int) -> str:
    """What the reports compared, said on the page when a side was sampled."""
    if ref_compared == reference and cur_compared == current:
        return "every row"
    return (f"{ref_compared:,} of {reference:,} reference rows, {cur_compared:,} of {current:,} current rows "
            f"(a seeded sample of each side above {COMPARED_ROWS:,})")


def drift_page(config: ProjectConfig, mlflow_store: MlflowStore, run_id: str, reports: dict, reference_rows: int,
               current_rows: int, against: str, out) -> dict:
    """What the drift_reports asset page shows: the figures the gate reads, then links to
    Evidently's HTML opened in MLflow's artifact view (the files stay in data/reports too)."""
    feat, scores = reports["features"], reports["scores"]
    return {
        "feature_drift_share": round(float(feat.drift_share), 4),
        "drifted_columns": dg.MetadataValue.json(feat.drifted_columns),
        "prediction_psi": round(float(scores.psi), 4),
        "label_drift": bool(reports["labels"].drifted_columns) if "labels" in reports else "not enough labels",
        "reference_rows": reference_rows,
        "current_rows": current_rows,
        "reference": against,
        **{f"{k}_report": dg.MetadataValue.url(mlflow_store.run_url(config.name, run_id, f"drift/{r.html_path.name}"))
           for k, r in reports.items()},
        "mlflow_run": dg.MetadataValue.url(mlflow_store.run_url(config.name, run_id)),
        "report_dir": dg.MetadataValue.path(str(out)),
        "per_feature": dg.MetadataValue.md(feat.per_column.round(4).to_markdown(index=False)),
    }
