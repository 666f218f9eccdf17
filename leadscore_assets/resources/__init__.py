"""Resources per deployment, chosen from one dict (LEADSCORE_ENV = local | ci | prod).

Locally everything is embedded under the data directory: a DuckDB file and a SQLite-backed
MLflow store. Production points the same assets at a shared DuckDB/MotherDuck path and an
MLflow server through environment variables, without touching asset code.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from leadscore_assets.resources.mlflow_store import MlflowStore, env_ui_urls
from leadscore_assets.resources.staged_tables import INPUT_MANAGER_KEY, staged_tables
from leadscore_assets.resources.storage import LeadscoreStorage, default_data_dir
from leadscore_assets.resources.warehouse import Warehouse


def build_resources(data_dir: str | Path | None = None) -> dict[str, object]:
    """The local resource set rooted at one data directory (used by `dagster dev` and tests)."""
    root = Path(data_dir or default_data_dir()).resolve()
    store = MlflowStore(
        tracking_uri=f"sqlite:///{root / 'mlflow' / 'mlflow.db'}",
        artifact_location=str(root / "mlflow" / "artifacts"),
        **env_ui_urls(),
    )
    return {
        "storage": LeadscoreStorage(data_dir=str(root)),
        "warehouse": Warehouse(directory=str(root / "warehouse"), tracking_uri=store.tracking_uri, data_dir=str(root)),
        "mlflow_store": store,
        "mlflow": store,  # the key dagster-mlflow's end_mlflow_on_run_finished hook asks for
        INPUT_MANAGER_KEY: staged_tables,  # the tables an asset reads, as its inputs (assets/inputs.py)
    }


def resources_for_env(env: str | None = None) -> dict[str, object]:
    env = env or os.getenv("LEADSCORE_ENV", "local")
    if env in ("local", "ci"):
        return build_resources()
    if env == "prod":
        store = MlflowStore(
            tracking_uri=dg.EnvVar("MLFLOW_TRACKING_URI"), artifact_location=dg.EnvVar("MLFLOW_ARTIFACT_LOCATION"),
            ui_url=dg.EnvVar("LEADSCORE_MLFLOW_UI_URL"), dagster_ui_url=dg.EnvVar("LEADSCORE_DAGSTER_UI_URL"),
        )
        return {
            "storage": LeadscoreStorage(data_dir=dg.EnvVar("LEADSCORE_DATA_DIR")),
            "warehouse": Warehouse(directory=dg.EnvVar("LEADSCORE_WAREHOUSE_DIR"),
                                   postgres_url=dg.EnvVar("LEADSCORE_WAREHOUSE_URL"),
                                   tracking_uri=dg.EnvVar("MLFLOW_TRACKING_URI"), data_dir=dg.EnvVar("LEADSCORE_DATA_DIR")),
            "mlflow_store": store,
            "mlflow": store,
            INPUT_MANAGER_KEY: staged_tables,
        }
    raise ValueError(f"LEADSCORE_ENV must be local, ci or prod, not {env!r}")
