"""Training is deterministic under a seed, search included, so a rerun reproduces a model."""

import numpy as np

from leadscore_assets.demo_data import linkedin
from leadscore_assets.lib.calibration import calibrate
from leadscore_assets.lib.features import build_feature_frame
from leadscore_assets.lib.labels import label_select_sql
from leadscore_assets.lib.thresholds import choose_threshold
from leadscore_assets.lib.training import split_xy, train_candidate
from leadscore_assets.lib.validation import FILE, ROW, validate


def _frame(config):
    import duckdb

    raw, _ = linkedin.generate(rows=1500, seed=4)
    raw = raw.astype(str).replace({"None": "", "nan": ""})
    raw.insert(0, ROW, range(1, len(raw) + 1))
    raw[FILE] = "export.csv"
    valid = validate(raw, config).valid
    conn = duckdb.connect()
    conn.register("v", valid)
    labels = conn.execute(label_select_sql(config, "v")).df()
    return build_feature_frame(valid, labels, config)


def test_tuned_training_calibration_and_threshold_repeat_exactly(linkedin_config):
    config = linkedin_config.model_copy(update={"models": linkedin_config.models.model_copy(update={
        "search": linkedin_config.models.search.model_copy(update={"n_trials": 4, "timeout_s": None})})})
    frame, fs = _frame(config)
    x_val, y_val = split_xy(frame, fs, "validation")
    outcomes = []
    for _ in range(2):
        cand = train_candidate("lightgbm", frame, fs, config)
        cal = calibrate(cand.pipeline, x_val, y_val, seed=config.models.seed)
        decision = choose_threshold(y_val, None, "max_f1", classifier=cal.pipeline, x_val=x_val)
        outcomes.append((cand.tuning.best_params, cal.pipeline.predict_proba(x_val)[:, 1], decision.threshold))
    assert outcomes[0][0] == outcomes[1][0]
    assert np.array_equal(outcomes[0][1], outcomes[1][1])
    assert outcomes[0][2] == outcomes[1][2]


def test_search_records_one_trial_per_budgeted_trial(linkedin_config):
    config = linkedin_config.model_copy(update={"models": linkedin_config.models.model_copy(update={
        "search": linkedin_config.models.search.model_copy(update={"n_trials": 3, "timeout_s": None})})})
    frame, fs = _frame(config)
    seen = []
    cand = train_candidate("logistic_regression", frame, fs, config, on_trial=lambda *a: seen.append(a))
    assert len(seen) == 3 == len(cand.tuning.trials)
    assert cand.params["model.C"] == cand.tuning.best_params["C"]
