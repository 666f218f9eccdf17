"""AutoML peers for benchmarks/real_tables.py: AutoGluon and FLAML on one split's rows.

    .venv-bench/bin/python benchmarks/automl_peers.py WORK_DIR --label NAME --budget SECONDS [--seed N]

WORK_DIR holds `train.parquet` (the split's train + validation rows) and `test.parquet` (its
test rows), written by real_tables.py: the table's ORIGINAL columns (id, label and excluded
columns dropped) plus the label column as 0/1. Each peer gets `--budget` seconds (real_tables.py
passes the wall time of that split's whole leadscore pipeline run) and its defaults:
- AutoGluon: `TabularPredictor(label, eval_metric="roc_auc").fit(train, time_limit=budget)`,
  default preset, models written under WORK_DIR/autogluon and deleted afterwards;
- FLAML: `AutoML().fit(X, y, task="classification", metric="roc_auc", time_budget=budget)`.
Each is timed on its own and a failure of one is caught and reported, never fatal. Writes
WORK_DIR/peers.json: {"autogluon": {"auc", "capture", "fit_seconds", ...}, "flaml": {...}}
(an "error" key instead of the scores when a peer failed). capture = share of the test
positives found in the top 20% of test rows by score (as real_tables.top_share_capture).

Why a separate venv (.venv-bench, built by scripts/bench_env.sh) and no `bench` extra in
pyproject.toml: FLAML's [automl] extra requires xgboost<3.0 while the project pins
xgboost>=3.2.0,<3.3, so pip cannot resolve both in one environment (ResolutionImpossible,
checked with FLAML 2.8.0). AutoGluon 1.6 alone would fit the pins, but its gradient-boosting
models want their own version bounds too, and the peers must not change what the product is
tested with. This script therefore imports nothing from leadscore and talks to real_tables.py
only through files.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
import traceback
import warnings
from pathlib import Path

TOP_SHARE = 0.20


def top_share_capture(y, score, share: float = TOP_SHARE) -> float:
    """Share of all positives found in the top `share` of rows by score (ties broken by row order)."""
    import numpy as np

    y, score = np.asarray(y).astype(int), np.asarray(score, dtype=float)
    if len(y) == 0 or y.sum() == 0:
        return float("nan")
    k = max(1, int(round(share * len(y))))
    order = np.argsort(-score, kind="stable")
    return float(y[order[:k]].sum() / y.sum())


def scores(y, p) -> dict:
    from sklearn.metrics import roc_auc_score

    return {"auc": float(roc_auc_score(y, p)), "capture": top_share_capture(y, p)}


def fit_autogluon(train, test, label: str, budget: float, work: Path) -> dict:
    from autogluon.tabular import TabularPredictor

    path = work / "autogluon"
    try:
        started = time.perf_counter()
        predictor = TabularPredictor(label=label, eval_metric="roc_auc", path=str(path), verbosity=0)
        predictor.fit(train, time_limit=budget)
        fit_seconds = time.perf_counter() - started
        proba = predictor.predict_proba(test.drop(columns=[label]))
        p = proba[predictor.positive_class] if predictor.positive_class in proba.columns else proba.iloc[:, -1]
        return {**scores(test[label], p.to_numpy()), "fit_seconds": fit_seconds,
                "best_model": str(predictor.model_best),
                "models": len(predictor.model_names()), "predict_seconds": time.perf_counter() - started - fit_seconds}
    finally:
        shutil.rmtree(path, ignore_errors=True)


def fit_flaml(train, test, label: str, budget: float, seed: int, work: Path) -> dict:
    from flaml import AutoML

    x, y = train.drop(columns=[label]), train[label].to_numpy()
    started = time.perf_counter()
    automl = AutoML()
    automl.fit(x, y, task="classification", metric="roc_auc", time_budget=budget, seed=seed, verbose=0,
               log_file_name=str(work / "flaml.log"))
    fit_seconds = time.perf_counter() - started
    p = automl.predict_proba(test.drop(columns=[label]))[:, 1]
    (work / "flaml.log").unlink(missing_ok=True)
    return {**scores(test[label], p), "fit_seconds": fit_seconds, "best_model": str(automl.best_estimator),
            "predict_seconds": time.perf_counter() - started - fit_seconds}


def json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work_dir", type=Path)
    parser.add_argument("--label", required=True, help="label column in both parquet files (0/1)")
    parser.add_argument("--budget", type=float, required=True, help="time budget per peer, seconds")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    import logging

    import pandas as pd

    for name in ("autogluon", "flaml", "lightgbm", "xgboost", "catboost"):
        logging.getLogger(name).setLevel(logging.ERROR)

    work = args.work_dir.resolve()
    train, test = pd.read_parquet(work / "train.parquet"), pd.read_parquet(work / "test.parquet")
    for frame in (train, test):
        frame[args.label] = frame[args.label].astype(int)
    budget = max(10.0, float(args.budget))
    out: dict = {"budget_seconds": budget, "train_rows": len(train), "test_rows": len(test)}
    for name, fit in (("autogluon", lambda: fit_autogluon(train, test, args.label, budget, work)),
                      ("flaml", lambda: fit_flaml(train, test, args.label, budget, args.seed, work))):
        started = time.perf_counter()
        try:
            out[name] = fit()
        except Exception as err:  # one failed peer must not hide the other
            out[name] = {"error": f"{type(err).__name__}: {err}", "fit_seconds": time.perf_counter() - started,
                         "traceback": traceback.format_exc(limit=6)}
        print(f"{name}: {json.dumps(json_safe({k: v for k, v in out[name].items() if k != 'traceback'}))}",
              file=sys.stderr, flush=True)
    (work / "peers.json").write_text(json.dumps(json_safe(out), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
