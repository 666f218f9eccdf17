"""What every leadscore asset carries: its key `[project, table]`, group, owner, kinds and
tags. assets/tables.py (the warehouse contract) and every asset factory build on it."""

import dagster as dg

from leadscore_assets.lib.project.config import ProjectConfig

OWNER_DEFAULT = "team:growth-data"


def key(config: ProjectConfig, name: str) -> dg.AssetKey:
    """Asset keys read like warehouse addresses: [project, table]."""
    return dg.AssetKey([config.name, name])


PROJECT_TAG = "leadscore/project"


def step_tags(config: ProjectConfig) -> dict[str, str]:
    """Tags on every step (op) of a project. The multiprocess executor of `score_all_sources`
    limits steps per unique value of PROJECT_TAG to one, so one project's steps take turns on its
    DuckDB file while other projects' steps run beside them (definitions.py)."""
    return {PROJECT_TAG: config.name}


def asset_kwargs(config: ProjectConfig, name: str, layer: str, description: str, kinds: set[str]) -> dict:
    """The spec every leadscore asset carries: key [project, table], one group per project (its
    lineage at a glance in the UI), the layer as a tag (`tag:leadscore/layer=models` selects a
    layer across projects)."""
    return {
        "key": key(config, name),
        "group_name": config.name,
        "owners": [config.owner or OWNER_DEFAULT],
        "kinds": kinds,
        "description": description,
        "tags": {PROJECT_TAG: config.name, "leadscore/layer": layer},
    }
