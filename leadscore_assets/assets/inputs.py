"""What an asset reads, declared once: its inputs (the parameters its body reads from) and its
dependencies in the graph both come from one `Reads`, so the lineage in the UI is the data flow
by construction and a body cannot read a table it did not declare (it has no other handle on it).

    reads = Reads(config, features=FEATURES, feature_schema=FEATURE_SCHEMA)
    @dg.asset(ins=reads.ins, deps=reads.after, ...)            # or specs=[X.spec(..., reads.deps)]
    def candidate_models(features: StagedTable, feature_schema: StagedTable, ...):
        frame = features.read()

`after` names assets a step must follow without reading a table of theirs (an MLflow model, HTML
reports, the publication): ordering only, no parameter.
"""

from __future__ import annotations

import dagster as dg

from leadscore_assets.assets.tables import Table
from leadscore_assets.lib.project.config import ProjectConfig
from leadscore_assets.resources.staged_tables import INPUT_MANAGER_KEY, StagedTable

__all__ = ["Reads", "StagedTable"]


class Reads:
    def __init__(self, config: ProjectConfig, after: tuple[str, ...] = (), **tables: Table | None):
        """`tables`: parameter name -> table read (None: not read by this project, e.g. feedback
        tables of a project without `feedback:`); `after`: asset names followed without reading."""
        self.tables = {param: table.key(config) for param, table in tables.items() if table is not None}
        self.absent = [param for param, table in tables.items() if table is None]
        self.order = [dg.AssetKey([config.name, name]) for name in after]

    @property
    def ins(self) -> dict[str, dg.AssetIn]:
        return {param: dg.AssetIn(key=key, input_manager_key=INPUT_MANAGER_KEY) for param, key in self.tables.items()}

    @property
    def deps(self) -> list[dg.AssetKey]:
        """Every upstream asset: the tables read and those followed."""
        return [*self.tables.values(), *self.order]

    @property
    def after(self) -> list[dg.AssetKey]:
        return list(self.order)
