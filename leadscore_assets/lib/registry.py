"""MLflow model logging and the registry's aliases (never the deprecated stages)."""

from __future__ import annotations

from importlib.metadata import version

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.models import infer_signature

CHAMPION, PREVIOUS, CHALLENGER = "champion", "previous", "challenger"
# Given, not inferred: inference reloads each model in a fresh Python (~2 s per logged model).
MODEL_REQUIREMENTS = [
    f"{p}=={version(p)}"
    for p in ("scikit-learn", "cloudpickle", "numpy", "pandas", "xgboost", "lightgbm", "imbalanced-learn")
]


def log_pipeline(pipeline, x_example: pd.DataFrame) -> str:
    """Log a fitted pipeline in the active run with its signature; return the model URI."""
    proba = pipeline.predict_proba(x_example.head(200))[:, 1]
    signature = infer_signature(x_example.head(200), proba)
    info = mlflow.sklearn.log_model(
        pipeline, name="model", signature=signature, serialization_format="cloudpickle",
        pip_requirements=MODEL_REQUIREMENTS,
    )
    return info.model_uri


def log_regressor(model, x_example: pd.DataFrame) -> str:
    """Log a fitted regressor in the active run with its signature; return the model URI."""
    signature = infer_signature(x_example.head(200), model.predict(x_example.head(200)))
    return mlflow.sklearn.log_model(model, name="model", signature=signature, serialization_format="cloudpickle",
                                    pip_requirements=MODEL_REQUIREMENTS).model_uri


def register_challenger(client: MlflowClient, name: str, model_uri: str, tags: dict[str, str]) -> str:
    """Register a model version and point the `challenger` alias at it."""
    version = str(mlflow.register_model(model_uri, name, tags=tags).version)
    client.set_registered_model_alias(name, CHALLENGER, version)
    return version


def current_champion(client: MlflowClient, name: str):
    """The version the `champion` alias points at, or None before the first promotion."""
    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except mlflow.exceptions.MlflowException:
        return None


def promote(client: MlflowClient, name: str, version: str) -> None:
    """Point `champion` at `version`; the old champion keeps the alias `previous`.

    The champion alias moves in one registry write, so readers of `@champion` see either the
    old or the new version, never none; nothing before this call touches it.
    """
    old = current_champion(client, name)
    client.set_registered_model_alias(name, CHAMPION, version)
    if old is not None and str(old.version) != str(version):
        client.set_registered_model_alias(name, PREVIOUS, old.version)
    try:
        if str(client.get_model_version_by_alias(name, CHALLENGER).version) == str(version):
            client.delete_registered_model_alias(name, CHALLENGER)
    except mlflow.exceptions.MlflowException:
        pass


def load_version(name: str, alias_or_version: str):
    """A registered model's whole fitted pipeline (preprocessing + model [+ calibration])."""
    ref = f"@{alias_or_version}" if not str(alias_or_version).isdigit() else f"/{alias_or_version}"
    return mlflow.sklearn.load_model(f"models:/{name}{ref}")


def uncalibrated(model):
    """The fitted preprocessing + model pipeline inside a CalibratedClassifierCV(FrozenEstimator)."""
    if hasattr(model, "calibrated_classifiers_"):
        inner = model.calibrated_classifiers_[0].estimator
        return getattr(inner, "estimator", inner)
    return model


def missing_inputs(model, columns) -> list[str]:
    """Input columns a fitted model needs that `columns` lacks (the feature set changed)."""
    needed = getattr(model, "feature_names_in_", None)
    if needed is None:
        needed = getattr(uncalibrated(model), "feature_names_in_", [])
    return sorted(set(needed) - set(columns))
