"""Resources per deployment: the same assets, embedded stores locally, server stores in prod."""

import dagster as dg
import mlflow
import pytest

from leadscore_assets.resources import resources_for_env
from leadscore_assets.resources.mlflow_store import MlflowStore
from leadscore_assets.resources.warehouse import Warehouse

PROD_ENV = {
    "LEADSCORE_DATA_DIR": "/srv/leadscore/data",
    "LEADSCORE_WAREHOUSE_DIR": "/srv/leadscore/warehouse",
    "LEADSCORE_WAREHOUSE_URL": "postgresql://leadscore@db.internal/leadscore",
    "MLFLOW_TRACKING_URI": "postgresql://mlflow@db.internal/mlflow",
    "MLFLOW_ARTIFACT_LOCATION": "s3://leadscore-models",
    "LEADSCORE_MLFLOW_UI_URL": "https://mlflow.internal",
    "LEADSCORE_DAGSTER_UI_URL": "https://dagster.internal",
}


@pytest.mark.parametrize("env", ["local", "ci"])
def test_local_and_ci_are_embedded_under_one_data_dir(env, tmp_path, monkeypatch):
    monkeypatch.setenv("LEADSCORE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("LEADSCORE_MLFLOW_UI_URL", "http://127.0.0.1:5999")
    resources = resources_for_env(env)
    # the tables an asset reads reach it through the input manager over the warehouse (assets/inputs.py)
    assert set(resources) == {"storage", "warehouse", "mlflow_store", "mlflow", "staged_tables"}
    assert resources["mlflow"] is resources["mlflow_store"]  # one store; the second key is for the dagster-mlflow hook
    store, warehouse = resources["mlflow_store"], resources["warehouse"]
    assert store.tracking_uri == f"sqlite:///{tmp_path.resolve() / 'mlflow' / 'mlflow.db'}"
    assert store.ui_url == "http://127.0.0.1:5999"
    assert warehouse.directory == str(tmp_path.resolve() / "warehouse")


@pytest.fixture
def mlflow_uris_restored():
    """Setting up MlflowStore points MLflow's process-wide URIs at it; put them back afterwards."""
    tracking, registry = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    yield
    mlflow.set_tracking_uri(tracking)
    mlflow.set_registry_uri(registry)


def test_prod_reads_every_location_from_the_environment(monkeypatch, mlflow_uris_restored):
    for name, value in PROD_ENV.items():
        monkeypatch.setenv(name, value)
    resources = resources_for_env("prod")
    with dg.build_resources({k: v for k, v in resources.items() if k != "mlflow"}) as built:
        store: MlflowStore = built.mlflow_store
        assert store.tracking_uri == PROD_ENV["MLFLOW_TRACKING_URI"]
        assert store.artifact_location == PROD_ENV["MLFLOW_ARTIFACT_LOCATION"]
        assert store.ui_url == PROD_ENV["LEADSCORE_MLFLOW_UI_URL"]
        warehouse: Warehouse = built.warehouse
        assert warehouse.directory == PROD_ENV["LEADSCORE_WAREHOUSE_DIR"]
        assert warehouse.postgres_url == PROD_ENV["LEADSCORE_WAREHOUSE_URL"]
        assert built.storage.data_dir == PROD_ENV["LEADSCORE_DATA_DIR"]


def test_prod_without_its_settings_fails_naming_the_variable(monkeypatch, mlflow_uris_restored):
    for name in PROD_ENV:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(Exception, match="MLFLOW_TRACKING_URI|LEADSCORE_"):
        with dg.build_resources({k: v for k, v in resources_for_env("prod").items() if k != "mlflow"}):
            pass


def test_an_unknown_environment_is_refused():
    with pytest.raises(ValueError, match="LEADSCORE_ENV must be local, ci or prod"):
        resources_for_env("staging")
