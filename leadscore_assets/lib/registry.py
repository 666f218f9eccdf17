"""MLflow model logging and the registry's aliases (never the deprecated stages)."""

from __future__ import annotations

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.models import infer_signature

CHAMPION, PREVIOUS, CHALLENGER = "champion", "previous", "challenger"


def log_pipeline(pipeline, x_example: pd.DataFrame) -> str:
    """Log a fitted pipeline in the active run with its signature; return the model URI."""
    proba = pipeline.predict_proba(x_example.head(200))[:, 1]
    signature = infer_signature(x_example.head(200), proba)
    info = mlflow.sklearn.log_model(
        pipeline, name="model", signature=signature, serialization_format="cloudpickle",
        pip_requirements=None,
    )
    return info.model_uri


def register_champion(client: MlflowClient, name: str, model_uri: str, run_id: str, tags: dict[str, str]) -> str:
    """Register a model version and point `champion` at it; the old champion becomes `previous`.

    Each alias update is a single registry write, so readers of `@champion` see either the old
    or the new version, never none.
    """
    version = mlflow.register_model(model_uri, name, tags=tags).version
    try:
        old = client.get_model_version_by_alias(name, CHAMPION)
    except mlflow.exceptions.MlflowException:
        old = None
    client.set_registered_model_alias(name, CHAMPION, version)
    if old is not None and old.version != version:
        client.set_registered_model_alias(name, PREVIOUS, old.version)
    client.set_model_version_tag(name, version, "leadscore.run_id", run_id)
    return str(version)


def load_champion(name: str):
    """The champion's whole fitted pipeline (preprocessing + model)."""
    return mlflow.sklearn.load_model(f"models:/{name}@{CHAMPION}")
