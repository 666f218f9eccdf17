"""L2-regularised logistic regression on the scaled, one-hot encoded features; C by inner CV."""

from __future__ import annotations

import numpy as np

from leadscore_assets.lib.modelling.families import ModelFamily

C_GRID = np.logspace(-4, 3, 15)  # half-decade steps: a coarse grid was seen to cost 0.005 AUC
# C is chosen on a stratified sample of at most this many rows (the model is then fitted on all):
# 15 strengths x 5 folds on 283,000 web sessions took 14 s, while with that many rows the L2
# strength barely matters.
CHOOSE_C_ROWS = 50_000


def make(y_train, seed: int, threads: int):
    from sklearn.linear_model import LogisticRegression

    # Its C is chosen by CV on the training rows (choose_c). Not class-weighted: re-weighting a
    # logistic model does not help it rank and was measured to cost ROC-AUC on a real table
    # (0.004 on modeldata/attrition); calibration follows.
    return LogisticRegression(C=1.0, max_iter=2000)


def choose_c(x, y: np.ndarray, preprocess, seed: int) -> dict:
    """The L2 strength, by 5-fold stratified CV on ROC-AUC over the training rows (the same rule
    as the reference a real table is measured against; above CHOOSE_C_ROWS, over a stratified
    sample of them)."""
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import Pipeline

    if len(y) > CHOOSE_C_ROWS:
        from sklearn.model_selection import train_test_split

        keep = np.sort(train_test_split(np.arange(len(y)), train_size=CHOOSE_C_ROWS, stratify=y, random_state=seed)[0])
        x, y = x.iloc[keep], np.asarray(y)[keep]
    folds = int(min(5, max(2, np.bincount(y, minlength=2).min())))
    # l1_ratios=(0,) is the L2 penalty the old default (None) meant; use_legacy_attributes=False
    # makes C_ the chosen C (a float), as it will be from scikit-learn 1.10 on
    search = LogisticRegressionCV(Cs=C_GRID, cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
                                  scoring="roc_auc", max_iter=2000, l1_ratios=(0.0,), use_legacy_attributes=False)
    return {"C": float(Pipeline([("preprocess", preprocess), ("model", search)]).fit(x, y).named_steps["model"].C_)}



FAMILY = ModelFamily(
    name="logistic_regression", make=make, estimator_class="sklearn.linear_model.LogisticRegression", simplicity=10,
    explainer="linear", blendable=True,  # decision_function is the log-odds LinearExplainer explains
    chosen_params=choose_c,  # not tuned by Optuna: C comes from its own inner CV
    unweighted={"class_weight": None},
)
