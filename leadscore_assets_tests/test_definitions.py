"""The code location loads from defs/, and the graph a user sees does not change by accident."""

import importlib
import json
import logging
import os
import re
import shutil
from pathlib import Path

import dagster as dg
import pytest

from leadscore_assets.assets.tables import declared
from leadscore_assets.definitions import ALL_SOURCES_JOB, code_location, defs
from leadscore_assets.lib.project.config import load_project_config

DEFS_DIR = Path(__file__).resolve().parents[1] / "leadscore_assets" / "defs"
PROJECTS = ("linkedin", "email_crm", "saas_crm", "web_sessions", "byo_example")

CHAIN = ["raw_contacts", "validated_contacts", "labels", "features", "candidate_models", "evaluation_report",
         "drift_reports", "champion_model", "lead_scores", "published"]  # each reads the one before


def _loaded() -> dg.Definitions:
    return defs() if callable(defs) else defs


def test_every_table_of_the_warehouse_contract_is_an_asset_of_its_project():
    """The lineage is the data flow: no table is written behind the graph's back."""
    d = _loaded()
    graph = d.resolve_asset_graph()
    keys = graph.get_all_asset_keys()
    for path in (DEFS_DIR / p / "defs.yaml" for p in PROJECTS):
        config = load_project_config(path)
        missing = [t.name for t in declared(config) if t.key(config) not in keys]
        assert not missing, (config.name, missing)
        for upstream, downstream in zip(CHAIN, CHAIN[1:]):
            node = graph.get(dg.AssetKey([config.name, downstream]))
            assert dg.AssetKey([config.name, upstream]) in node.parent_keys, (config.name, upstream, downstream)
        published = graph.get(dg.AssetKey([config.name, "published"]))
        daily = {dg.AssetKey([config.name, "daily_scores"])}  # partitioned, scored after publishing
        assert {k for k in keys if k.path[0] == config.name} - {published.key} - daily == set(published.parent_keys)


def test_every_asset_says_what_it_is_and_who_owns_it():
    graph = _loaded().resolve_asset_graph()
    for k in graph.get_all_asset_keys():
        node = graph.get(k)
        assert node.description and node.kinds and node.owners == ["team:growth-data"], k
        assert node.tags["leadscore/project"] == k.path[0] and node.tags["leadscore/layer"], k


def test_the_main_job_runs_projects_in_parallel_and_each_projects_steps_in_turn():
    """Every step (asset or multi-asset) carries its project's tag, and the main job's
    multiprocess executor lets one step per project run at a time: two steps never open one
    project's DuckDB file together, while different projects' steps run side by side."""
    job = _loaded().resolve_job_def(ALL_SOURCES_JOB)
    by_project = {}
    for node in job.graph.node_dict.values():
        assert node.tags.get("leadscore/project") in PROJECTS, node.name
        by_project.setdefault(node.tags["leadscore/project"], []).append(node.name)
    assert set(by_project) == set(PROJECTS)
    executor = job.run_config["execution"]["config"]["multiprocess"]
    assert {"key": "leadscore/project", "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in \
        executor["tag_concurrency_limits"]
    assert job.executor_def.name == "multi_or_in_process_executor"  # `in_process: {}` still runs it in one process


def test_checks_run_in_their_assets_step():
    """Under the multiprocess executor each step is a process start: no check has a step of its
    own (the five projects are 62 steps, not 92; the three taking CRM feedback have score_effectiveness)."""
    d = _loaded()
    job = d.resolve_job_def(ALL_SOURCES_JOB)
    graph = d.resolve_asset_graph()
    for check_key in graph.asset_check_keys:
        assert check_key in graph.get(check_key.asset_key).assets_def.check_keys, check_key  # declared on the asset
    assert len(graph.asset_check_keys) >= 5 * 12 and len(job.graph.node_dict) == 62, len(job.graph.node_dict)


def test_blocking_checks_guard_features_against_leaks_and_personal_data():
    graph = _loaded().resolve_asset_graph()
    for project in ("linkedin", "byo_example"):
        checks = {c.name for c in graph.asset_check_keys if c.asset_key == dg.AssetKey([project, "features"])}
        assert {"no_label_leakage", "no_personal_data"} <= checks, project


def test_blocking_checks_guard_validated_contacts():
    graph = _loaded().resolve_asset_graph()
    checks = {c.name for c in graph.asset_check_keys if c.asset_key == dg.AssetKey(["linkedin", "validated_contacts"])}
    assert checks == {"schema_matches_config", "ids_unique", "rows_accounted_for", "quarantine_within_limits",
                      "no_undeclared_personal_data", "personal_column_names_declared"}


def test_main_job_covers_every_project_and_resources_are_defined():
    d = _loaded()
    every = d.resolve_asset_graph().get_all_asset_keys()
    daily = {k for k in every if k.path[-1] == "daily_scores"}
    assert daily == {dg.AssetKey(["web_sessions", "daily_scores"])}  # the project whose YAML asks for it
    main = d.resolve_job_def(ALL_SOURCES_JOB)
    assert set(main.asset_layer.selected_asset_keys) == set(every) - daily  # partitioned: scored by their own jobs
    linkedin = d.resolve_job_def("linkedin_pipeline")
    assert {k.path[0] for k in linkedin.asset_layer.selected_asset_keys} == {"linkedin"}
    scoring = d.resolve_job_def("web_sessions_daily_scoring")
    assert set(scoring.asset_layer.selected_asset_keys) == daily and scoring.partitions_def is not None
    assert d.resolve_schedule_def("web_sessions_daily_scoring_schedule").default_status == \
        dg.DefaultScheduleStatus.STOPPED
    assert {"warehouse", "mlflow_store", "storage"} <= set(d.resources)


def test_feedback_sensor_runs_by_default_and_nightly_schedule_is_off():
    d = _loaded()
    sensor = d.resolve_sensor_def("linkedin_feedback_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    schedule = d.resolve_schedule_def("linkedin_nightly_retrain")
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert schedule.job_name == "linkedin_pipeline"


def test_every_source_with_ids_and_outcomes_takes_crm_feedback():
    d = _loaded()
    for project in ("linkedin", "email_crm", "saas_crm"):
        sensor = d.resolve_sensor_def(f"{project}_feedback_sensor")
        assert sensor.default_status == dg.DefaultSensorStatus.RUNNING, project
        assert sensor.job_name == f"{project}_pipeline", project
        graph = d.resolve_asset_graph()
        labels = graph.get(dg.AssetKey([project, "labels"]))
        assert dg.AssetKey([project, "feedback_labels"]) in labels.parent_keys, project


SNAPSHOT = Path(__file__).parent / "snapshots" / "definitions.json"


def definitions_snapshot(d: dg.Definitions) -> dict:
    """What a user sees of the code location: every asset spec (key, group, layer, kinds, owners,
    upstream), check (blocking or not), job, sensor and schedule (with its default state)."""
    graph = d.resolve_asset_graph()
    assets = {}
    for k in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(k)
        assets[k.to_user_string()] = {
            "group": node.group_name, "layer": node.tags.get("leadscore/layer"), "kinds": sorted(node.kinds),
            "owners": node.owners, "upstream": sorted(p.to_user_string() for p in node.parent_keys),
            "checks": sorted(f"{c.name}{' (blocking)' if graph.get(c).blocking else ''}"
                             for c in graph.asset_check_keys if c.asset_key == k),
        }
    repo = d.get_repository_def()
    return {
        "assets": assets,
        "jobs": sorted(j.name for j in repo.get_all_jobs() if not j.name.startswith("__")),
        "sensors": {s.name: {"job": s.job_name, "default": s.default_status.value}
                    for s in sorted(repo.sensor_defs, key=lambda s: s.name)},
        "schedules": {s.name: {"job": s.job_name, "cron": s.cron_schedule, "default": s.default_status.value}
                      for s in sorted(repo.schedule_defs, key=lambda s: s.name)},
    }


def test_definitions_snapshot_is_reviewed():
    """Any change to the graph a user sees shows up as a diff of `snapshots/definitions.json`,
    reviewed like code. After an intended change: LEADSCORE_UPDATE_SNAPSHOTS=1 pytest this file."""
    now = definitions_snapshot(_loaded())
    if os.environ.get("LEADSCORE_UPDATE_SNAPSHOTS") or not SNAPSHOT.exists():
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(json.dumps(now, indent=1, sort_keys=True) + "\n")
    assert now == json.loads(SNAPSHOT.read_text()), (
        "the definitions changed; review the diff and rerun with LEADSCORE_UPDATE_SNAPSHOTS=1")


def test_every_project_is_one_group_holding_its_whole_chain():
    graph = _loaded().resolve_asset_graph()
    for k in graph.get_all_asset_keys():
        assert graph.get(k).group_name == k.path[0], k


def _defs_copy(tmp_path, monkeypatch, package: str):
    """The shipped defs folder copied into an importable package of its own, to break one YAML of."""
    root = tmp_path / package
    shutil.copytree(DEFS_DIR, root / "defs", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "__init__.py").touch()
    monkeypatch.syspath_prepend(str(tmp_path))
    return root


@pytest.mark.parametrize("broken, fault, expected", [
    # a value the project's own validation refuses: located by lib/config.located
    ("linkedin", ("    columns: [company_name,", "    columns: [email, company_name,"),
     r"defs\.yaml line \d+: call_list\.columns names personal data"),
    # a key the component does not have: refused by Dagster's schema, which names file and line
    ("saas_crm", ("  id_column: company_id\n", "  id_column: company_id\n  bogus_key: 3\n"),
     r"bogus_key at \S*defs\.yaml:\d+"),
    # not YAML at all: the parser names file and line
    ("email_crm", ("  name: email_crm\n", "  name: [email_crm\n"), r"defs\.yaml\", line \d+"),
])
def test_one_broken_project_yaml_leaves_the_other_projects_loaded_and_runnable(
        tmp_path, monkeypatch, caplog, broken, fault, expected):
    package = f"defs_copy_{broken}"
    root = _defs_copy(tmp_path, monkeypatch, package)
    yaml_file = root / "defs" / broken / "defs.yaml"
    text = yaml_file.read_text()
    assert fault[0] in text
    yaml_file.write_text(text.replace(fault[0], fault[1], 1))

    with caplog.at_level(logging.WARNING, logger="leadscore"):
        d = code_location(dg.ComponentTree.from_module(importlib.import_module(f"{package}.defs"), tmp_path))
        dg.Definitions.validate_loadable(d)
    assert str(yaml_file.parent) in caplog.text  # said loudly where the code location is loaded

    for project in set(PROJECTS) - {broken}:  # the others are whole: their pipelines and chains
        job = d.resolve_job_def(f"{project}_pipeline")
        assert dg.AssetKey([project, "published"]) in job.asset_layer.selected_asset_keys, project
    graph = d.resolve_asset_graph()
    assert {k.path[1] for k in graph.get_all_asset_keys() if k.path[0] == broken} == {"config_error"}
    error = graph.get(dg.AssetKey([broken, "config_error"]))
    assert str(yaml_file) in error.description and re.search(expected, error.description), error.description
    assert error.group_name == broken

    # running the broken project's job fails at once with the error; the main job still has every other project
    result = d.resolve_job_def(f"{broken}_pipeline").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    assert not result.success
    failure = result.get_step_failure_events()[0].event_specific_data.error.message
    assert str(yaml_file) in failure and re.search(expected, failure), failure
    main = d.resolve_job_def(ALL_SOURCES_JOB)
    assert {k.path[0] for k in main.asset_layer.selected_asset_keys} == set(PROJECTS)
