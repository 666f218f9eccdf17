"""Loading defs/ so that one broken project YAML breaks that project, not the code location.

`dg.load_from_defs_folder` loads the folder as one component tree: one project YAML that does
not load (a YAML syntax error, an unknown key, an invalid value) fails the whole code location,
and every other project's jobs fail with that project's error. Here, when the whole tree does
not load, each folder under defs/ is loaded as a component tree of its own, and the folders that
load are kept. (When everything loads, the code location is the one tree, as before, and the UI
shows it; after a failure the Definitions carry no component tree, since Dagster cannot merge
several.)

A folder that does not load is reported, not dropped:

- at load time, a warning in the code location's log (`dagster dev`, `dagster job execute`);
- in the UI, the asset `<folder>/config_error` (in the folder's group, so where the project's
  lineage would be) whose description is the error, naming the file and line
  (`lib/config.located`), and whose materialisation fails with it;
- the job `<folder>_pipeline` still exists and selects that asset, so the project's run (from
  the Launchpad, the CLI or a sensor) fails at once with the error instead of "job not found";
  `score_all_sources` fails that one step and runs every other project.
"""

from __future__ import annotations

import importlib
import logging
import re
import warnings
from pathlib import Path
from types import ModuleType

import dagster as dg

from leadscore_assets.assets.specs import OWNER_DEFAULT, PROJECT_TAG
from leadscore_assets.lib.project.config import ProjectConfigError

log = logging.getLogger("leadscore")

CONFIG_ERROR = "config_error"
DAGSTER_API_WARNINGS = (dg.BetaWarning, dg.PreviewWarning, dg.SupersessionWarning, DeprecationWarning)


def project_folders(defs_module: ModuleType) -> list[Path]:
    """The folders under the defs module, one project (component) each."""
    root = Path(next(iter(defs_module.__path__)))
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))


def load_projects(tree: dg.ComponentTree) -> dg.Definitions:
    """Definitions of every project folder of the tree; a folder that fails to load becomes its
    `config_error` asset and job (module docstring) instead of failing the others.

    Dagster's beta/preview warnings are silenced while loading, as `dg.load_from_defs_folder`
    does: unsilenced, each load prints ~250 kB of them (a CLI run whose output is piped and not
    yet read blocks on it)."""
    with warnings.catch_warnings():
        for category in DAGSTER_API_WARNINGS:
            warnings.filterwarnings("ignore", category=category)
        return _load_projects(tree)


def _load_projects(tree: dg.ComponentTree) -> dg.Definitions:
    try:
        return tree.build_defs()
    except Exception as whole:
        failed = whole  # which folder it was, and why, is found and reported folder by folder below
    loaded, broken = [], 0
    for folder in project_folders(tree.defs_module):
        try:
            module = importlib.import_module(f"{tree.defs_module.__name__}.{folder.name}")
            loaded.append(_without_tree(dg.ComponentTree.from_module(module, tree.project_root).build_defs()))
        except Exception as err:  # anything a YAML can do wrong; the error is shown, not swallowed
            message = load_error_message(err)
            log.warning("project folder %s does not load; its other assets are missing until it is fixed:\n%s",
                        folder, message)
            loaded.append(config_error_definitions(folder, message))
            broken += 1
    if not broken:  # every folder loads alone: the fault is outside them (defs/ itself); not a project's
        raise failed
    return dg.Definitions.merge(*loaded)


def _without_tree(d: dg.Definitions) -> dg.Definitions:
    """The same definitions without their component tree: Dagster merges at most one."""
    return dg.Definitions(assets=d.assets, asset_checks=d.asset_checks, jobs=d.jobs, schedules=d.schedules,
                          sensors=d.sensors, resources=d.resources, executor=d.executor, loggers=d.loggers,
                          metadata=d.metadata)


def load_error_message(err: BaseException) -> str:
    """What went wrong as the YAML's own error says it (file and line), not Dagster's
    component-tree wrapper around it: our located ProjectConfigError when there is one, else
    the innermost cause (pydantic's or the YAML parser's, which also name file and line)."""
    chain = [err]
    while chain[-1].__cause__ is not None and chain[-1].__cause__ not in chain:
        chain.append(chain[-1].__cause__)
    named = next((e for e in chain if isinstance(e, ProjectConfigError)), chain[-1])
    return f"{type(named).__name__}: {named}"


def config_error_definitions(folder: Path, message: str) -> dg.Definitions:
    """A project whose YAML does not load, as the UI shows it: one asset that says why and fails
    when run, and the project's pipeline job selecting it."""
    name = re.sub(r"\W", "_", folder.name)
    text = f"{folder / 'defs.yaml'} does not load, so project '{name}' has no assets until it is fixed:\n{message}"

    @dg.asset(
        key=dg.AssetKey([name, CONFIG_ERROR]), group_name=name, owners=[OWNER_DEFAULT], kinds={"yaml"},
        description=text, tags={PROJECT_TAG: name, "leadscore/layer": "config"}, op_tags={PROJECT_TAG: name},
        metadata={"error": dg.MetadataValue.md(f"```\n{message}\n```"), "file": str(folder / "defs.yaml")},
    )
    def config_error() -> None:
        raise dg.Failure(description=text)

    job = dg.define_asset_job(f"{name}_pipeline", selection=dg.AssetSelection.assets(config_error),
                              description=f"The {name} project's YAML does not load: {message}",
                              tags={PROJECT_TAG: name})
    return dg.Definitions(assets=[config_error], jobs=[job])
