"""Imported once by the forkserver of `score_all_sources`' multiprocess executor (definitions.py).

Every step process is forked from that server. A module it has not imported, each step process
imports again on its own: opening the Dagster instance (SQLite storages, alembic), MLflow's
SQLAlchemy stores, SHAP, tabulate... Measured on the bundled demo, that was about 1.5 CPU
seconds per step, 89 steps per run, on 2 cores shared with the steps doing the work.
"""

import importlib

STEP_MODULES = (
    # DagsterInstance.from_ref in each step process
    "dagster._core.instance.factory",
    "dagster._core.secrets.env_file",
    "dagster._core.storage.root",
    "dagster._core.storage.migration.utils",
    "upath.implementations.local",
    "dagster._core.storage.sqlite_storage",
    "dagster._core.storage.runs.sqlite",
    "dagster._core.storage.event_log.sqlite",
    "dagster._core.storage.schedules.sqlite",
    "dagster._core.execution.asset_backfill",
    "alembic.command",
    "alembic.migration",
    # the MLflow store resource (SQLite locally, a server's database in production)
    "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.model_registry.sqlalchemy_store",
    "mlflow.store.tracking.sqlalchemy_workspace_store",
    "mlflow.tracing.provider",
    "git",  # MLflow tags each run with the git commit
    # first used inside steps
    "evidently",  # ~2 s per measure_drift step (drift.py imports it lazily: the code location must not pay it)
    "evidently.presets",
    "evidently.metrics",
    "shap",
    "tabulate",
    "sqlglot.dialects.duckdb",
    "pyarrow.vendored.version",
    "narwhals._pandas_like.namespace",
)

for _module in STEP_MODULES:
    try:
        importlib.import_module(_module)
    except ImportError:  # a module this environment does not have is imported by the step that needs it
        pass
