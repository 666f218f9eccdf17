"""revenue_model: E[revenue | order] for projects that configure `revenue:` (two-stage value)."""

import dagster as dg
import numpy as np
import pandas as pd

from leadscore_assets.assets.common import feature_set_of, warehouse_connection
from leadscore_assets.assets.inputs import Reads, StagedTable
from leadscore_assets.assets.specs import asset_kwargs, step_tags
from leadscore_assets.assets.tables import (
    EVALUATION_REPORT,
    FEATURES,
    FEATURE_SCHEMA,
    REVENUE_MODEL,
    VALIDATED_CONTACTS,
)
from leadscore_assets.lib.project.config import ProjectConfig
from leadscore_assets.lib.features.frame import ID, LABEL, SPLIT, preprocessor
from leadscore_assets.lib.modelling.revenue import LogRevenueRegressor, regression_metrics
from leadscore_assets.lib.evaluation.targets import (
    compare_targets,
    measured_figures,
    targets_markdown,
    targets_met,
)
from leadscore_assets.resources.mlflow_store import MlflowStore
from leadscore_assets.resources.warehouse import Warehouse
from leadscore_assets.lib.project.sql_rules import identifier


def build(config: ProjectConfig) -> list:
    if config.revenue is None:
        return []
    column = config.revenue.column

    # evaluation_report: its test metrics complete the project's targets table (read, not trained on)
    reads = Reads(config, features=FEATURES, feature_schema=FEATURE_SCHEMA, validated_contacts=VALIDATED_CONTACTS,
                  evaluation_report=EVALUATION_REPORT)

    @dg.asset(
        op_tags=step_tags(config),
        ins=reads.ins,
        **asset_kwargs(
            config, "revenue_model", "models",
            f"E[{column} | order]: LightGBM on log1p({column}) of converting training rows, smeared back to "
            "currency; scores carry P(order) x E[revenue | order]. Metadata compares every project target "
            "(order model and revenue) with the test figures.",
            {"lightgbm", "mlflow"},
        ),
    )
    def revenue_model(warehouse: Warehouse, mlflow_store: MlflowStore, features: StagedTable,
                      feature_schema: StagedTable, validated_contacts: StagedTable,
                      evaluation_report: StagedTable) -> dg.MaterializeResult:
        fs = feature_set_of(feature_schema)
        with features.connection() as conn:
            frame = conn.execute(converting_rows_sql(features.sql, validated_contacts.sql, config.id_column,
                                                     column)).df()
        train, test = frame[frame[SPLIT] == "train"], frame[frame[SPLIT] == "test"]
        model = LogRevenueRegressor(preprocessor(fs, config), seed=config.models.seed)
        model.fit(train[fs.columns], train._revenue.to_numpy())
        pred = model.predict(test[fs.columns])
        metrics = regression_metrics(test._revenue.to_numpy(), pred)
        baseline = regression_metrics(test._revenue.to_numpy(), np.full(len(test), train._revenue.mean()))
        with mlflow_store.run(config.name, "revenue: order value", role="revenue") as run:
            mlflow_store.log_params({"target": f"log1p({column})", "smearing": round(model.smearing_, 6),
                               "train_orders": len(train), "features": ",".join(fs.columns)})
            mlflow_store.log_metrics({f"test_{k}": v for k, v in metrics.items()})
            model_uri = mlflow_store.log_regressor(model, test[fs.columns])
        with warehouse_connection(warehouse, config) as conn:
            REVENUE_MODEL.write(conn, config, pd.DataFrame([{
                "run_id": run.info.run_id, "model_uri": model_uri, **{f"test_{k}": v for k, v in metrics.items()}}]))
        evaluated = evaluation_report.read_if_exists()
        evaluated = pd.DataFrame() if evaluated is None else evaluated
        classification = evaluated.iloc[0].to_dict() if len(evaluated) else {}  # test_<metric> columns
        targets = compare_targets(config.targets, measured_figures(classification, metrics, classification_prefix="test_"))
        return dg.MaterializeResult(metadata={
            **{f"test_{k}": round(float(v), 4) for k, v in metrics.items()},
            "baseline_test_rmse": round(float(baseline["rmse"]), 4),
            "mean_order_value_test": round(float(test._revenue.mean()), 2),
            "smearing_factor": round(float(model.smearing_), 4),
            "mlflow_run": dg.MetadataValue.url(mlflow_store.run_url(config.name, run.info.run_id)),
            "targets": dg.MetadataValue.md(targets_markdown(targets, config.targets)),
            "targets_met": targets_met(targets),
        })

    return [revenue_model]


def converting_rows_sql(features_sql: str, validated_sql: str, id_column: str, column: str) -> str:
    """The converting leads' feature rows with their `column` (revenue) as `_revenue`, in the
    features table's order. The order is the model's: LightGBM subsamples rows by position with
    its seed, and a parallel join returns rows in whatever order its threads finish, so without
    ORDER BY the same data and seed gave a different revenue model from run to run."""
    return f"""
        SELECT f.*, v.{identifier(column)} AS _revenue FROM {features_sql} f
        JOIN {validated_sql} v ON v.{identifier(id_column)} = f.{ID}
        WHERE f.{LABEL} = 1 AND v.{identifier(column)} > 0
        ORDER BY f.rowid"""
