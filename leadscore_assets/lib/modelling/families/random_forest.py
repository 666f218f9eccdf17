"""A depth-capped random forest. Its trees hold class probabilities, so SHAP explains it in
probability and it does not join the log-odds blend; not in the default set."""

from __future__ import annotations

from leadscore_assets.lib.modelling.families import PROBABILITY, ModelFamily


def make(y_train, seed: int, threads: int):
    from sklearn.ensemble import RandomForestClassifier

    # Depth-capped: uncapped forests on tens of thousands of rows make per-lead SHAP minutes slow.
    return RandomForestClassifier(
        n_estimators=200, max_depth=10, min_samples_leaf=10, class_weight="balanced_subsample", n_jobs=threads,
        random_state=seed,
    )



FAMILY = ModelFamily(
    name="random_forest", make=make, estimator_class="sklearn.ensemble.RandomForestClassifier", simplicity=50,
    explainer="tree", output=PROBABILITY,
    unweighted={"class_weight": None}, threads_param="n_jobs",
)
