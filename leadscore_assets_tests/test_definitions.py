"""The code location loads from defs/, and the graph a user sees does not change by accident."""

import dagster as dg

from leadscore_assets.definitions import ALL_SOURCES_JOB, defs

LAYERS = {  # asset name -> (group, upstream asset names)
    "raw_contacts": ("raw", set()),
    "validated_contacts": ("validated", {"raw_contacts"}),
    "quarantined_contacts": ("validated", {"raw_contacts"}),
    "feedback_outcomes": ("feedback", {"validated_contacts"}),
    "labels": ("labels", {"validated_contacts", "feedback_outcomes"}),
    "features": ("features", {"labels", "validated_contacts"}),
    "data_profile": ("features", {"features"}),
    "candidate_models": ("models", {"features"}),
    "evaluation_report": ("evaluation", {"candidate_models"}),
    "drift_reports": ("monitoring", {"evaluation_report", "features"}),
    "champion_model": ("models", {"evaluation_report", "drift_reports"}),
    "lead_scores": ("scoring", {"champion_model", "features"}),
}
# Written last, after every other asset and blocking check of the project passed.
LAYERS["published"] = ("publish", set(LAYERS))


def _loaded() -> dg.Definitions:
    return defs() if callable(defs) else defs


def test_linkedin_asset_specs_snapshot():
    graph = _loaded().resolve_asset_graph()
    specs = {k.path[-1]: graph.get(k) for k in graph.get_all_asset_keys() if k.path[0] == "linkedin"}
    assert set(specs) == set(LAYERS)
    for name, (group, upstream) in LAYERS.items():
        node = specs[name]
        assert node.group_name == group, name
        assert {p.path[-1] for p in node.parent_keys} == upstream, name
        assert node.owners == ["team:growth-data"], name
        assert node.description, name
        assert node.kinds, name


def test_blocking_checks_guard_features_against_leaks_and_personal_data():
    graph = _loaded().resolve_asset_graph()
    for project in ("linkedin", "byo_example"):
        checks = {c.name for c in graph.asset_check_keys if c.asset_key == dg.AssetKey([project, "features"])}
        assert {"no_label_leakage", "no_personal_data"} <= checks, project


def test_blocking_checks_guard_validated_contacts():
    graph = _loaded().resolve_asset_graph()
    checks = {c.name for c in graph.asset_check_keys if c.asset_key == dg.AssetKey(["linkedin", "validated_contacts"])}
    assert checks == {"schema_matches_config", "ids_unique", "rows_accounted_for", "quarantine_within_limits"}


def test_main_job_and_resources_are_defined():
    d = _loaded()
    assert d.resolve_job_def(ALL_SOURCES_JOB) is not None
    assert d.resolve_job_def("linkedin_pipeline") is not None
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
        assert dg.AssetKey([project, "feedback_outcomes"]) in labels.parent_keys, project
