"""The features step built batch by batch (above `BATCHED_ABOVE_ROWS` validated leads) writes the
very table, feature set and metadata the one-frame route writes: forced here with batches of 7
leads on small real projects, run up to their labels once."""

import shutil
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from leadscore_assets.assets import featurisation
from leadscore_assets.components.lead_scoring_project import project_definitions
from leadscore_assets.demo_data import byo_table, email_crm, linkedin, saas_crm, web_sessions
from leadscore_assets.lib.project.config import load_project_config
from leadscore_assets.resources import build_resources
from leadscore_assets.resources.staged_tables import StagedTable
from leadscore_assets.testing.runs import DEFS_DIR

WRITERS = {"linkedin": linkedin, "email_crm": email_crm, "saas_crm": saas_crm, "web_sessions": web_sessions,
           "byo_example": byo_table}


def _config(project: str):
    config = load_project_config(DEFS_DIR / project / "defs.yaml")
    if project == "linkedin":  # a `days_since` counted back from the newest date of the whole table
        dates = {**config.features.dates, "created_at": [*config.features.dates["created_at"], "days_since"]}
        config = config.model_copy(update={"features": config.features.model_copy(update={"dates": dates})})
    return config


def _up_to_labels(project: str, tmp_path: Path) -> Path:
    """A staged warehouse holding what the features step reads (validated leads, labels, column
    types), from a run of the project's steps before it; with CRM feedback faked into the labels
    of a feedback project (two batches: the newest labels some leads, an older one others)."""
    config = _config(project)
    WRITERS[project].write(tmp_path, rows=700, seed=4)
    defs = dg.Definitions.merge(project_definitions(config),
                                dg.Definitions(resources=build_resources(tmp_path), executor=dg.in_process_executor))
    features = dg.AssetSelection.assets(dg.AssetKey([project, "features"]))
    keys = (features.upstream() - features).required_multi_asset_neighbors().resolve(defs.resolve_asset_graph())
    result = defs.resolve_job_def(f"{project}_pipeline").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), asset_selection=list(keys))
    assert result.success
    staged = next((tmp_path / "warehouse" / project / "staged").glob("*.duckdb"))
    if config.feedback:
        with duckdb.connect(str(staged)) as conn:
            conn.execute(f"CREATE OR REPLACE TABLE {project}.feedback_batches AS SELECT * FROM (VALUES "
                         "('a.csv', 'old', TIMESTAMP '2026-01-01'), ('b.csv', 'new', TIMESTAMP '2026-02-01')) "
                         "t(file, content_hash, received_at)")
            conn.execute(f"""UPDATE {project}.labels SET label = hash(lead_id) % 2, label_source = 'crm_feedback',
                             feedback_hash = CASE WHEN hash(lead_id) % 5 = 0 THEN 'new' ELSE 'old' END
                             WHERE hash(lead_id) % 3 = 0""")
    return staged


class _Warehouse:
    def __init__(self, path: Path):
        self.path = path

    @contextmanager
    def connection(self, project: str):
        conn = duckdb.connect(str(self.path))
        try:
            yield conn
        finally:
            conn.close()


def _features_step(project: str, staged: Path, copy: Path) -> tuple[dict, pd.DataFrame, pd.DataFrame, list]:
    """Run the features step's body (checks included) on a copy of `staged`: its metadata by asset
    and check, the features and feature-schema tables as written, and their column types."""
    shutil.copy(staged, copy)
    config, warehouse = _config(project), _Warehouse(copy)
    step = featurisation.build(config)[0].op.compute_fn.decorated_fn
    inputs = {name: StagedTable(project, name, warehouse) for name in ("labels", "validated_contacts", "column_types")}
    if config.feedback:
        inputs["feedback_batches"] = StagedTable(project, "feedback_batches", warehouse)
    metadata = {}
    for result in step(warehouse=warehouse, **inputs):
        key = getattr(result, "check_name", None) or result.asset_key.path[-1]
        metadata[key] = ({k: getattr(v, "value", v) for k, v in (result.metadata or {}).items()},
                         getattr(result, "passed", None), getattr(result, "description", None))
    with duckdb.connect(str(copy)) as conn:
        types = conn.execute(f"DESCRIBE {project}.features").fetchall()
        table = conn.execute(f"SELECT * FROM {project}.features").df()
        schema = conn.execute(f"SELECT * FROM {project}.feature_schema").df()
    return metadata, table, schema, types


@pytest.mark.parametrize("project", [*WRITERS])
def test_features_built_in_tiny_batches_equal_the_one_frame_build(project, tmp_path, monkeypatch):
    staged = _up_to_labels(project, tmp_path)
    one_frame = _features_step(project, staged, tmp_path / "one_frame.duckdb")

    calls = []
    batched = featurisation.write_features_in_batches
    monkeypatch.setattr(featurisation, "write_features_in_batches", lambda *a: calls.append(1) or batched(*a))
    monkeypatch.setattr(featurisation, "BATCHED_ABOVE_ROWS", 0)
    monkeypatch.setattr(featurisation, "BATCH_ROWS", 7)
    in_batches = _features_step(project, staged, tmp_path / "in_batches.duckdb")

    assert calls, "the batched route was not taken"
    (meta_a, table_a, schema_a, types_a), (meta_b, table_b, schema_b, types_b) = one_frame, in_batches
    assert len(table_a) > 600
    assert types_a == types_b
    pd.testing.assert_frame_equal(table_a, table_b)  # same rows, order, values and dtypes
    pd.testing.assert_frame_equal(schema_a, schema_b)
    assert meta_a == meta_b
    if _config(project).feedback:  # the faked feedback reached both: flags set, some held out
        assert table_a.crm_feedback.any() and table_a.newest_feedback.any()
        assert meta_a["features"][0]["newest_feedback_held_out"] > 0
