"""MLflow model logging and the registry's aliases (never the deprecated stages)."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.models import infer_signature

from leadscore_assets.lib.modelling.calibration import uncalibrated
from leadscore_assets.lib.modelling.families import FAMILIES, families_in, pinned

CHAMPION, PREVIOUS, CHALLENGER = "champion", "previous", "challenger"
# Given, not inferred: inference reloads each model in a fresh Python (~2 s per logged model).
# Every model names the libraries of the core families (those installed with leadscore itself).
MODEL_REQUIREMENTS = pinned(("scikit-learn", "cloudpickle", "numpy", "pandas",
                             *(p for f in FAMILIES.values() if f.extra is None for p in f.requires),
                             "imbalanced-learn"))


def model_requirements(model) -> list[str]:
    """MODEL_REQUIREMENTS, plus the library of each optional family (an extra, e.g. catboost)
    whose estimator is inside `model` (a blend's members and calibrated models included)."""
    optional = dict.fromkeys(p for f in families_in(model) if f.extra is not None for p in f.requires)
    return MODEL_REQUIREMENTS + [r for r in pinned(optional) if r not in MODEL_REQUIREMENTS]


def log_pipeline(pipeline, x_example: pd.DataFrame) -> str:
    """Log a fitted pipeline in the active run with its signature; return the model URI."""
    proba = pipeline.predict_proba(x_example.head(200))[:, 1]
    signature = infer_signature(x_example.head(200), proba)
    info = mlflow.sklearn.log_model(
        pipeline, name="model", signature=signature, serialization_format="cloudpickle",
        pip_requirements=model_requirements(pipeline),
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


def log_serving_model(*, config, fs, raw_cols: list[str], sklearn_model_uri: str, frame: pd.DataFrame,
                      threshold: float, references: dict[str, str], revenue_model_uri: str | None = None) -> str:
    """Log the project's serving pyfunc (lib/scoring/serving.py) in the active run; return its model URI.

    It wraps the logged sklearn pipeline at `sklearn_model_uri` (copied in whole as an
    `mlflow.sklearn` sub-model, which `load_version` loads) with the pipeline's validation,
    features, threshold, deciles and reasons. `config` must be resolved (columns known).
    """
    from leadscore_assets.lib.scoring import serving as serving

    pipeline = mlflow.sklearn.load_model(sklearn_model_uri)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sub = Path(mlflow.artifacts.download_artifacts(sklearn_model_uri, dst_path=str(tmp / "downloads" / "clf")))
        revenue = (Path(mlflow.artifacts.download_artifacts(revenue_model_uri, dst_path=str(tmp / "downloads" / "rev")))
                   if revenue_model_uri else None)
        artifacts = serving.write_artifacts(
            tmp / "serving", config=config, fs=fs, raw_cols=raw_cols, pipeline=pipeline, sklearn_model_dir=sub,
            frame=frame, threshold=threshold, references=references, revenue_model_dir=revenue)
        code = tmp / "leadscore_serving_model.py"
        code.write_text(serving.MODEL_CODE)
        # No input example, on purpose: it would be raw leads, personal data included, stored in
        # MLflow. The signature is given instead; MLflow's nag about the missing example is dropped.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*An input example was not provided", category=UserWarning)
            info = mlflow.pyfunc.log_model(
                name="serving_model", python_model=str(code), artifacts=artifacts,
                signature=serving.signature(raw_cols), pip_requirements=model_requirements(pipeline),
            )
    return info.model_uri


def _model_uri(name: str, alias_or_version: str) -> str:
    ref = f"@{alias_or_version}" if not str(alias_or_version).isdigit() else f"/{alias_or_version}"
    return f"models:/{name}{ref}"


def _sub_model(model_dir: Path, key: str) -> Path | None:
    """The directory of a serving model's sub-model artifact (None for a bare sklearn model)."""
    import yaml

    spec = yaml.safe_load((model_dir / "MLmodel").read_text())
    artifacts = spec.get("flavors", {}).get("python_function", {}).get("artifacts", {})
    if key not in artifacts:
        return None
    return model_dir / artifacts[key]["path"]


def load_version(name: str, alias_or_version: str):
    """A registered model's whole fitted pipeline (preprocessing + model [+ calibration]).

    Registered versions are serving pyfuncs (lib/scoring/serving.py) holding the sklearn pipeline as an
    `mlflow.sklearn` sub-model; versions registered before them are the bare sklearn model.
    """
    from leadscore_assets.lib.scoring.serving import SKLEARN_SUBMODEL

    uri = _model_uri(name, alias_or_version)
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(mlflow.artifacts.download_artifacts(uri, dst_path=tmp))
        sub = _sub_model(local, SKLEARN_SUBMODEL)
        return mlflow.sklearn.load_model(str(sub if sub is not None else local))


def load_serving_parts(name: str, alias_or_version: str) -> dict | None:
    """What `lead_scores` shares with the served model, from one download of the version: its
    sklearn pipeline (`model`, as `load_version` gives it), decile cut points, the encoded
    explainer background and the revenue model it carries (None for a version registered before
    serving models)."""
    import json

    from leadscore_assets.lib.scoring.serving import SKLEARN_SUBMODEL, read_background

    with tempfile.TemporaryDirectory() as tmp:
        local = Path(mlflow.artifacts.download_artifacts(_model_uri(name, alias_or_version), dst_path=tmp))
        serving, background = _sub_model(local, "serving"), _sub_model(local, "background")
        if serving is None or background is None:
            return None
        spec = json.loads(serving.read_text())
        revenue = _sub_model(local, "revenue_model")
        return {"model": mlflow.sklearn.load_model(str(_sub_model(local, SKLEARN_SUBMODEL))),
                "cut_points": spec["decile_cut_points"], "background": read_background(background),
                "revenue_model": mlflow.sklearn.load_model(str(revenue)) if revenue is not None else None}


def missing_inputs(model, columns) -> list[str]:
    """Input columns a fitted model needs that `columns` lacks (the feature set changed)."""
    needed = getattr(model, "feature_names_in_", None)
    if needed is None:
        needed = getattr(uncalibrated(model), "feature_names_in_", [])
    return sorted(set(needed) - set(columns))
