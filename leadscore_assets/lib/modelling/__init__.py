"""Candidates and how one is chosen: the model families (one module each), training, the Optuna
search, the out-of-fold blend, calibration, decision thresholds, and the revenue stage of
two-stage value models."""
