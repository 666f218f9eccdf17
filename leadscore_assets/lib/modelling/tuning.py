"""Hyperparameter search with Optuna, scored by stratified K-fold CV on the training split only.

Each family's fixed parameters (lib/model_families) are a sensible start, not the best for every
source; its search space and first trial live with it. Tuning here never sees the validation or
test split (they stay for model selection and the final report), and imbalance handling - class
weights or SMOTE - is rebuilt inside every fold, so no resampled or re-weighted row ever reaches
a validation fold. Poor trials are pruned on the
running mean of their fold scores; a seeded sampler, seeded folds and seeded estimators make a
search repeatable. Trial-by-trial reporting goes through `on_trial`, so this module stays free of
MLflow.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import optuna
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import get_scorer
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline

from leadscore_assets.lib.modelling.families import FAMILIES, family

try:  # imbalanced-learn is only needed for imbalance="smote"
    from imblearn.over_sampling import SMOTE
    from imblearn.pipeline import Pipeline as ResamplingPipeline

    _IMBLEARN_ERROR: Exception | None = None
except Exception as exc:  # pragma: no cover - depends on the environment
    SMOTE = ResamplingPipeline = None
    _IMBLEARN_ERROR = exc

# Optuna logs one INFO line per trial; the caller reports trials through `on_trial` instead.
optuna.logging.set_verbosity(optuna.logging.WARNING)

IMBALANCE_STRATEGIES = ("class_weight", "smote", "none")
FINISHED_STATES = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


@dataclass
class TuningResult:
    name: str
    best_params: dict
    best_value: float  # mean CV score of the best trial
    trials: pd.DataFrame  # number, value, state, folds_scored, params_<name>..., duration_s
    study: optuna.Study


def finished_trials(result: TuningResult) -> list[tuple[int, dict, str, float | None]]:
    """The search's completed and pruned trials as plain values, for logging without Optuna:
    (number, params, state name, mean CV score, or None for a pruned trial)."""
    return [(t.number, dict(t.params), t.state.name, t.value if t.state == optuna.trial.TrialState.COMPLETE else None)
            for t in result.study.get_trials(deepcopy=False, states=FINISHED_STATES)]


def build_model(
    name: str,
    params: dict,
    preprocess,
    y_train: np.ndarray,
    seed: int,
    imbalance: str = "class_weight",
    *,
    n_jobs: int | None = None,
):
    """One unfitted model: preprocessing, optional SMOTE, then the estimator with `params` applied.

    `y_train` must be the labels the model will be fitted on (a CV fold's training part when
    tuning): class weights (xgboost's scale_pos_weight) and SMOTE's neighbour count are computed from it.
    Under "smote" and "none" class weighting is switched off, even if `params` sets it:
      class_weight - the family's weighting (class_weight='balanced', scale_pos_weight = neg/pos)
      smote        - no weights; imblearn Pipeline oversamples the minority class when fitting only
      none         - no weights, no resampling
    `n_jobs` overrides the estimator's thread count where the family uses threads (its default is
    2 from model_families.THREADED_FROM_ROWS rows); 1 is the safe choice on a busy machine, where
    OpenMP threads of the boosted families can stall waiting for a core.
    """
    if imbalance not in IMBALANCE_STRATEGIES:
        raise ValueError(f"imbalance must be one of {IMBALANCE_STRATEGIES}, got {imbalance!r}")
    y_train = np.asarray(y_train).astype(int)
    estimator = family(name).estimator(y_train, seed, params, threads=n_jobs, weighted=imbalance == "class_weight")
    if imbalance != "smote":
        return Pipeline([("preprocess", preprocess), ("model", estimator)])
    if _IMBLEARN_ERROR is not None:
        raise RuntimeError(
            "imbalance='smote' needs imbalanced-learn importable alongside this scikit-learn; "
            f"importing it failed: {_IMBLEARN_ERROR!r}. Use imbalance='class_weight' instead."
        )
    minority = int(min(np.bincount(y_train, minlength=2)))
    if minority < 2:
        raise ValueError(f"SMOTE needs at least 2 minority-class rows to interpolate between, got {minority}")
    sampler = SMOTE(random_state=seed, k_neighbors=min(5, minority - 1))
    return ResamplingPipeline([("preprocess", preprocess), ("smote", sampler), ("model", estimator)])


# Folds of at most this many rows are encoded once per search rather than once per trial (the
# preprocessing does not depend on a trial's parameters; encoded folds are kept in memory).
ENCODE_ONCE_MAX_ROWS = 100_000


class EncodedFolds:
    """A search's CV folds, each encoded once: the preprocessor fitted on the fold's training rows
    (fit_transform, as a Pipeline fits it, so target encoding stays cross-fitted) and applied to
    its held-out rows, on the fold's first use. Every trial then fits only its estimator: on the
    20,000-lead export, re-encoding the categoricals was 40% of a boosted model's search. Above
    ENCODE_ONCE_MAX_ROWS rows each trial encodes its own folds, as the memory would not be bounded."""

    def __init__(self, x: pd.DataFrame, y: np.ndarray, folds: list, preprocess_factory: Callable[[], object]):
        self._x, self._y, self._folds, self._factory = x, y, folds, preprocess_factory
        self._once = len(x) <= ENCODE_ONCE_MAX_ROWS
        self._encoded: dict[int, tuple] = {}

    def get(self, step: int) -> tuple[tuple, object]:
        """((rows to fit on, held-out rows), the preprocess step a model on them needs)."""
        fit_rows, val_rows = self._folds[step]
        if not self._once:
            return (self._x.iloc[fit_rows], self._x.iloc[val_rows]), self._factory()
        if step not in self._encoded:
            preprocess = self._factory()
            x_fit = preprocess.fit_transform(self._x.iloc[fit_rows], self._y[fit_rows])
            self._encoded[step] = (x_fit, preprocess.transform(self._x.iloc[val_rows]))
        return self._encoded[step], "passthrough"


def tune(
    name: str,
    x_train: pd.DataFrame,
    y_train: np.ndarray,
    preprocess_factory: Callable[[], object],
    *,
    n_trials: int,
    timeout_s: float | None,
    seed: int,
    cv_folds: int = 3,
    scoring: str = "roc_auc",
    imbalance: str = "class_weight",
    on_trial: Callable[[int, dict, float | None, str], None] | None = None,
    pruner_startup_trials: int = 5,
    pruner_warmup_folds: int = 0,
    n_jobs: int | None = 1,
    stop_after: Callable[[float], bool] | None = None,
) -> TuningResult:
    """Search `name`'s hyperparameters, maximising the mean `scoring` over stratified CV folds.

    `preprocess_factory` returns a fresh unfitted preprocessor (e.g. `lambda: preprocessor(fs, config)`);
    one is built per fold. After each fold the running mean is reported and a trial below the median
    of earlier trials at that fold is pruned (never before `pruner_startup_trials` trials have
    finished, never on the last fold, whose score is already paid for). `on_trial(number, params,
    value_or_None, state)` is called after every finished trial. With `timeout_s=None` and a fixed
    seed two runs give identical trials; `timeout_s` stops the study after the trial in progress,
    and so does `stop_after(seconds_searched)` returning True when asked after each trial (a limit
    that moves while the search runs: a budget shared with searches running beside it).
    Trials run one at a time and, by default, each estimator on one thread: CV fits on a few
    thousand rows gain little from a second thread, and on a busy 2-core machine xgboost's
    2-thread fits were seen to stall 10-50x; `n_jobs=None` keeps the family's own thread count.
    """
    fam = family(name)
    if not fam.tunable:
        tunable = ", ".join(n for n, f in FAMILIES.items() if f.tunable)
        raise ValueError(f"{name!r} is not tuned (tunable: {tunable}); train it with its fixed parameters")
    if imbalance not in IMBALANCE_STRATEGIES:
        raise ValueError(f"imbalance must be one of {IMBALANCE_STRATEGIES}, got {imbalance!r}")
    if n_trials < 1:
        raise ValueError(f"n_trials must be at least 1, got {n_trials}")
    if cv_folds < 2:
        raise ValueError(f"cv_folds must be at least 2, got {cv_folds}")
    y = np.asarray(y_train).astype(int)
    x = x_train.reset_index(drop=True)
    if len(x) != len(y):
        raise ValueError(f"x_train has {len(x)} rows but y_train has {len(y)} labels")
    class_counts = np.bincount(y, minlength=2)
    if len(class_counts) != 2 or class_counts.min() < cv_folds:
        raise ValueError(
            f"stratified {cv_folds}-fold CV needs both classes 0/1 with at least {cv_folds} rows each; "
            f"label counts are {class_counts.tolist()}"
        )
    if imbalance == "smote":
        build_model(name, {}, preprocess_factory(), y, seed, imbalance, n_jobs=n_jobs)  # fail before any trial

    folds = list(StratifiedKFold(n_splits=cv_folds, shuffle=True, random_state=seed).split(x, y))
    scorer = get_scorer(scoring)
    fold_rows = EncodedFolds(x, y, folds, preprocess_factory)

    def objective(trial: optuna.Trial) -> float:
        params = fam.search_space(trial)
        fold_scores: list[float] = []
        for step, (fit_rows, val_rows) in enumerate(folds):
            (x_fit, x_val), preprocess = fold_rows.get(step)
            model = build_model(name, params, preprocess, y[fit_rows], seed, imbalance, n_jobs=n_jobs)
            model.fit(x_fit, y[fit_rows])
            fold_scores.append(float(scorer(model, x_val, y[val_rows])))
            running_mean = float(np.mean(fold_scores))
            trial.set_user_attr("fold_scores", list(fold_scores))
            trial.report(running_mean, step)
            if step < len(folds) - 1 and trial.should_prune():
                raise optuna.TrialPruned(f"running mean {running_mean:.4f} after fold {step + 1} is below the median")
        return running_mean

    study = optuna.create_study(
        study_name=f"tune-{name}",
        direction="maximize",  # sklearn scorers are greater-is-better (losses are neg_*)
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=pruner_startup_trials, n_warmup_steps=pruner_warmup_folds),
    )
    study.enqueue_trial(fam.first_trial)  # the family's fixed defaults: a search only improves on them
    study.set_user_attr("scoring", scoring)
    study.set_user_attr("imbalance", imbalance)
    study.set_user_attr("cv_folds", cv_folds)
    callbacks = []
    if on_trial is not None:

        def report_trial(_study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            complete = trial.state == optuna.trial.TrialState.COMPLETE
            on_trial(trial.number, dict(trial.params), trial.value if complete else None, trial.state.name)

        callbacks.append(report_trial)
    if stop_after is not None:
        started = time.perf_counter()

        def stop_when_told(_study: optuna.Study, _trial: optuna.trial.FrozenTrial) -> None:
            if stop_after(time.perf_counter() - started):
                _study.stop()

        callbacks.append(stop_when_told)
    study.optimize(objective, n_trials=n_trials, timeout=timeout_s, n_jobs=1, callbacks=callbacks)
    best = study.best_trial  # the first trial cannot be pruned, so there is always one complete trial
    return TuningResult(
        name=name, best_params=dict(best.params), best_value=float(best.value), trials=trials_frame(study), study=study
    )


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per finished trial; `value` is NaN for pruned trials (see folds_scored)."""
    rows = []
    for trial in study.get_trials(deepcopy=False, states=FINISHED_STATES):
        complete = trial.state == optuna.trial.TrialState.COMPLETE
        duration = trial.duration.total_seconds() if trial.duration is not None else np.nan
        rows.append(
            {
                "number": trial.number,
                "value": trial.value if complete else np.nan,
                "state": trial.state.name,
                "folds_scored": len(trial.user_attrs.get("fold_scores", [])),
                **{f"params_{key}": value for key, value in trial.params.items()},
                "duration_s": duration,
            }
        )
    frame = pd.DataFrame(rows)
    if len(frame):  # keep duration_s last even when later trials add columns
        frame = frame[[c for c in frame.columns if c != "duration_s"] + ["duration_s"]]
    return frame


def history_plots(result: TuningResult) -> dict[str, Figure]:
    """Optimisation history and parameter importances as matplotlib figures.

    Optuna's plotting switches pyplot to its ggplot style globally; that is undone here, and the
    figures are detached from pyplot (closed there, still savefig-able) so repeated tuning runs do
    not pile up open figures.
    """
    target_name = f"mean CV {result.study.user_attrs.get('scoring', 'score')}"
    figures = {}
    with matplotlib.rc_context(), warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        ax = optuna.visualization.matplotlib.plot_optimization_history(result.study, target_name=target_name)
        ax.set_title(f"Optimisation history - {result.name}")
        figures["optimisation_history"] = ax.figure
        figures["param_importances"] = _param_importance_figure(result, target_name)
    for figure in figures.values():
        figure.set_layout_engine("tight")
        plt.close(figure)
    return figures


def _param_importance_figure(result: TuningResult, target_name: str) -> Figure:
    complete = result.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(complete) < 2:
        return _best_params_figure(result, f"{len(complete)} complete trial(s); importances need at least 2")
    if len(result.best_params) < 2:
        return _best_params_figure(result, "a single tuned parameter; nothing to rank")
    open_before = set(plt.get_fignums())
    try:
        ax = optuna.visualization.matplotlib.plot_param_importances(result.study, target_name=target_name)
    except (ValueError, RuntimeError, ZeroDivisionError) as exc:
        for number in set(plt.get_fignums()) - open_before:  # a half-drawn figure from the failed plot
            plt.close(number)
        return _best_params_figure(result, f"importances could not be computed: {exc}")
    ax.set_title(f"Parameter importances - {result.name}", loc="left")
    return ax.figure


def _best_params_figure(result: TuningResult, reason: str) -> Figure:
    """Fallback: the best trial's parameters as text, with why importances are missing."""
    fig, ax = plt.subplots(figsize=(5, 0.3 * len(result.best_params) + 1.5), dpi=80)
    ax.axis("off")
    lines = [f"{key} = {value:.4g}" if isinstance(value, float) else f"{key} = {value}"
             for key, value in result.best_params.items()]
    text = "\n".join(["best parameters:", *lines])
    ax.text(0.0, 1.0, text, va="top", ha="left", family="monospace", transform=ax.transAxes)
    ax.set_title(f"Parameter importances - {result.name}\n({reason})", fontsize=9)
    return fig
