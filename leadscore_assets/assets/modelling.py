"""candidate_models -> evaluation_report: train, tune, select, calibrate, threshold, evaluate.

The evaluation report's model (calibrated pipeline + threshold) is the challenger that
`promotion.champion_model` registers and judges against the current champion.
"""

import json
import time

import dagster as dg
import matplotlib.pyplot as plt
import mlflow
import numpy as np
import pandas as pd
from sklearn.inspection import permutation_importance

from leadscore_assets.assets.common import (
    asset_kwargs,
    figure_markdown,
    key,
    load_feature_set,
    read_table,
    table,
    warehouse_connection,
    write_table,
)
from leadscore_assets.lib.calibration import reliability_plot
from leadscore_assets.lib.config import ProjectConfig
from leadscore_assets.lib.evaluation import (
    bootstrap_ci,
    classification_metrics,
    confusion,
    lift_table,
    plot_report,
    selection_score,
)
from leadscore_assets.lib.explain import explain, global_importance, summary_plot
from leadscore_assets.lib.features import SPLIT
from leadscore_assets.lib.model_card import model_card
from leadscore_assets.lib.registry import log_pipeline, uncalibrated
from leadscore_assets.lib.training import (
    choose_candidate,
    finalise,
    fold_scores,
    fit_splits,
    out_of_fold_probabilities,
    selection_method,
    split_xy,
    train_candidate,
)
from leadscore_assets.lib.targets import compare_targets, measured_figures, targets_markdown, targets_met
from leadscore_assets.lib.tuning import history_plots
from leadscore_assets.resources.mlflow_store import MlflowStore
from leadscore_assets.resources.storage import LeadscoreStorage
from leadscore_assets.resources.warehouse import Warehouse

EXPLAIN_SAMPLE = 2000  # test rows explained for the global SHAP summary
IMPORTANCE_SAMPLE = 5000  # test rows shuffled for permutation importance


def build(config: ProjectConfig) -> list:
    @dg.asset(
        deps=[key(config, "features")],
        **asset_kwargs(
            config, "candidate_models", "models",
            "Every configured candidate fitted on the training split (after an Optuna search when the "
            "project sets a budget) and scored on validation; each an MLflow run, trials nested under it.",
            {"scikitlearn", "xgboost", "lightgbm", "optuna", "mlflow"},
        ),
    )
    def candidate_models(
        context: dg.AssetExecutionContext, warehouse: Warehouse, mlflow_store: MlflowStore,
        storage: LeadscoreStorage,
    ) -> dg.MaterializeResult:
        with warehouse_connection(warehouse, config) as conn:  # holds the project for this run
            frame = read_table(conn, table(config, "features"))
            fs = load_feature_set(conn, config)
        if ended := mlflow_store.end_abandoned_runs(config.name, context.run_id):
            context.log.warning(f"ended {len(ended)} MLflow run(s) left RUNNING by a killed run: {ended}")
        method = selection_method(frame, config)
        x_fit, y_fit = split_xy(frame, fs, *fit_splits(method))
        x_val, y_val = split_xy(frame, fs, "validation")
        judged_on = (f"{config.models.cv_folds}-fold CV over train + validation ({int(y_fit.sum())} positives)"
                     if method == "cv" else f"the validation split ({int(y_val.sum())} positives)")
        context.log.info(f"candidates judged on {judged_on}")
        split_rows = frame[SPLIT].value_counts().to_dict()
        rows, search_md = [], []
        for name in config.models.candidates:
            tags = {"leadscore.project": config.name, "leadscore.candidate": name, "dagster.run_id": context.run_id}
            with mlflow_store.run(config.name, f"{config.name}-{name}", tags=tags) as run:

                def log_trial(number: int, params: dict, value: float | None, state: str, _name=name) -> None:
                    with mlflow.start_run(run_name=f"{_name}-trial-{number}", nested=True):
                        mlflow.log_params(params)
                        mlflow.set_tag("optuna.state", state)
                        if value is not None:
                            mlflow.log_metric("cv_score", value)

                started = time.perf_counter()
                cand = train_candidate(name, frame, fs, config, on_trial=log_trial, splits=fit_splits(method))
                folds: list[float] = []
                if method == "cv":
                    p_oof = out_of_fold_probabilities(cand.pipeline, x_fit, y_fit, config)
                    metrics, folds = classification_metrics(y_fit, p_oof), fold_scores(p_oof, x_fit, y_fit, config)
                else:
                    metrics = classification_metrics(y_val, cand.pipeline.predict_proba(x_val)[:, 1])
                train_seconds = time.perf_counter() - started
                search_seconds = float(cand.tuning.trials.duration_s.sum()) if cand.tuning is not None else 0.0
                mlflow.log_params({"candidate": name, "features": ",".join(fs.columns), "selection": method,
                                   "selection_metric": config.models.selection_metric,
                                   **{f"rows_{k}": int(v) for k, v in split_rows.items()}, **cand.params})
                mlflow.log_metrics({f"validation_{k}": v for k, v in metrics.items() if np.isfinite(v)})
                if cand.tuning is not None:
                    mlflow.log_metric("search_best_cv_score", cand.tuning.best_value)
                    plots = history_plots(cand.tuning)
                    out = storage.report_dir(config.name, "search", name)
                    for plot_name, fig in plots.items():
                        fig.savefig(out / f"{plot_name}.png", bbox_inches="tight")
                        mlflow.log_figure(fig, f"search/{plot_name}.png")
                    trials = cand.tuning.trials
                    search_md.append(
                        f"### {name}: {len(trials)} trials, {int((trials.state == 'PRUNED').sum())} pruned, "
                        f"best CV {cand.tuning.best_value:.4f}\n\n{figure_markdown(plots)}"
                    )
                model_uri = log_pipeline(cand.pipeline, x_fit)
            score = selection_score(metrics, config.models.selection_metric)
            rows.append({"candidate": name, "run_id": run.info.run_id, "model_uri": model_uri, "selection_method": method,
                         "selection_score": score, "fold_scores": json.dumps([round(f, 6) for f in folds]), "train_seconds": train_seconds, "search_seconds": search_seconds,
                         "search_trials": 0 if cand.tuning is None else len(cand.tuning.trials),
                         **{f"validation_{k}": v for k, v in metrics.items()}})
            context.log.info(f"{name}: validation {config.models.selection_metric} = {score:.4f}")
        results = pd.DataFrame(rows).sort_values("selection_score", ascending=False, kind="stable")
        results["chosen"] = results.candidate == choose_candidate(results)
        with warehouse_connection(warehouse, config) as conn:
            write_table(conn, table(config, "candidate_models"), results)
        shown = results[["candidate", "chosen", "selection_score", "validation_roc_auc", "validation_pr_auc", "validation_brier",
                         "search_trials", "train_seconds"]]
        return dg.MaterializeResult(
            metadata={
                "best_candidate": str(results.candidate.iloc[0]),
                "chosen_candidate": str(results.candidate[results.chosen].iloc[0]),
                "chosen_because": ("simplest candidate within one standard error of the best CV score"
                                   if method == "cv" else "best validation score"),
                "best_validation_score": float(results.selection_score.iloc[0]),
                "judged_on": judged_on,
                "leaderboard": dg.MetadataValue.md(shown.round(4).to_markdown(index=False)),
                "search_history": dg.MetadataValue.md("\n\n".join(search_md) or "_no search configured_"),
                "training_seconds_total": float(results.train_seconds.sum()),
                "mlflow_experiment": f"leadscore/{config.name}",
            }
        )

    @dg.asset(
        deps=[candidate_models],
        **asset_kwargs(
            config, "evaluation_report", "evaluation",
            "The best validation candidate, calibrated on validation when that lowers Brier, with its "
            "decision threshold from the project's policy, evaluated once on the untouched test split: "
            "metrics with bootstrap intervals, lift, plots, SHAP summary and a model card (all in MLflow).",
            {"scikitlearn", "shap", "mlflow"},
        ),
    )
    def evaluation_report(
        context: dg.AssetExecutionContext, warehouse: Warehouse, mlflow_store: MlflowStore,
        storage: LeadscoreStorage,
    ) -> dg.MaterializeResult:
        with warehouse_connection(warehouse, config) as conn:
            frame = read_table(conn, table(config, "features"))
            fs = load_feature_set(conn, config)
            cands = read_table(conn, table(config, "candidate_models"), "ORDER BY selection_score DESC")
        best = cands[cands.chosen].iloc[0]
        seed = config.models.seed
        fitted = mlflow.sklearn.load_model(best.model_uri)
        x_test, y_test = split_xy(frame, fs, "test")
        final = finalise(fitted, frame, fs, config, str(best.selection_method))
        cal, decision, model, x_train = final.calibration, final.threshold, final.model, final.fit_rows
        p_raw_test = fitted.predict_proba(x_test)[:, 1]
        p = model.predict_proba(x_test)[:, 1]
        metrics = classification_metrics(y_test, p, threshold=decision.threshold)
        intervals = bootstrap_ci(y_test, p, seed=seed)
        dummy = cands[cands.candidate == "dummy"].iloc[0]
        dummy_auc = classification_metrics(y_test, mlflow.sklearn.load_model(dummy.model_uri).predict_proba(x_test)[:, 1])["roc_auc"]

        sample = x_test.sample(min(len(x_test), IMPORTANCE_SAMPLE), random_state=seed)
        imp = permutation_importance(model, sample, y_test[x_test.index.get_indexer(sample.index)], scoring="roc_auc",
                                     n_repeats=5, random_state=seed, n_jobs=1)
        importance = pd.DataFrame({"feature": fs.columns, "importance": imp.importances_mean}).sort_values(
            "importance", ascending=False)
        shap_rows = x_test.sample(min(len(x_test), EXPLAIN_SAMPLE), random_state=seed)
        explanation = explain(uncalibrated(model), shap_rows, fs.columns,
                              background=x_train, seed=seed)
        shap_table = global_importance(explanation)

        figures = plot_report(y_test, p, importance, f"{config.name} / {best.candidate}")
        figures["reliability"] = reliability_plot(y_test, {"uncalibrated": p_raw_test, f"calibrated ({cal.method})": p},
                                                  f"Reliability - {config.name}")
        figures["shap_summary"] = summary_plot(explanation, shap_rows)
        gains = lift_table(y_test, p)
        calibration = {"method": cal.method, "reason": cal.reason, "validation_brier_by_method": cal.brier_by_method,
                       "test_brier_before": float(classification_metrics(y_test, p_raw_test)["brier"]),
                       "test_brier_after": metrics["brier"]}
        threshold = {"policy": decision.policy, "threshold": decision.threshold, "precision": decision.precision,
                     "recall": decision.recall, "f1": decision.f1, "expected_value": decision.expected_value,
                     "contacted_share": decision.contacted_share}
        time_col = config.split.time_column
        window = {"column": time_col or "row order"}
        if time_col:
            with warehouse_connection(warehouse, config) as conn:
                lo, hi = conn.execute(f"SELECT min({time_col}), max({time_col}) FROM {table(config, 'validated_contacts')}").fetchall()[0]
            window.update(start=str(lo), end=str(hi))
        card = model_card(
            project=config.name, description=config.description, candidate=str(best.candidate),
            version_hint=f"run {context.run_id[:8]}", label_rule=config.label.model_dump(), data_window=window,
            rows={k: int(v) for k, v in frame[SPLIT].value_counts().items()}, features=fs.columns,
            excluded=sorted({*config.personal_data, *config.features.exclude}),
            metrics=metrics, intervals=intervals, calibration=calibration, threshold=threshold,
            limitations=[
                "Trained on leads the source recorded an outcome for; unlabelled (open) leads are scored only.",
                "Demo-scale data: intervals are wide on small test splits.",
                *(["Split is random, not out-of-time: lift may be overstated."] if not time_col else []),
                f"Columns typed {'from the data' if not config.columns else 'in the project YAML'}.",
            ],
        )

        out = storage.report_dir(config.name, "evaluation", context.run_id)
        for name, fig in figures.items():
            fig.savefig(out / f"{name}.png", bbox_inches="tight")
            plt.close(fig)  # saved; the markdown below re-renders from the figure object
        gains.to_csv(out / "lift_by_decile.csv", index=False)
        importance.to_csv(out / "feature_importance.csv", index=False)
        shap_table.to_csv(out / "shap_mean_abs.csv", index=False)
        (out / "model_card.md").write_text(card)
        report = {"candidate": best.candidate, "test": metrics, "intervals": intervals, "dummy_test_roc_auc": dummy_auc,
                  "confusion_matrix": confusion(y_test, p, decision.threshold).tolist(),
                  "calibration": calibration, "threshold": threshold}
        (out / "evaluation.json").write_text(json.dumps(report, indent=2, default=float))

        tags = {"leadscore.project": config.name, "leadscore.role": "challenger", "dagster.run_id": context.run_id}
        with mlflow_store.run(config.name, f"{config.name}-challenger", tags=tags) as run:
            mlflow.log_params({"candidate": best.candidate, "source_run_id": best.run_id, "calibration": cal.method,
                               "threshold_policy": decision.policy, "threshold": round(decision.threshold, 6),
                               "features": ",".join(fs.columns)})
            mlflow.log_metrics({f"test_{k}": v for k, v in metrics.items() if np.isfinite(v)})
            mlflow.log_metrics({f"test_{k}_ci_low": v[0] for k, v in intervals.items()})
            mlflow.log_metrics({f"test_{k}_ci_high": v[1] for k, v in intervals.items()})
            mlflow.log_artifacts(str(out), artifact_path="evaluation")
            model_uri = log_pipeline(model, x_train)
        row = {"candidate": best.candidate, "run_id": run.info.run_id, "model_uri": model_uri,
               "selection_method": str(best.selection_method), "selection_roc_auc": float(best.validation_roc_auc),
               "source_run_id": best.run_id, "calibration": cal.method, "threshold": decision.threshold,
               "threshold_policy": decision.policy, "dummy_test_roc_auc": dummy_auc,
               **{f"test_{k}": v for k, v in metrics.items()}}
        with warehouse_connection(warehouse, config) as conn:
            write_table(conn, table(config, "evaluation_report"), pd.DataFrame([row]))
        targets = compare_targets(config.targets, measured_figures(metrics, {}))
        return dg.MaterializeResult(
            metadata={
                **({"targets": dg.MetadataValue.md(targets_markdown(targets, config.targets)),
                    "targets_met": targets_met(targets)} if config.targets else {}),
                "candidate": str(best.candidate),
                "mlflow_run_id": str(run.info.run_id),
                **{f"test_{k}": dg.MetadataValue.float(float(v)) for k, v in metrics.items()},
                **{f"test_{k}_95ci": dg.MetadataValue.text(f"{lo:.4f} - {hi:.4f}") for k, (lo, hi) in intervals.items()},
                "dummy_test_roc_auc": float(dummy_auc),
                "calibration": cal.method,
                "test_brier_uncalibrated": calibration["test_brier_before"],
                "threshold_policy": decision.policy,
                "threshold": float(decision.threshold),
                "threshold_precision_recall": dg.MetadataValue.json(threshold),
                "lift_by_decile": dg.MetadataValue.md(gains.round(4).to_markdown(index=False)),
                "shap_mean_abs": dg.MetadataValue.md(shap_table.round(4).to_markdown(index=False)),
                "model_card": dg.MetadataValue.md(card),
                "report_dir": dg.MetadataValue.path(str(out)),
                "plots": dg.MetadataValue.md(figure_markdown(figures)),
            }
        )

    search = config.models.search

    @dg.asset_check(asset=candidate_models, name="search_within_budget",
                    description=f"Each tuned candidate's search stayed within its {search.timeout_s} s budget "
                                "(plus the trial in progress when it ran out).")
    def search_within_budget(warehouse: Warehouse) -> dg.AssetCheckResult:
        with warehouse_connection(warehouse, config) as conn:
            spent = dict(conn.execute(f"SELECT candidate, search_seconds FROM {table(config, 'candidate_models')}").fetchall())
        limit = None if search.timeout_s is None else search.timeout_s * 1.5
        over = {k: round(v, 1) for k, v in spent.items() if limit is not None and v > limit}
        return dg.AssetCheckResult(passed=not over, severity=dg.AssetCheckSeverity.WARN,
                                   metadata={"search_seconds": dg.MetadataValue.json({k: round(v, 1) for k, v in spent.items()}),
                                             "budget_s": search.timeout_s or 0, "over_budget": dg.MetadataValue.json(over)})

    @dg.asset_check(asset=evaluation_report, name="beats_dummy_baseline", blocking=True,
                    description="The selected model's test ROC-AUC beats the dummy baseline's.")
    def beats_dummy_baseline(warehouse: Warehouse) -> dg.AssetCheckResult:
        with warehouse_connection(warehouse, config) as conn:
            auc, dummy_auc = conn.execute(
                f"SELECT test_roc_auc, dummy_test_roc_auc FROM {table(config, 'evaluation_report')}"
            ).fetchall()[0]
        return dg.AssetCheckResult(passed=bool(auc > dummy_auc), metadata={"test_roc_auc": auc, "dummy_test_roc_auc": dummy_auc})

    return [candidate_models, search_within_budget, evaluation_report, beats_dummy_baseline]
