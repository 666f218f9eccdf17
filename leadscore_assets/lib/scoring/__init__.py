"""Scores and their reasons, the same everywhere: the one scorer, SHAP reasons, the served MLflow
pyfunc (raw leads in, answers out), what is logged to the registry, and the call list and CSV
files people open."""
