"""The demo's progress lines, read from Dagster's log as it is written (leadscore_assets/run_progress.py)."""

import io

from leadscore_assets import run_progress

RUN = "55014274-3d0c-482e-82ff-17a6bd84cff6"
PREFIX = f"2026-12-06 10:54:17 +0000 - dagster - DEBUG - score_all_sources - {RUN} - "
LOG = [
    PREFIX + "13592 - RUN_START - Started execution of run for \"score_all_sources\".",
    PREFIX + "14348 - email_crm_load_source - STEP_START - Started execution of step \"email_crm_load_source\".",
    "2026-12-06 10:54:18 +0000 - dagster - INFO - score_all_sources - " + RUN + " - email_crm_load_source - loaded 5 rows",
    PREFIX + "14348 - email_crm_load_source - STEP_SUCCESS - Finished execution of step \"email_crm_load_source\" in 576ms.",
    PREFIX + "14350 - web_sessions__candidate_models - STEP_START - Started execution of step \"web_sessions__candidate_models\".",
    "/x/site-packages/sklearn/preprocessing/_target_encoder.py:342: FutureWarning: `TargetEncoder.shuffle` is deprecated",
    "/x/site-packages/sklearn/preprocessing/_target_encoder.py:342: FutureWarning: `TargetEncoder.shuffle` is deprecated",
    "2026/12/06 13:16:48 WARNING mlflow.sklearn: Saving scikit-learn models in the pickle format",
    PREFIX + "14350 - web_sessions__candidate_models - STEP_FAILURE - Execution of step \"web_sessions__candidate_models\" failed.",
    PREFIX + "13592 - RUN_FAILURE - Execution of run for \"score_all_sources\" failed.",
]


def test_one_line_per_finished_step_and_warnings_counted_not_repeated():
    out = io.StringIO()
    progress = run_progress.Progress(names=run_progress.projects(), out=out)
    for line in LOG:
        progress.line(line)
    text = out.getvalue()
    assert f"run {RUN} of score_all_sources started" in text
    assert "email_crm     started (load_source)" in text
    assert "email_crm     load_source" in text and " ok " in text and "0.6 s" in text
    assert "web_sessions  candidate_models" in text and "FAILED" in text
    assert "loaded 5 rows" not in text and "TargetEncoder" not in text  # the log's detail stays in the log
    assert progress.outcome == "RUN_FAILURE"
    assert progress.summary() == ["email_crm: 1 steps ok", "web_sessions: 0 steps ok, FAILED: candidate_models"]
    warnings = progress.warnings_summary()
    assert warnings[0] == "3 warnings in the log, by kind:"
    assert "2 x FutureWarning (sklearn): `TargetEncoder.shuffle` is deprecated" in warnings[1]


def test_a_long_step_is_named_while_it_runs():
    out = io.StringIO()
    progress = run_progress.Progress(names=run_progress.projects(), out=out)
    progress.line(LOG[4])
    progress.last_print -= run_progress.HEARTBEAT_S
    progress.heartbeat()
    assert "still running: web_sessions candidate_models (0:00)" in out.getvalue()


def test_step_names_split_on_the_longest_project_name():
    names = ["byo_example", "email_crm"]
    assert run_progress.split_step("email_crm__labels", names) == ("email_crm", "labels")
    assert run_progress.split_step("byo_example_build_features", names) == ("byo_example", "build_features")
    assert run_progress.split_step("other_step", names) == ("-", "other_step")
    assert run_progress.step_seconds('Finished execution of step "x" in 1m12.5s.') == "72.5 s"
