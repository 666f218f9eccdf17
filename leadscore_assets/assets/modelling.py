"""candidate_models -> evaluation_report: train, tune, select, calibrate, threshold, evaluate.

The evaluation report's model (calibrated pipeline + threshold) is the challenger that
`promotion.champion_model` registers and judges against the current champion.
"""

import json

import dagster as dg
import numpy as np
import pandas as pd

from leadscore_assets.assets.common import (
    check,
    check_results,
    check_specs,
    feature_set_of,
    png_markdown,
    read_modelling_rows,
    table_value,
    warehouse_connection,
    write_figures,
)
from leadscore_assets.assets.inputs import Reads, StagedTable
from leadscore_assets.assets.specs import asset_kwargs, step_tags
from leadscore_assets.assets.tables import (
    CANDIDATE_MODELS,
    EVALUATION_REPORT,
    FEATURES,
    FEATURE_SCHEMA,
    VALIDATED_CONTACTS,
)
from leadscore_assets.lib.modelling.blend import BLEND
from leadscore_assets.lib.evaluation.challenger import ChallengerEvaluation, evaluate_challenger
from leadscore_assets.lib.project.config import ProjectConfig
from leadscore_assets.lib.evaluation.metrics import selection_score
from leadscore_assets.lib.features.frame import SPLIT
from leadscore_assets.lib.modelling.families import FAMILIES
from leadscore_assets.lib.modelling.training import (
    JudgedCandidate,
    choose_candidate,
    fit_and_judge_blend,
    fit_splits,
    judge_candidates,
    selection_method,
    split_xy,
)
from leadscore_assets.lib.evaluation.targets import (
    compare_targets,
    measured_figures,
    targets_markdown,
    targets_met,
)
from leadscore_assets.lib.modelling.tuning import finished_trials, history_plots
from leadscore_assets.resources.mlflow_store import MlflowStore
from leadscore_assets.resources.storage import LeadscoreStorage, write_files
from leadscore_assets.resources.warehouse import Warehouse
from leadscore_assets.lib.project.sql_rules import identifier



def data_window(validated_contacts: StagedTable, config: ProjectConfig) -> dict:
    """The time span of the validated rows (for the model card), when the source has a time column."""
    time_col = config.split.time_column
    if not time_col:
        return {"column": "row order"}
    lo, hi = validated_contacts.read(f"min({identifier(time_col)}), max({identifier(time_col)})").iloc[0]
    return {"column": time_col, "start": str(lo), "end": str(hi)}


HEADLINE_METRICS = ("roc_auc", "pr_auc", "top20_capture")  # first on the evaluation_report page


def train_candidates(config: ProjectConfig, frame: pd.DataFrame, fs, method: str, mlflow_store: MlflowStore,
                     storage: LeadscoreStorage) -> list:
    """Each configured candidate fitted and judged (two at a time on small tables; the tunable ones
    share the project's search budget, lib/modelling/training.judge_candidates), then the blend of
    them all when the project blends; each logged as its own MLflow run, in the configured order.
    (row, search markdown, judged) per candidate."""
    judged = judge_candidates(config.models.candidates, frame, fs, config, method)
    blend = fit_and_judge_blend(judged, frame, fs, config, method) if config.models.blend else None
    if blend is not None:
        judged[BLEND] = blend
    return [track_candidate(name, j, frame, fs, config, method, mlflow_store, storage) for name, j in judged.items()]


def leaderboard_page(config: ProjectConfig, results: pd.DataFrame, method: str, judged_on: str, search_md: list[str],
                     mlflow_store: MlflowStore) -> dict:
    """What the candidate_models page shows: the chosen and best candidates, the leaderboard, the searches."""
    shown = results[["candidate", "chosen", "selection_score", "validation_roc_auc", "validation_pr_auc",
                     "validation_brier", "search_trials", "train_seconds"]]
    return {
        "best_candidate": str(results.candidate.iloc[0]),
        "chosen_candidate": str(results.candidate[results.chosen].iloc[0]),
        "chosen_because": ("best out-of-fold CV score" if method == "cv" else "best validation score"),
        "best_validation_score": round(float(results.selection_score.iloc[0]), 4),
        "judged_on": judged_on,
        "leaderboard": dg.MetadataValue.md(shown.round(4).to_markdown(index=False)),
        "search_history": dg.MetadataValue.md("\n\n".join(search_md) or "_no search configured_"),
        "training_seconds_total": round(float(results.train_seconds.sum()), 1),
        "mlflow_experiment": dg.MetadataValue.url(mlflow_store.experiment_url(config.name)),
    }


def evaluation_metadata(ev: ChallengerEvaluation, config: ProjectConfig, mlflow_store: MlflowStore,
                        run_id: str, out) -> dict:
    """What the evaluation_report asset page shows, in the order a person reads it (Dagster keeps
    the insertion order): the headline figures, all plots and the model card one "Show Markdown"
    away, each plot as a link that opens its picture in MLflow (the artifact view previews the PNG
    the run logged under `evaluation/`; a folder link only said "Select a file to preview"), then
    the details. Figures rounded to 4 places."""
    def artifact(name: str) -> dg.MetadataValue:
        return dg.MetadataValue.url(mlflow_store.run_url(config.name, run_id, f"evaluation/{name}"))

    targets = compare_targets(config.targets, measured_figures(ev.metrics, {}))
    return {
        "chosen_model": ev.candidate,
        **{f"test_{k}": dg.MetadataValue.float(round(float(ev.metrics[k]), 4)) for k in HEADLINE_METRICS},
        "threshold": round(float(ev.final.threshold.threshold), 4),
        **({"targets": dg.MetadataValue.md(targets_markdown(targets, config.targets)),
            "targets_met": targets_met(targets)} if config.targets else {}),
        "plots": dg.MetadataValue.md(png_markdown(ev.pngs)),  # rendered once by `ev.files()`, written before
        "model_card": dg.MetadataValue.md(ev.card),
        **{f"{name}_plot": artifact(f"{name}.png") for name in ev.figures},
        "model_card_in_mlflow": artifact("model_card.md"),
        "mlflow_run": dg.MetadataValue.url(mlflow_store.run_url(config.name, run_id)),
        **{f"test_{k}": dg.MetadataValue.float(round(float(v), 4))
           for k, v in ev.metrics.items() if k not in HEADLINE_METRICS},
        **{f"test_{k}_95ci": dg.MetadataValue.text(f"{lo:.4f} - {hi:.4f}") for k, (lo, hi) in ev.intervals.items()},
        "dummy_test_roc_auc": round(float(ev.dummy_test_roc_auc), 4),
        "calibration": ev.final.calibration.method,
        "test_brier_uncalibrated": round(float(ev.calibration["test_brier_before"]), 4),
        "threshold_policy": ev.final.threshold.policy,
        "threshold_precision_recall": dg.MetadataValue.json(ev.threshold),
        "lift_by_decile": table_value(ev.lift_by_decile),
        "shap_mean_abs": table_value(ev.shap_mean_abs),
        "report_dir": dg.MetadataValue.path(str(out)),
    }


def track_candidate(name: str, judged: JudgedCandidate, frame: pd.DataFrame, fs, config: ProjectConfig, method: str,
                    mlflow_store: MlflowStore, storage: LeadscoreStorage) -> tuple[dict, str | None, JudgedCandidate]:
    """One fitted and judged candidate logged as its own MLflow run, its search trials nested
    under it: its leaderboard row, its search history as markdown when a search ran, and the
    judged candidate. Logging happens here, after the fits, so the fits may run on threads while
    MLflow and matplotlib stay on this one."""
    split_rows = frame[SPLIT].value_counts().to_dict()
    search_md = None
    with mlflow_store.run(config.name, name, role="candidate", tags={"leadscore.candidate": name}) as run:
        if judged.candidate.tuning is not None:
            for number, params, state, cv_score in finished_trials(judged.candidate.tuning):
                with mlflow_store.nested_run(f"{name} trial {number}", tags={"leadscore.role": "search_trial"}):
                    mlflow_store.log_params(params)
                    mlflow_store.set_tag("optuna.state", state)
                    if cv_score is not None:
                        mlflow_store.log_metrics({"cv_score": cv_score})
        cand, metrics = judged.candidate, judged.metrics
        mlflow_store.log_params({"candidate": name, "features": ",".join(fs.columns), "selection": method,
                           "selection_metric": config.models.selection_metric,
                           **{f"rows_{k}": int(v) for k, v in split_rows.items()}, **cand.params})
        mlflow_store.log_metrics({f"validation_{k}": v for k, v in metrics.items() if np.isfinite(v)})
        if cand.tuning is not None:
            mlflow_store.log_metrics({"search_best_cv_score": cand.tuning.best_value})
            plots = history_plots(cand.tuning)
            out = storage.report_dir(config.name, "search", name)
            pngs = write_figures(plots, out, mlflow_store, "search")  # each plot rendered once
            trials = cand.tuning.trials
            search_md = (f"### {name}: {len(trials)} trials, {int((trials.state == 'PRUNED').sum())} pruned, "
                         f"best CV {cand.tuning.best_value:.4f}\n\n{png_markdown(pngs)}")
        model_uri = mlflow_store.log_classifier(cand.pipeline, split_xy(frame, fs, *fit_splits(method))[0])
    row = {"candidate": name, "run_id": run.info.run_id, "model_uri": model_uri, "selection_method": method,
           "selection_score": selection_score(metrics, config.models.selection_metric),
           "fold_scores": json.dumps([round(f, 6) for f in judged.fold_scores]),
           "train_seconds": judged.train_seconds, "search_seconds": judged.search_seconds,
           "search_trials": 0 if cand.tuning is None else len(cand.tuning.trials),
           **{f"validation_{k}": v for k, v in metrics.items()}}
    return row, search_md, judged


def build(config: ProjectConfig) -> list:
    search = config.models.search

    budget = config.models.time_budget_s

    @check("search_within_budget",
           description=f"The tuned candidates' searches stayed within their shared {budget} s budget, each within "
                       f"its {search.timeout_s} s cap (plus the trial in progress when time ran out).")
    def search_within_budget(warehouse: Warehouse) -> dg.AssetCheckResult:
        with warehouse_connection(warehouse, config) as conn:
            spent = dict(conn.execute(f"SELECT candidate, search_seconds FROM {CANDIDATE_MODELS.of(config)}").fetchall())
        cap = None if search.timeout_s is None else search.timeout_s * 1.5
        over = {k: round(v, 1) for k, v in spent.items() if cap is not None and v > cap}
        if budget is not None and sum(spent.values()) > budget * 1.5:
            over["all searches"] = round(sum(spent.values()), 1)
        return dg.AssetCheckResult(passed=not over, severity=dg.AssetCheckSeverity.WARN,
                                   metadata={"search_seconds": dg.MetadataValue.json({k: round(v, 1) for k, v in spent.items()}),
                                             "budget_s": budget or 0, "cap_s": search.timeout_s or 0,
                                             "over_budget": dg.MetadataValue.json(over)})

    @check("beats_dummy_baseline", blocking=True, description="The selected model's test ROC-AUC beats the dummy baseline's.")
    def beats_dummy_baseline(warehouse: Warehouse) -> dg.AssetCheckResult:
        with warehouse_connection(warehouse, config) as conn:
            auc, dummy_auc = conn.execute(
                f"SELECT test_roc_auc, dummy_test_roc_auc FROM {EVALUATION_REPORT.of(config)}"
            ).fetchall()[0]
        return dg.AssetCheckResult(passed=bool(auc > dummy_auc), metadata={"test_roc_auc": auc, "dummy_test_roc_auc": dummy_auc})

    candidate_reads = Reads(config, features=FEATURES, feature_schema=FEATURE_SCHEMA)

    @dg.asset(
        op_tags=step_tags(config),
        check_specs=check_specs(CANDIDATE_MODELS.key(config), [search_within_budget]),
        ins=candidate_reads.ins,
        **asset_kwargs(
            config, "candidate_models", "models",
            "Every configured candidate fitted on the training split (after an Optuna search when the "
            "project sets a budget) and scored on validation; each an MLflow run, trials nested under it.",
            {"scikitlearn", "optuna", "mlflow", *(k for c in config.models.candidates for k in FAMILIES[c].kinds)},
        ),
    )
    def candidate_models(
        context: dg.AssetExecutionContext, warehouse: Warehouse, mlflow_store: MlflowStore,
        storage: LeadscoreStorage, features: StagedTable, feature_schema: StagedTable,
    ) -> dg.MaterializeResult:
        (frame, modelling_rows), fs = read_modelling_rows(features, config), feature_set_of(feature_schema)
        method = selection_method(frame, config)
        x_fit, y_fit = split_xy(frame, fs, *fit_splits(method))
        x_val, y_val = split_xy(frame, fs, "validation")
        judged_on = (f"{config.models.cv_folds}-fold CV over train + validation ({int(y_fit.sum())} positives)"
                     if method == "cv" else f"the validation split ({int(y_val.sum())} positives)")
        context.log.info(f"candidates judged on {judged_on}")
        tracked = train_candidates(config, frame, fs, method, mlflow_store, storage)
        rows, search_md = [row for row, _, _ in tracked], [md for _, md, _ in tracked if md]
        for row in rows:
            context.log.info(f"{row['candidate']}: {config.models.selection_metric} = {row['selection_score']:.4f}")
        results = pd.DataFrame(rows).sort_values("selection_score", ascending=False, kind="stable")
        results["chosen"] = results.candidate == choose_candidate(results)
        with warehouse_connection(warehouse, config) as conn:
            CANDIDATE_MODELS.write(conn, config, results)
        return dg.MaterializeResult(
            metadata={**leaderboard_page(config, results, method, judged_on, search_md, mlflow_store),
                      "modelling_rows": modelling_rows},
            check_results=check_results(warehouse, CANDIDATE_MODELS.key(config), [search_within_budget]),
        )

    evaluation_reads = Reads(config, candidate_models=CANDIDATE_MODELS, features=FEATURES, feature_schema=FEATURE_SCHEMA,
                             validated_contacts=VALIDATED_CONTACTS)

    @dg.asset(
        op_tags=step_tags(config),
        check_specs=check_specs(EVALUATION_REPORT.key(config), [beats_dummy_baseline]),
        ins=evaluation_reads.ins,
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
        storage: LeadscoreStorage, candidate_models: StagedTable, features: StagedTable, feature_schema: StagedTable,
        validated_contacts: StagedTable,
    ) -> dg.MaterializeResult:
        (frame, modelling_rows), fs = read_modelling_rows(features, config), feature_set_of(feature_schema)
        cands = candidate_models.read(where="ORDER BY selection_score DESC")
        window = data_window(validated_contacts, config)
        best, dummy = cands[cands.chosen].iloc[0], cands[cands.candidate == "dummy"].iloc[0]
        ev = evaluate_challenger(str(best.candidate), mlflow_store.load_model(best.model_uri),
                                 mlflow_store.load_model(dummy.model_uri), frame, fs, config,
                                 str(best.selection_method), window, version_hint=f"run {context.run_id[:8]}")
        final, metrics = ev.final, ev.metrics
        out = storage.report_dir(config.name, "evaluation", context.run_id)
        write_files(out, ev.files())
        with mlflow_store.run(config.name, f"evaluation: {best.candidate}", role="evaluation",
                              tags={"leadscore.candidate": str(best.candidate)}) as run:
            mlflow_store.log_params({"candidate": best.candidate, "source_run_id": best.run_id,
                               "calibration": final.calibration.method, "threshold_policy": final.threshold.policy,
                               "threshold": round(final.threshold.threshold, 6), "features": ",".join(fs.columns)})
            mlflow_store.log_metrics({f"test_{k}": v for k, v in metrics.items() if np.isfinite(v)})
            mlflow_store.log_metrics({f"test_{k}_ci_{end}": v[i] for k, v in ev.intervals.items()
                                for i, end in enumerate(("low", "high"))})
            mlflow_store.log_artifacts(out, artifact_path="evaluation")
            model_uri = mlflow_store.log_classifier(final.model, final.fit_rows)
        row = {"candidate": best.candidate, "run_id": run.info.run_id, "model_uri": model_uri,
               "selection_method": str(best.selection_method), "selection_roc_auc": float(best.validation_roc_auc),
               "source_run_id": best.run_id, "calibration": final.calibration.method,
               "threshold": final.threshold.threshold, "threshold_policy": final.threshold.policy,
               "dummy_test_roc_auc": ev.dummy_test_roc_auc, **{f"test_{k}": v for k, v in metrics.items()}}
        with warehouse_connection(warehouse, config) as conn:
            EVALUATION_REPORT.write(conn, config, pd.DataFrame([row]))
        metadata = {**evaluation_metadata(ev, config, mlflow_store, run.info.run_id, out), "modelling_rows": modelling_rows}
        ev.close_figures()
        return dg.MaterializeResult(
            metadata=metadata, check_results=check_results(warehouse, EVALUATION_REPORT.key(config), [beats_dummy_baseline]))

    return [candidate_models, evaluation_report]
