"""How close to the Bayes AUC can any model fitted on one LemList export get? The floor of the gap.

    python benchmarks/lemlist_floor.py [--rows 8000] [--seeds 11 12 ... 20]

The Bayes-gap target compares the champion with the generator's true probabilities. Part of any
gap is the sample itself: a model fitted on a few thousand labelled rows cannot know the true
coefficients. This script measures that part with a logistic regression of the generator's
exact functional form (one-hot job title, industry, location, campaign and weekday, plus
log10(company size) and its square; C by 5-fold CV), fitted on the labelled rows of an
out-of-time 80/20 split of each export (done leads only, as the product labels them) and scored
on the newest 20%. Its gap to Bayes on the same test rows is what a correctly specified model
achieves; a champion's gap can only be judged against it. Nothing here is used by the pipeline.
"""

from __future__ import annotations

import argparse
import statistics
import warnings

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegressionCV
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from leadscore_assets.demo_data import linkedin

CATEGORICALS = ["jobTitle", "industry", "location", "campaignName", "weekday"]


def _log_size(a: np.ndarray) -> np.ndarray:
    return np.c_[np.log10(a), np.log10(a) ** 2]


def correctly_specified_model():
    columns = ColumnTransformer([
        ("categories", make_pipeline(SimpleImputer(strategy="constant", fill_value="NA"),
                                     OneHotEncoder(handle_unknown="ignore")), CATEGORICALS),
        ("size", make_pipeline(FunctionTransformer(_log_size), SimpleImputer(strategy="median", add_indicator=True),
                               StandardScaler()), ["size"]),
    ])
    return make_pipeline(columns, LogisticRegressionCV(Cs=10, cv=5, scoring="roc_auc", max_iter=3000))


def labelled_export(rows: int, seed: int) -> pd.DataFrame:
    """Done leads of one export with their label and true probability, oldest first."""
    export, truth = linkedin.generate(rows, seed)
    frame = export.drop_duplicates("_id").merge(truth, on="_id")
    frame = frame[frame["status"].str.strip().str.lower() == "done"].copy()
    frame["y"] = frame["lastState"].isin(linkedin.ENGAGED_STATES).astype(int)
    for col in ("jobTitle", "industry", "location"):
        frame[col] = frame[col].where(frame[col].isna(), frame[col].astype(str).str.strip().str.lower())
    frame["weekday"] = pd.to_datetime(frame["createdAt"]).dt.dayofweek.astype(str)
    frame["size"] = pd.to_numeric(frame["companySize"])
    return frame.sort_values("createdAt")


def floor_for(rows: int, seed: int) -> dict:
    frame = labelled_export(rows, seed)
    cut = int(len(frame) * 0.8)
    train, test = frame.iloc[:cut], frame.iloc[cut:]
    columns = CATEGORICALS + ["size"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = correctly_specified_model().fit(train[columns], train["y"])
    fitted = roc_auc_score(test["y"], model.predict_proba(test[columns])[:, 1])
    bayes = roc_auc_score(test["y"], test["true_probability"])
    return {"seed": seed, "test_rows": len(test), "fitted_auc": fitted, "bayes_auc": bayes, "gap": bayes - fitted}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=8000)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(11, 21)))
    args = parser.parse_args(argv)
    print(f"{'seed':>4}  {'test rows':>9}  {'fitted AUC':>10}  {'Bayes AUC':>9}  {'gap':>7}")
    gaps = []
    for seed in args.seeds:
        r = floor_for(args.rows, seed)
        gaps.append(r["gap"])
        print(f"{r['seed']:>4}  {r['test_rows']:>9}  {r['fitted_auc']:>10.4f}  {r['bayes_auc']:>9.4f}  {r['gap']:>7.4f}")
    print(f"{args.rows:,} contacts: gap of the correctly specified model to Bayes: mean {statistics.mean(gaps):.4f}, "
          f"min {min(gaps):.4f}, max {max(gaps):.4f}, above 0.010 on {sum(g > 0.010 for g in gaps)} of {len(gaps)} exports")


if __name__ == "__main__":
    main()
