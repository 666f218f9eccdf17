"""What a logged model holds, the registry's aliases (never the deprecated stages), and loading
registered versions.

Every function that reaches the MLflow store is handed its `MlflowClient` (the `MlflowStore`
resource's): nothing here reads the process-wide tracking or registry URI. MLflow resolves a
`models:/` URI through that process-wide URI whatever client or URI it is given, so the URIs are
resolved here, through the client, to the artifact location they name (`model_files`). Logging a
model needs an active run, which only MLflow's process-wide (fluent) API has: that stays in the
resource (`MlflowStore.log_classifier`, `log_regressor`, `log_serving_model`), with what is logged
built here (`classifier_logging`, `regressor_logging`, `serving_model`).
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.utils.mlflow_tags import MLFLOW_MODEL_VERSIONS

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


def classifier_logging(pipeline, x_example: pd.DataFrame) -> dict:
    """How a fitted classifier pipeline is logged (`mlflow.sklearn.log_model` keywords besides
    the model): its signature, cloudpickle, the requirements of its families."""
    proba = pipeline.predict_proba(x_example.head(200))[:, 1]
    return {"name": "model", "signature": infer_signature(x_example.head(200), proba),
            "serialization_format": "cloudpickle", "pip_requirements": model_requirements(pipeline)}


def regressor_logging(model, x_example: pd.DataFrame) -> dict:
    """How a fitted regressor is logged (`mlflow.sklearn.log_model` keywords besides the model)."""
    return {"name": "model", "signature": infer_signature(x_example.head(200), model.predict(x_example.head(200))),
            "serialization_format": "cloudpickle", "pip_requirements": MODEL_REQUIREMENTS}


_MODELS_URI = re.compile(r"models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>[^/]+))?/?")


def _logged_model_id(model_uri: str) -> str | None:
    """The logged model's id of `models:/<model id>` (what `log_model` returns); None otherwise."""
    found = _MODELS_URI.fullmatch(model_uri)
    return found["name"] if found and not found["alias"] and not found["version"] else None


def register_challenger(client: MlflowClient, name: str, model_uri: str, tags: dict[str, str]) -> str:
    """Register a logged model (`models:/<model id>`) as a new version and point the `challenger`
    alias at it. What `mlflow.register_model` does, through `client`: MLflow's SQL registry looks
    a `models:/` source up through the process-wide URI, so the version is created from the
    logged model's artifact location and run; the logged model lists the version, as there."""
    try:
        client.create_registered_model(name)
    except MlflowException as err:
        if err.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
            raise
    model_id = _logged_model_id(model_uri)
    if model_id is None:
        raise ValueError(f"not a logged model's URI (models:/<model id>): {model_uri}")
    logged = client.get_logged_model(model_id)
    created = client.create_model_version(name, logged.artifact_location, run_id=logged.source_run_id, tags=tags,
                                          model_id=model_id)
    listed = json.loads(logged.tags.get(MLFLOW_MODEL_VERSIONS, "[]"))
    client.set_logged_model_tags(model_id, {MLFLOW_MODEL_VERSIONS: json.dumps(
        listed + [{"name": created.name, "version": created.version}])})
    version = str(created.version)
    client.set_registered_model_alias(name, CHALLENGER, version)
    return version


def current_champion(client: MlflowClient, name: str):
    """The version the `champion` alias points at, or None before the first promotion."""
    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
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
    except MlflowException:
        pass


def serving_model(directory: Path, *, config, fs, raw_cols: list[str], sklearn_model_dir: Path,
                  frame: pd.DataFrame, threshold: float, references: dict[str, str],
                  revenue_model_dir: Path | None = None, scores=None) -> dict:
    """The project's serving pyfunc (lib/scoring/serving.py) written under `directory`: the
    `mlflow.pyfunc.log_model` keywords that log it (`MlflowStore.log_serving_model`).

    It wraps the logged sklearn pipeline downloaded at `sklearn_model_dir` (copied in whole as
    an `mlflow.sklearn` sub-model, which `load_version` loads) with the pipeline's validation,
    features, threshold, deciles and reasons. `config` must be resolved (columns known).
    No input example, on purpose: it would be raw leads, personal data included, stored in
    MLflow. The signature is given instead.
    """
    from leadscore_assets.lib.scoring import serving as serving

    pipeline = mlflow.sklearn.load_model(str(sklearn_model_dir))
    artifacts = serving.write_artifacts(
        directory / "serving", config=config, fs=fs, raw_cols=raw_cols, pipeline=pipeline,
        sklearn_model_dir=sklearn_model_dir, frame=frame, threshold=threshold, references=references,
        revenue_model_dir=revenue_model_dir, scores=scores)
    code = directory / "leadscore_serving_model.py"
    code.write_text(serving.MODEL_CODE)
    return {"name": "serving_model", "python_model": str(code), "artifacts": artifacts,
            "signature": serving.signature(raw_cols), "pip_requirements": model_requirements(pipeline)}


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


def model_files(client: MlflowClient, model_uri: str, dst_path: str | Path | None = None) -> Path:
    """The files of a model, downloaded through `client`'s store: `model_uri` is a registered
    version (`models:/<name>@<alias>`, `models:/<name>/<version>`) or a logged model
    (`models:/<model id>`). MLflow's own `models:/` resolution reads the process-wide registry
    URI, so the URI is resolved here to the artifact location it names. `dst_path` None: MLflow
    picks the folder (a local store's files are read in place)."""
    found = _MODELS_URI.fullmatch(model_uri)
    if found is None:
        raise ValueError(f"not a models:/ URI: {model_uri}")
    if found["alias"]:
        version = client.get_model_version_by_alias(found["name"], found["alias"]).version
        location = client.get_model_version_download_uri(found["name"], version)
    elif found["version"]:
        location = client.get_model_version_download_uri(found["name"], found["version"])
    else:
        location = client.get_logged_model(found["name"]).artifact_location
    return Path(mlflow.artifacts.download_artifacts(
        artifact_uri=location, dst_path=None if dst_path is None else str(dst_path),
        tracking_uri=client.tracking_uri))


def load_sklearn(client: MlflowClient, model_uri: str):
    """A logged (or registered) `mlflow.sklearn` model, by its `models:/` URI."""
    with tempfile.TemporaryDirectory() as tmp:
        return mlflow.sklearn.load_model(str(model_files(client, model_uri, tmp)))


def load_version(name: str, alias_or_version: str, client: MlflowClient | None = None):
    """A registered model's whole fitted pipeline (preprocessing + model [+ calibration]).

    Registered versions are serving pyfuncs (lib/scoring/serving.py) holding the sklearn pipeline as an
    `mlflow.sklearn` sub-model; versions registered before them are the bare sklearn model.
    `client`: the store's (None: a client of the process-wide URI, for callers not yet handing one).
    """
    from leadscore_assets.lib.scoring.serving import SKLEARN_SUBMODEL

    uri = _model_uri(name, alias_or_version)
    with tempfile.TemporaryDirectory() as tmp:
        local = model_files(client or MlflowClient(), uri, tmp)
        sub = _sub_model(local, SKLEARN_SUBMODEL)
        return mlflow.sklearn.load_model(str(sub if sub is not None else local))


def load_serving_parts(name: str, alias_or_version: str, client: MlflowClient | None = None) -> dict | None:
    """What `lead_scores` shares with the served model, from one download of the version: its
    sklearn pipeline (`model`, as `load_version` gives it), decile cut points, the encoded
    explainer background and the revenue model it carries (None for a version registered before
    serving models). `client` as for `load_version`."""
    from leadscore_assets.lib.scoring.serving import SKLEARN_SUBMODEL, read_background

    with tempfile.TemporaryDirectory() as tmp:
        local = model_files(client or MlflowClient(), _model_uri(name, alias_or_version), tmp)
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
