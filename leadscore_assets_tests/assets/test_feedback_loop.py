"""The feedback loop end to end: the real sensor on a real Dagster instance, the runs it requests,
and the champion/challenger decision those runs take.

One module-scoped LinkedIn project (1,500 demo contacts, dummy + logistic regression) is run
once to create the champion; every test then drops CRM outcome files into its feedback folder
and ticks the sensor the way the daemon does (the cursor each tick returns is the next tick's),
or starts a retrain with a config copy, and asserts what a user would see: run requests, rows
in the warehouse, MLflow aliases and tags. Each test judges against the champion it finds, so
the tests hold in any order; the leads of every outcome file are disjoint from earlier ones.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import time
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from leadscore_assets.demo_data import linkedin
from leadscore_assets.lib.project.config import ProjectConfig
from leadscore_assets.lib.features.frame import feature_set
from leadscore_assets.resources.warehouse import process_start
from leadscore_assets.testing.feedback_loop import FeedbackLoop, step_failures
from leadscore_assets.testing.runs import with_candidates

pytestmark = pytest.mark.slow  # a champion and a retrain run per case: `pytest -m slow`

ROWS, EXPORT_SEED = 1500, 21
CANDIDATES = ["dummy", "logistic_regression"]


def with_policy(config: ProjectConfig, **policy) -> ProjectConfig:
    return config.model_copy(update={"promotion": config.promotion.model_copy(update=policy)})


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def materialized(result) -> set[str]:
    return {e.asset_key.path[-1] for e in result.get_asset_materialization_events()}


@pytest.fixture(scope="module")
def loop(tmp_path_factory, linkedin_config):
    """The project after its first full run: a champion exists, the feedback folder is empty and
    the sensor has ticked once (nothing to do)."""
    root = tmp_path_factory.mktemp("feedback_loop")
    data_dir, instance_dir = root / "data", root / "dagster_home"
    instance_dir.mkdir()
    linkedin.write(data_dir, rows=ROWS, seed=EXPORT_SEED)
    instance = dg.DagsterInstance.local_temp(tempdir=str(instance_dir), overrides={"telemetry": {"enabled": False}})
    loop = FeedbackLoop(with_candidates(linkedin_config, CANDIDATES), data_dir, instance)
    first = loop.execute()
    assert first.success, step_failures(first)
    assert loop.alias("champion") == "1"
    first_tick = loop.tick()
    assert not first_tick.run_requests and first_tick.skip_message == "no new complete feedback file"
    yield loop
    instance.dispose()


# --------------------------------------------------------------------------------------------
# The sensor: readiness and idempotence
# --------------------------------------------------------------------------------------------


def test_new_file_is_requested_once_after_it_settles_and_its_run_relabels_and_retrains(loop):
    path = loop.drop("crm_won_lost_2026-09.csv", n=80, seed=101)
    data = path.read_bytes()
    first = loop.tick()
    assert first.run_requests == []
    assert "crm_won_lost_2026-09.csv (not complete yet)" in first.skip_message
    second = loop.tick()
    assert len(second.run_requests) == 1
    request = second.run_requests[0]
    assert request.run_key == sha256(data)
    assert request.run_config["ops"] == {"linkedin_land_feedback": {"config": {
        "files": [str(path)], "content_hashes": [sha256(data)]}}}
    assert loop.requests_until_quiet() == []

    sent = pd.read_csv(path, dtype=str)
    leads = list(sent.lead_id)
    before = loop.query("SELECT lead_id, label_source FROM linkedin.labels WHERE list_contains(?, lead_id)", [leads])
    assert len(before) == len(leads) and before.label_source.isna().all()  # open leads: unlabelled by the rule
    decisions_before = len(loop.decisions())

    result = loop.execute(request)
    assert result.success, step_failures(result)
    assert {"feedback_outcomes", "labels", "candidate_models", "evaluation_report", "champion_model",
            "lead_scores"} <= materialized(result)
    runs = loop.instance.get_runs(filters=dg.RunsFilter(tags={"dagster/run_key": request.run_key}))
    assert [r.run_id for r in runs] == [result.run_id]

    # outcomes landed with their provenance
    landed = loop.query("SELECT * FROM linkedin.feedback_outcomes WHERE content_hash = ? ORDER BY row_number",
                        [request.run_key])
    assert list(landed.lead_id) == leads
    assert (landed.file == path.name).all() and list(landed.row_number) == list(range(1, len(leads) + 1))
    received = datetime.fromtimestamp(path.stat().st_mtime, UTC).replace(tzinfo=None)
    assert (abs(landed.received_at - received) < pd.Timedelta(seconds=1)).all()
    assert (landed.outcome_at == pd.to_datetime(sent.outcome_at).dt.tz_localize(None)).all()
    batch = loop.query("SELECT * FROM linkedin.feedback_batches WHERE content_hash = ?", [request.run_key])
    assert batch[["file", "data_rows", "outcomes", "quarantined", "unknown_leads"]].to_dict("records") == [
        {"file": path.name, "data_rows": len(leads), "outcomes": len(leads), "quarantined": 0, "unknown_leads": 0}]
    assert batch.dagster_run_id.iloc[0] == result.run_id

    # the CRM outcome is now the lead's label; half the newest outcomes (stratified) are held out
    # for judging, the other half trained on from this first file on
    labels = loop.query("SELECT lead_id, label, label_source, feedback_hash FROM linkedin.labels "
                        "WHERE list_contains(?, lead_id) ORDER BY lead_id", [leads])
    expected = sent.set_index("lead_id").outcome.map(loop.config.feedback.outcome_labels)
    assert (labels.label_source == "crm_feedback").all() and (labels.feedback_hash == request.run_key).all()
    assert (labels.set_index("lead_id").label == expected.loc[labels.lead_id]).all()
    newest = loop.query("SELECT split, label FROM linkedin.features WHERE newest_feedback")
    assert len(newest) == len(leads) and set(newest.split) == {"train", "test"}
    held = newest[newest.split == "test"]
    assert abs(len(held) - len(leads) / 2) <= 1 and held.label.nunique() == 2

    # retrained: a challenger registered by this run and judged in one decision row
    assert len(loop.decisions()) == decisions_before + 1
    decision = loop.decision_of(result.run_id)
    version = loop.version_of(result.run_id)
    assert decision.challenger_version == str(version.version)
    assert decision.feedback_rows_held_out == len(held) and decision.feedback_rows_trained_on >= len(leads) - len(held)
    assert decision.challenger_roc_auc_95ci.count(" - ") == 1
    run_tags = loop.instance.get_run_by_id(result.run_id).tags  # the run page shows the decision
    assert run_tags["leadscore/linkedin.decision"] == f"{decision.decision} v{version.version}"
    assert run_tags["leadscore/linkedin.decision_reason"] == decision.reason[:250]
    assert decision.decision in {"promoted", "rejected"} and decision.reason
    assert version.tags["leadscore.decision"] == decision.decision
    assert version.tags["leadscore.decision_reason"] == decision.reason


def test_same_content_again_under_any_name_is_not_requested(loop):
    path = loop.drop("crm_export.csv", n=30, seed=202)
    [request] = loop.requests_until_quiet()
    assert request.run_key == sha256(path.read_bytes())

    assert loop.requests_until_quiet() == []  # the next ticks: handed out, its run not over
    landing = loop.execute(request)  # "landed" means published: the run reaches `published`
    assert landing.success, step_failures(landing)
    assert "crm_export.csv: landed (in the published warehouse, attempt 1)" in loop.tick().skip_message
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))  # touched, same bytes
    assert loop.requests_until_quiet() == []

    copy = shutil.copyfile(path, path.with_name("crm_export (1).csv"))  # dropped twice under another name
    first, second = loop.tick(), loop.tick()
    assert first.run_requests == second.run_requests == []
    assert "crm_export (1).csv (skipped: same content as crm_export.csv, already landed)" in second.skip_message
    assert "waiting" not in second.skip_message  # a repeat is not pending: it is skipped
    assert loop.requests_until_quiet() == []  # reported once, never requested

    Path(copy).unlink()
    data = path.read_bytes()
    path.unlink()
    assert loop.requests_until_quiet() == []
    path.write_bytes(data)  # the same export dropped again later under its first name
    assert loop.requests_until_quiet() == []


@pytest.mark.parametrize("how", ["still_growing", "temporary_name"])
def test_partially_written_file_waits_until_complete(loop, how):
    data = loop.outcome_bytes(n=30, seed=303 if how == "still_growing" else 304)
    path = loop.folder / f"crm_partial_{how}.csv"
    if how == "still_growing":
        half = len(data) // 2
        path.write_bytes(data[:half])
        first = loop.tick()
        assert first.run_requests == [] and f"{path.name} (not complete yet)" in first.skip_message
        with path.open("ab") as fh:  # the writer is still going: the size changed since the last tick
            fh.write(data[half:])
        assert loop.tick().run_requests == []
    else:
        partial = path.with_name(path.name + ".part")
        partial.write_bytes(data)
        for _ in range(3):
            tick = loop.tick()
            assert tick.run_requests == [] and partial.name not in tick.skip_message
        partial.rename(path)  # the download finished
        assert loop.tick().run_requests == []  # first seen under its final name: settles first
    requests = loop.requests_until_quiet()
    assert [r.run_key for r in requests] == [sha256(data)]
    assert requests[0].run_config["ops"]["linkedin_land_feedback"]["config"]["files"] == [str(path)]
    assert loop.requests_until_quiet() == []
    loop.loaded_by_hand(requests)


def test_corrupt_files_do_not_break_the_sensor_and_their_runs_keep_the_valid_rows(loop):
    garbage = b"PK\x03\x04\x14\x00\x06\x00" + np.random.default_rng(4).integers(0, 256, 4000, dtype=np.uint8).tobytes()
    (loop.folder / "outcomes_q3.csv").write_bytes(garbage)  # a spreadsheet saved with a .csv name
    rows = loop.outcome_rows(n=60, seed=404, bad_rows=3)  # + unknown lead, bad timestamp, unknown outcome
    valid = rows[rows.lead_id.str.startswith("lea_") & (rows.outcome != "maybe later")
                 & (rows.outcome_at != "last tuesday")]
    spare = loop.outcome_rows(n=1, seed=405).lead_id.iloc[0]
    text = rows.to_csv(index=False) + "lea_0000,won\n" + f"{spare},won,2026-0"  # a ragged row, a cut-off last row
    half_valid = loop.folder / "outcomes_half_saved.csv"
    half_valid.write_text(text)

    requests = loop.requests_until_quiet()  # never raises
    by_file = {r.tags["leadscore/feedback_file"]: r for r in requests}
    assert set(by_file) == {"outcomes_q3.csv", "outcomes_half_saved.csv"}
    assert by_file["outcomes_q3.csv"].run_key == sha256(garbage)

    for name in ("outcomes_q3.csv", "outcomes_half_saved.csv"):  # the garbage lands first
        result = loop.execute(by_file[name])
        assert result.success, (name, step_failures(result))

    garbage_q = loop.query("SELECT * FROM linkedin.feedback_quarantine WHERE content_hash = ?", [sha256(garbage)])
    assert list(garbage_q.row_number) == [0]
    assert "outcomes_q3.csv: file is binary (contains NUL bytes)" in garbage_q.reason.iloc[0]

    digest = sha256(half_valid.read_bytes())
    quarantined = loop.query("SELECT * FROM linkedin.feedback_quarantine WHERE content_hash = ? ORDER BY row_number",
                             [digest])
    reasons = list(quarantined.reason)
    assert len(reasons) == 4, reasons
    assert all(r.startswith("outcomes_half_saved.csv row ") for r in reasons)
    for expected, n in (("column 'outcome': is not a known outcome", 1),
                        ("column 'outcome_at': is not a valid timestamp", 2),  # 'last tuesday' and '2026-0'
                        ("has 2 values but the header has 3 columns", 1)):
        assert sum(expected in r for r in reasons) == n, (expected, reasons)
    assert not any(v in r for r in reasons for v in ("maybe later", "last tuesday", "'2026-0'"))
    unknown = loop.query("SELECT lead_id, file, row_number FROM linkedin.feedback_unknown_leads WHERE content_hash = ?",
                         [digest])
    assert list(unknown.lead_id) == ["unknown_404_0000"] and (unknown.file == half_valid.name).all()
    landed = loop.query("SELECT lead_id FROM linkedin.feedback_outcomes WHERE content_hash = ?", [digest])
    assert sorted(landed.lead_id) == sorted(valid.lead_id)
    batch = loop.query("SELECT * FROM linkedin.feedback_batches WHERE content_hash = ?", [digest]).iloc[0]
    assert batch.data_rows == len(rows) + 2 == batch.outcomes + batch.quarantined + batch.unknown_leads
    relabelled = loop.query("SELECT label_source FROM linkedin.labels WHERE list_contains(?, lead_id)",
                            [list(valid.lead_id)])
    assert len(relabelled) == len(valid) and (relabelled.label_source == "crm_feedback").all()


def test_a_landing_whose_run_fails_is_retried_and_a_resent_copy_is_not_skipped(loop):
    """The fault seen for real: the run that took a file failed (another run held the project's
    lease), the file was never tried again and the same outcomes re-sent under a new name were
    skipped as "already landed": nothing landed. Landed now means published."""
    path = loop.drop("crm_won_lost_busy.csv", n=40, seed=505)
    digest = sha256(path.read_bytes())
    [first] = loop.requests_until_quiet()
    assert first.run_key == digest

    lease = loop.data_dir / "warehouse" / loop.config.name / "run.lock"
    lease.write_text(json.dumps({"run_id": "another-run", "host": socket.gethostname(), "pid": os.getpid(),
                                 "pid_start": process_start(os.getpid()), "since": "2026-11-12T09:00:00+00:00"}))
    try:
        busy = loop.execute(first)
    finally:
        lease.write_text("")
    assert not busy.success and any("is being run by Dagster run another-run" in f for f in step_failures(busy))
    tables = set(loop.query("SELECT table_name FROM duckdb_tables() WHERE schema_name = 'linkedin'").table_name)
    assert "feedback_batches" not in tables or loop.query(
        "SELECT count(*) AS n FROM linkedin.feedback_batches WHERE content_hash = ?", [digest]).n[0] == 0

    copy = shutil.copyfile(path, path.with_name("crm_won_lost_busy (resent).csv"))  # the CRM sends it again
    os.utime(copy, (time.time() - 60, time.time() - 60))  # synced in complete: ready when first seen
    tick = loop.tick()
    [retry] = tick.run_requests  # requested again, once, under a new run key (Dagster skips a used one)
    assert retry.run_key == f"{digest}:attempt-2"
    assert retry.tags["leadscore/feedback_file"] == Path(copy).name
    assert retry.tags["leadscore/feedback_retry_of"] == busy.run_id
    assert loop.tick().run_requests == []  # in flight: not asked for twice

    landed = loop.execute(retry)
    assert landed.success, step_failures(landed)
    batches = loop.query("SELECT file, outcomes FROM linkedin.feedback_batches WHERE content_hash = ?", [digest])
    assert batches.to_dict("records") == [{"file": Path(copy).name, "outcomes": 40}]
    after = loop.tick()
    assert after.run_requests == [] and f"{Path(copy).name}: landed (in the published warehouse, attempt 2)" \
        in after.skip_message
    third = shutil.copyfile(path, path.with_name("crm_won_lost_busy (third time).csv"))
    os.utime(third, (time.time() - 60, time.time() - 60))
    again = loop.tick()
    assert again.run_requests == []  # now that it is published, the same content is skipped
    assert "crm_won_lost_busy (third time).csv (skipped: same content as crm_won_lost_busy (resent).csv, " \
           "already landed)" in again.skip_message


# --------------------------------------------------------------------------------------------
# Champion / challenger
# --------------------------------------------------------------------------------------------


def test_worse_challenger_is_not_promoted(loop):
    champion = loop.alias("champion")
    # pooling every job title, industry, location and weekday into "infrequent" leaves the
    # challenger little to learn from: it still beats the dummy, but not the champion
    crippled = loop.config.model_copy(update={"features": loop.config.features.model_copy(
        update={"categorical_min_frequency": 100})})
    result = loop.execute(config=crippled)
    assert result.success, step_failures(result)
    decision = loop.decision_of(result.run_id)
    assert decision.challenger_metric < decision.champion_metric - 0.005  # worse on the same held-out rows
    assert decision.decision == "rejected"
    assert decision.reason.startswith(f"rejected: gain {decision.metric_gain:+.4f} < min_gain")
    assert decision.champion_version == champion
    version = loop.version_of(result.run_id)
    assert loop.alias("champion") == champion
    assert loop.alias("challenger") == str(version.version) and "challenger" in version.aliases
    assert version.tags["leadscore.decision"] == "rejected"
    assert version.tags["leadscore.decision_reason"] == decision.reason
    scores = loop.query("SELECT DISTINCT model_version FROM linkedin.lead_scores")
    assert list(scores.model_version) == [champion]  # leads are still scored by the champion


@pytest.mark.parametrize(("guardrail", "blocked"), [
    pytest.param({"max_prediction_psi": 0.0}, "prediction PSI", id="prediction_psi"),
    pytest.param({"max_feature_drift_share": -1.0}, "feature drift share", id="feature_drift_share"),
])
def test_challenger_winning_on_metrics_but_failing_a_drift_gate_is_not_promoted(loop, guardrail, blocked):
    champion = loop.alias("champion")
    eager = with_policy(loop.config, min_gain=-1.0, **guardrail)  # on metrics alone, any challenger would win
    result = loop.execute(config=eager)
    assert result.success, step_failures(result)
    decision = loop.decision_of(result.run_id)
    assert decision.metric_gain >= -1.0
    assert decision.decision == "rejected"
    assert decision.reason.startswith(f"rejected by drift guardrail: {blocked}"), decision.reason
    assert decision.prediction_psi > 0 and decision.feature_drift_share >= 0
    assert loop.alias("champion") == champion
    version = loop.version_of(result.run_id)
    assert loop.alias("challenger") == str(version.version)
    assert version.tags["leadscore.decision"] == "rejected"
    assert "drift guardrail" in version.tags["leadscore.decision_reason"]


def _corrupt_export(loop) -> ProjectConfig:
    export, _ = linkedin.generate(rows=300, seed=EXPORT_SEED)
    export["createdAt"] = "last tuesday"
    export.to_csv(loop.data_dir / "linkedin" / "corrupt_export.csv", index=False)
    return loop.config.model_copy(update={"source": loop.config.source.model_copy(
        update={"path": "linkedin/corrupt_export.csv"})})


def _dummy_only(loop) -> ProjectConfig:
    return with_candidates(loop.config, ["dummy"])  # trains, then cannot produce a usable challenger


@pytest.mark.parametrize(("broken_config", "stops_at"), [
    # validation blocks before any model work
    pytest.param(_corrupt_export, "quarantine_within_limits", id="corrupt_export"),
    # fails after training, before the challenger is registered or judged
    pytest.param(_dummy_only, "evaluation_report", id="training_fails_midway"),
])
def test_a_failed_retrain_never_loses_the_champion(loop, broken_config, stops_at):
    champion, versions, decisions = loop.alias("champion"), loop.versions(), len(loop.decisions())
    scores_before = loop.query("SELECT lead_id, probability, model_version FROM linkedin.lead_scores ORDER BY lead_id")
    result = loop.execute(config=broken_config(loop))
    assert not result.success
    failed = {e.step_key for e in result.all_events if e.event_type_value == "STEP_FAILURE"}
    failed_checks = {e.check_name for e in result.get_asset_check_evaluations() if not e.passed}
    assert stops_at in failed_checks or any(stops_at in s for s in failed), (failed, failed_checks)
    assert not materialized(result) & {"champion_model", "lead_scores"}

    assert loop.alias("champion") == champion
    assert loop.versions() == versions  # nothing registered
    assert len(loop.decisions()) == decisions
    model = loop.load_champion()
    features = loop.query("SELECT * FROM linkedin.features")
    p = model.predict_proba(features[feature_set(loop.config).columns])[:, 1]
    assert ((p > 0) & (p < 1)).all()
    pd.testing.assert_frame_equal(
        loop.query("SELECT lead_id, probability, model_version FROM linkedin.lead_scores ORDER BY lead_id"),
        scores_before)


def test_challenger_that_beats_the_policy_is_promoted_and_the_old_champion_kept_as_previous(loop):
    old = loop.alias("champion")
    generous = with_policy(loop.config, min_gain=-1.0, max_prediction_psi=1e9, max_feature_drift_share=1.0)
    result = loop.execute(config=generous)
    assert result.success, step_failures(result)
    version = loop.version_of(result.run_id)
    decision = loop.decision_of(result.run_id)
    assert decision.decision == "promoted"
    assert decision.reason.startswith(f"promoted: gain {decision.metric_gain:+.4f} >= min_gain -1.0")
    assert decision.champion_version == old and decision.challenger_version == str(version.version)
    assert loop.alias("champion") == str(version.version) != old
    assert loop.alias("previous") == old
    assert loop.alias("challenger") != str(version.version)
    assert version.tags["leadscore.decision"] == "promoted"
    scores = loop.query("SELECT DISTINCT model_version FROM linkedin.lead_scores")
    assert list(scores.model_version) == [str(version.version)]  # rescored by the new champion
    assert loop.load_champion() is not None
