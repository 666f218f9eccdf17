"""candidate_models -> evaluation_report -> champion_model: train, select, evaluate, register."""


import json

import dagster as dg
import mlflow
import numpy as np
import pandas as pd
from dagster_duckdb import DuckDBResource
from sklearn.inspection import permutation_importance

from leadscore_assets.assets.common import asset_kwargs, figure_markdown, key, load_feature_set, read_table, table, write_table
from leadscore_assets.lib.config import ProjectConfig
from leadscore_assets.lib.evaluation import classification_metrics, confusion, lift_table, plot_report, selection_score
from leadscore_assets.lib.features import SPLIT
from leadscore_assets.lib.registry import log_pipeline, register_champion
from leadscore_assets.lib.training import split_xy, train_candidate
from leadscore_assets.resources.mlflow_store import MlflowStore
from leadscore_assets.resources.storage import LeadscoreStorage


def build(config: ProjectConfig) -> list:
    @dg.asset(
        deps=[key(config, "features")],
        **asset_kwargs(
            config, "candidate_models", "models",
            "Every configured candidate fitted on the training split and scored on validation; "
            "each an MLflow run with params, metrics and the whole pipeline as a model.",
            {"scikitlearn", "xgboost", "lightgbm", "mlflow"},
        ),
    )
    def candidate_models(
        context: dg.AssetExecutionContext, warehouse: DuckDBResource, mlflow_store: MlflowStore
    ) -> dg.MaterializeResult:
        with warehouse.get_connection() as conn:
            frame = read_table(conn, table(config, "features"))
            fs = load_feature_set(conn, config)
        x_val, y_val = split_xy(frame, fs, "validation")
        split_rows = frame[SPLIT].value_counts().to_dict()
        rows = []
        for name in config.models.candidates:
            cand = train_candidate(name, frame, fs, config)
            metrics = classification_metrics(y_val, cand.pipeline.predict_proba(x_val)[:, 1])
            with mlflow_store.run(config.name, f"{config.name}-{name}", tags={"leadscore.project": config.name,
                                                                               "leadscore.candidate": name,
                                                                               "dagster.run_id": context.run_id}) as run:
                mlflow.log_params({"candidate": name, "features": ",".join(fs.columns),
                                   "selection_metric": config.models.selection_metric,
                                   **{f"rows_{k}": int(v) for k, v in split_rows.items()}, **cand.params})
                mlflow.log_metrics({f"validation_{k}": v for k, v in metrics.items() if np.isfinite(v)})
                model_uri = log_pipeline(cand.pipeline, x_val)
            score = selection_score(metrics, config.models.selection_metric)
            rows.append({"candidate": name, "run_id": run.info.run_id, "model_uri": model_uri,
                         "selection_score": score, **{f"validation_{k}": v for k, v in metrics.items()}})
            context.log.info(f"{name}: validation {config.models.selection_metric} = {score:.4f}")
        results = pd.DataFrame(rows).sort_values("selection_score", ascending=False)
        with warehouse.get_connection() as conn:
            write_table(conn, table(config, "candidate_models"), results)
        shown = results[["candidate", "selection_score", "validation_roc_auc", "validation_pr_auc", "validation_brier"]]
        return dg.MaterializeResult(
            metadata={
                "best_candidate": str(results.candidate.iloc[0]),
                "best_validation_score": float(results.selection_score.iloc[0]),
                "leaderboard": dg.MetadataValue.md(shown.round(4).to_markdown(index=False)),
                "mlflow_experiment": f"leadscore/{config.name}",
            }
        )

    @dg.asset(
        deps=[candidate_models],
        **asset_kwargs(
            config, "evaluation_report", "evaluation",
            "The best validation candidate evaluated once on the untouched test split: metrics, lift by "
            "decile and plots (also logged to its MLflow run).",
            {"scikitlearn", "mlflow"},
        ),
    )
    def evaluation_report(
        context: dg.AssetExecutionContext, warehouse: DuckDBResource, mlflow_store: MlflowStore, storage: LeadscoreStorage
    ) -> dg.MaterializeResult:
        with warehouse.get_connection() as conn:
            frame = read_table(conn, table(config, "features"))
            fs = load_feature_set(conn, config)
            cands = read_table(conn, table(config, "candidate_models"), "ORDER BY selection_score DESC")
        best = cands.iloc[0]
        pipeline = mlflow.sklearn.load_model(best.model_uri)
        x_test, y_test = split_xy(frame, fs, "test")
        p = pipeline.predict_proba(x_test)[:, 1]
        metrics = classification_metrics(y_test, p)
        dummy = cands[cands.candidate == "dummy"].iloc[0]
        dummy_p = mlflow.sklearn.load_model(dummy.model_uri).predict_proba(x_test)[:, 1]
        dummy_auc = classification_metrics(y_test, dummy_p)["roc_auc"]
        imp = permutation_importance(pipeline, x_test, y_test, scoring="roc_auc", n_repeats=5,
                                     random_state=config.models.seed, n_jobs=1)
        importance = pd.DataFrame({"feature": fs.columns, "importance": imp.importances_mean}).sort_values(
            "importance", ascending=False)
        gains = lift_table(y_test, p)
        figures = plot_report(y_test, p, importance, f"{config.name} / {best.candidate}")
        out = storage.report_dir(config.name, "evaluation", best.run_id)
        for name, fig in figures.items():
            fig.savefig(out / f"{name}.png", bbox_inches="tight")
        gains.to_csv(out / "lift_by_decile.csv", index=False)
        importance.to_csv(out / "feature_importance.csv", index=False)
        report = {"candidate": best.candidate, "run_id": best.run_id, "model_uri": best.model_uri,
                  "test": metrics, "dummy_test_roc_auc": dummy_auc,
                  "confusion_matrix": confusion(y_test, p).tolist()}
        (out / "evaluation.json").write_text(json.dumps(report, indent=2))
        client = mlflow_store.client
        for k, v in metrics.items():
            if np.isfinite(v):
                client.log_metric(best.run_id, f"test_{k}", v)
        client.log_artifacts(best.run_id, str(out), artifact_path="evaluation")
        row = {"candidate": best.candidate, "run_id": best.run_id, "model_uri": best.model_uri,
               "dummy_test_roc_auc": dummy_auc, **{f"test_{k}": v for k, v in metrics.items()}}
        with warehouse.get_connection() as conn:
            write_table(conn, table(config, "evaluation_report"), pd.DataFrame([row]))
        return dg.MaterializeResult(
            metadata={
                "candidate": str(best.candidate),
                "mlflow_run_id": str(best.run_id),
                **{f"test_{k}": dg.MetadataValue.float(float(v)) for k, v in metrics.items()},
                "dummy_test_roc_auc": float(dummy_auc),
                "lift_by_decile": dg.MetadataValue.md(gains.round(4).to_markdown(index=False)),
                "feature_importance": dg.MetadataValue.md(importance.round(4).to_markdown(index=False)),
                "report_dir": dg.MetadataValue.path(str(out)),
                "plots": dg.MetadataValue.md(figure_markdown(figures)),
            }
        )

    @dg.asset_check(asset=evaluation_report, name="beats_dummy_baseline", blocking=True,
                    description="The selected model's test ROC-AUC beats the dummy baseline's.")
    def beats_dummy_baseline(warehouse: DuckDBResource) -> dg.AssetCheckResult:
        with warehouse.get_connection() as conn:
            auc, dummy_auc = conn.execute(
                f"SELECT test_roc_auc, dummy_test_roc_auc FROM {table(config, 'evaluation_report')}"
            ).fetchall()[0]
        return dg.AssetCheckResult(passed=bool(auc > dummy_auc), metadata={"test_roc_auc": auc, "dummy_test_roc_auc": dummy_auc})

    @dg.asset(
        deps=[evaluation_report],
        **asset_kwargs(
            config, "champion_model", "models",
            f"The evaluated winner registered as MLflow model '{config.registered_model_name}' under the alias "
            "`champion` (the previous champion keeps the alias `previous`).",
            {"mlflow"},
        ),
    )
    def champion_model(warehouse: DuckDBResource, mlflow_store: MlflowStore) -> dg.MaterializeResult:
        with warehouse.get_connection() as conn:
            ev = read_table(conn, table(config, "evaluation_report")).iloc[0]
        version = register_champion(
            mlflow_store.client, config.registered_model_name, ev.model_uri, ev.run_id,
            tags={"leadscore.project": config.name, "leadscore.candidate": ev.candidate,
                  "leadscore.test_roc_auc": f"{ev.test_roc_auc:.4f}"},
        )
        return dg.MaterializeResult(
            metadata={
                "registered_model": config.registered_model_name,
                "version": version,
                "model_uri": f"models:/{config.registered_model_name}@champion",
                "candidate": str(ev.candidate),
                "test_roc_auc": float(ev.test_roc_auc),
            }
        )

    return [candidate_models, evaluation_report, beats_dummy_baseline, champion_model]
