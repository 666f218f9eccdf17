"""The challenger's evaluation, once, on the untouched test split: what `evaluation_report` shows.

Takes the chosen candidate's fitted pipeline and returns a typed result: the calibrated model and
its threshold, test metrics with bootstrap intervals, the dummy baseline, SHAP
importance, lift, plots and a model card. No I/O: `files()` gives the report files' contents;
the asset writes them, MLflow and the warehouse row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import matplotlib.pyplot as plt
import pandas as pd

from leadscore_assets.lib.modelling.calibration import reliability_plot
from leadscore_assets.lib.project.config import ProjectConfig
from leadscore_assets.lib.evaluation.metrics import (
    bootstrap_ci, classification_metrics, confusion, figure_png, lift_table, plot_report,
)
from leadscore_assets.lib.scoring.explain import explain, global_importance, summary_plot
from leadscore_assets.lib.features.frame import SPLIT, FeatureSet
from leadscore_assets.lib.evaluation.model_card import model_card
from leadscore_assets.lib.modelling.calibration import raw_and_calibrated, uncalibrated
from leadscore_assets.lib.scoring.spreadsheet import spreadsheet_csv
from leadscore_assets.lib.modelling.training import FinalModel, finalise, split_xy

EXPLAIN_SAMPLE = 2000  # test rows explained for the global SHAP summary


@dataclass
class ChallengerEvaluation:
    candidate: str
    final: FinalModel  # calibrated model, calibration, threshold, the rows it was fitted on
    metrics: dict[str, float]
    intervals: dict[str, tuple[float, float]]
    dummy_test_roc_auc: float
    calibration: dict
    threshold: dict
    importance: pd.DataFrame
    shap_mean_abs: pd.DataFrame
    lift_by_decile: pd.DataFrame
    confusion_matrix: list
    card: str
    figures: dict = field(default_factory=dict)
    pngs: dict = field(default_factory=dict)  # name -> the PNG bytes `files()` rendered (reused for the page)

    def files(self) -> dict[str, bytes]:
        """Plots, tables, model card and evaluation.json as file name -> content, for the caller to
        write. Each figure is rendered once, its PNG bytes kept in `pngs` for the asset page's
        inline pictures."""
        files = {}
        for name, fig in self.figures.items():
            self.pngs[name] = figure_png(fig)
            files[f"{name}.png"] = self.pngs[name]
        # opened in spreadsheets; feature names carry category values from the source: neutralised
        files["lift_by_decile.csv"] = spreadsheet_csv(self.lift_by_decile).encode("utf-8")
        files["feature_importance.csv"] = spreadsheet_csv(self.importance).encode("utf-8")
        files["shap_mean_abs.csv"] = spreadsheet_csv(self.shap_mean_abs).encode("utf-8")
        files["model_card.md"] = self.card.encode("utf-8")
        report = {"candidate": self.candidate, "test": self.metrics, "intervals": self.intervals,
                  "dummy_test_roc_auc": self.dummy_test_roc_auc, "confusion_matrix": self.confusion_matrix,
                  "calibration": self.calibration, "threshold": self.threshold}
        files["evaluation.json"] = json.dumps(report, indent=2, default=float).encode("utf-8")
        return files

    def close_figures(self) -> None:
        for fig in self.figures.values():
            plt.close(fig)


def evaluate_challenger(
    candidate: str, fitted, dummy, frame: pd.DataFrame, fs: FeatureSet, config: ProjectConfig,
    selection_method: str, data_window: dict, version_hint: str,
) -> ChallengerEvaluation:
    """Calibrate and threshold `fitted` (see training.finalise), then judge it once on test."""
    seed = config.models.seed
    x_test, y_test = split_xy(frame, fs, "test")
    final = finalise(fitted, frame, fs, config, selection_method)
    cal, decision, model = final.calibration, final.threshold, final.model
    p_raw, p = raw_and_calibrated(model, x_test)  # `fitted` and the calibrated model, one prediction
    metrics = classification_metrics(y_test, p, threshold=decision.threshold)
    intervals = bootstrap_ci(y_test, p, seed=seed)
    dummy_auc = classification_metrics(y_test, dummy.predict_proba(x_test)[:, 1])["roc_auc"]

    shap_rows = x_test.sample(min(len(x_test), EXPLAIN_SAMPLE), random_state=seed)
    explanation = explain(uncalibrated(model), shap_rows, fs.columns, background=final.fit_rows, seed=seed)
    # Importance is the mean |SHAP contribution| on test rows: the same numbers the reasons come
    # from, at no extra cost (permutation importance re-scored the model 5x per feature: a third
    # of this step on a 20-feature table, more on wide ones).
    importance = global_importance(explanation).rename(columns={"mean_abs_shap": "importance"})

    figures = plot_report(y_test, p, importance, f"{config.name} / {candidate}")
    figures["reliability"] = reliability_plot(y_test, {"uncalibrated": p_raw, f"calibrated ({cal.method})": p},
                                              f"Reliability - {config.name}")
    figures["shap_summary"] = summary_plot(explanation, shap_rows)
    calibration = {"method": cal.method, "reason": cal.reason, "validation_brier_by_method": cal.brier_by_method,
                   "test_brier_before": float(classification_metrics(y_test, p_raw)["brier"]),
                   "test_brier_after": metrics["brier"]}
    threshold = {"policy": decision.policy, "threshold": decision.threshold, "precision": decision.precision,
                 "recall": decision.recall, "f1": decision.f1, "expected_value": decision.expected_value,
                 "contacted_share": decision.contacted_share}
    card = model_card(
        project=config.name, description=config.description, candidate=candidate,
        version_hint=version_hint, label_rule=config.label.model_dump(), data_window=data_window,
        rows={k: int(v) for k, v in frame[SPLIT].value_counts().items()}, features=fs.columns,
        excluded=sorted({*config.personal_data, *config.features.exclude}),
        metrics=metrics, intervals=intervals, calibration=calibration, threshold=threshold,
        limitations=[
            "Trained on leads the source recorded an outcome for; unlabelled (open) leads are scored only.",
            "Demo-scale data: intervals are wide on small test splits.",
            *(["Split is random, not out-of-time: lift may be overstated."] if not config.split.time_column else []),
            f"Columns typed {'from the data' if not config.columns else 'in the project YAML'}.",
        ],
    )
    return ChallengerEvaluation(
        candidate=candidate, final=final, metrics=metrics, intervals=intervals, dummy_test_roc_auc=dummy_auc,
        calibration=calibration, threshold=threshold, importance=importance,
        shap_mean_abs=global_importance(explanation), lift_by_decile=lift_table(y_test, p),
        confusion_matrix=confusion(y_test, p, decision.threshold).tolist(), card=card, figures=figures,
    )
