"""A feedback file counts as landed only once its content is in the PUBLISHED warehouse.

The real sensor, evaluated tick by tick on a real (ephemeral) Dagster instance, with the runs it
requested recorded in that instance as the daemon records them (job, `dagster/run_key` tag) and
the published warehouse written the way `published` leaves it (`<project>.feedback_batches`).
No pipeline runs here: the end-to-end case (a run that fails on a busy project, then the retry
publishes) is in test_feedback_loop.py (slow).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from leadscore_assets.assets.tables import FEEDBACK_BATCHES
from leadscore_assets.resources import feedback_inbox
from leadscore_assets.resources.feedback_inbox import file_sha256
from leadscore_assets.resources.warehouse import published_file
from leadscore_assets.testing.feedback_files import HEADER
from leadscore_assets.testing.feedback_loop import JOB, FeedbackLoop

OUTCOMES = HEADER + "".join(f"lea_{i:04d},{'won' if i % 3 else 'lost'},2026-11-0{1 + i % 9}\n" for i in range(300))


class Inbox(FeedbackLoop):
    """The LinkedIn feedback folder, its sensor ticked with the cursor the daemon would keep
    (FeedbackLoop), and the runs and publishes the daemon and a run would leave, recorded by hand."""

    def __init__(self, config, data_dir: Path, instance: dg.DagsterInstance):
        super().__init__(config, data_dir, instance)
        self.folder.mkdir(parents=True)

    def drop_text(self, name: str, content: str = OUTCOMES) -> Path:
        """A complete outcome file of `content`: untouched for longer than the quiet time."""
        path = self.folder / name
        path.write_text(content)
        old = time.time() - 60
        os.utime(path, (old, old))
        return path

    def run(self, request: dg.RunRequest, status: dg.DagsterRunStatus) -> str:
        """Record the run the daemon would launch for `request`, in the state it ended in."""
        run_id = str(uuid.uuid4())
        self.instance.add_run(dg.DagsterRun(job_name=JOB, run_id=run_id, status=status, run_config={},
                                            tags={**request.tags, "dagster/run_key": request.run_key}))
        return run_id

    def publish(self, content_hash: str, name: str, run_id: str) -> None:
        """What a run that reached `<project>/published` leaves: its batch row in the published file."""
        path = published_file(self.data_dir / "warehouse", self.config.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        with duckdb.connect(str(path)) as conn:
            FEEDBACK_BATCHES.append(conn, self.config, pd.DataFrame([{
                "file": name, "content_hash": content_hash, "received_at": pd.Timestamp("2026-11-10"),
                "data_rows": 300, "outcomes": 300, "quarantined": 0, "unknown_leads": 0, "dagster_run_id": run_id}]))

    def state(self) -> dict:
        return json.loads(self.cursor)


@pytest.fixture
def inbox(tmp_path, linkedin_config):
    instance = dg.DagsterInstance.ephemeral()
    yield Inbox(linkedin_config, tmp_path / "data", instance)
    instance.dispose()


@pytest.mark.parametrize("resent", [False, True], ids=["same_file", "resent_under_new_name"])
def test_a_failed_landing_is_requested_again_and_only_a_published_one_counts(inbox, resent):
    path = inbox.drop_text("crm_outcomes.csv")
    digest = file_sha256(path)
    [first] = inbox.tick().run_requests
    assert first.run_key == digest and first.tags["leadscore/feedback_attempt"] == "1"

    # requested is not landed: while its run is queued or running, nothing more is asked for
    queued = inbox.run(first, dg.DagsterRunStatus.STARTED)
    waiting = inbox.tick()
    assert waiting.run_requests == []
    assert f"landing: crm_outcomes.csv (run {queued}: STARTED)" in waiting.skip_message
    assert inbox.state()["requested"][digest]["attempt"] == 1 and digest not in inbox.state()["landed"]

    # the run fails before publishing (the project was busy): the file is requested again under a
    # new run key (Dagster would skip the old one); a copy re-sent under another name is that retry
    inbox.instance.delete_run(queued)
    failed = inbox.run(first, dg.DagsterRunStatus.FAILURE)
    if resent:
        path.unlink()
        inbox.drop_text("crm_outcomes_resent.csv")
    [retry] = inbox.tick().run_requests
    assert retry.run_key == f"{digest}:attempt-2" != first.run_key
    assert retry.run_config["ops"]["linkedin_land_feedback"]["config"]["content_hashes"] == [digest]
    assert files_of_single(retry) == ("crm_outcomes_resent.csv" if resent else "crm_outcomes.csv")
    assert retry.tags["leadscore/feedback_retry_of"] == failed
    assert inbox.state()["requested"][digest]["attempt"] == 2

    # a run that SUCCEEDS is still not landed until the content is in the published warehouse:
    # the sensor reads runs before the warehouse, and `published` swaps the file in before success
    done = inbox.run(retry, dg.DagsterRunStatus.SUCCESS)
    inbox.publish(digest, files_of_single(retry), done)
    landed = inbox.tick()
    assert landed.run_requests == [] and "landed (in the published warehouse, attempt 2)" in landed.skip_message
    assert inbox.state()["landed"] == {digest: files_of_single(retry)}
    assert inbox.state()["requested"] == inbox.state()["failed"] == {}

    # landed for real: the same content again under any name is skipped
    inbox.drop_text("crm_outcomes (again).csv")
    again = inbox.tick()
    assert again.run_requests == []
    assert (f"crm_outcomes (again).csv (skipped: same content as {files_of_single(retry)}, already landed)"
            in again.skip_message)
    assert inbox.tick().run_requests == []


def files_of_single(request: dg.RunRequest) -> str:
    return request.tags["leadscore/feedback_file"]


def test_a_copy_sent_while_the_landing_is_in_flight_waits_and_is_the_retry_if_it_fails(inbox):
    path = inbox.drop_text("crm_outcomes.csv")
    [first] = inbox.tick().run_requests
    run = inbox.run(first, dg.DagsterRunStatus.NOT_STARTED)
    inbox.drop_text("crm_outcomes (copy).csv")
    data = inbox.tick()
    assert data.run_requests == []
    assert "crm_outcomes (copy).csv (waiting: same content as crm_outcomes.csv, whose landing is in progress)" \
        in data.skip_message
    inbox.instance.delete_run(run)
    inbox.run(first, dg.DagsterRunStatus.CANCELED)
    path.unlink()  # the original is gone: the copy carries the retry
    [retry] = inbox.tick().run_requests
    assert files_of_single(retry) == "crm_outcomes (copy).csv" and retry.run_key.endswith(":attempt-2")


def test_content_published_by_another_run_is_landed_without_a_request(inbox):
    path = inbox.drop_text("crm_outcomes.csv")
    inbox.publish(file_sha256(path), "backfilled_by_hand.csv", "manual-run")
    data = inbox.tick()
    assert data.run_requests == []
    assert "crm_outcomes.csv (skipped: same content as backfilled_by_hand.csv, already landed)" in data.skip_message


def test_a_request_whose_run_never_appears_is_requested_again(inbox, monkeypatch):
    inbox.drop_text("crm_outcomes.csv")
    [first] = inbox.tick().run_requests
    quiet = inbox.tick()  # the daemon has not created the run yet: give it time
    assert quiet.run_requests == [] and "run not created yet" in quiet.skip_message
    monkeypatch.setattr(feedback_inbox, "REQUEST_GRACE_S", 0.0)
    [again] = inbox.tick().run_requests
    assert again.run_key == f"{first.run_key}:attempt-2"


def test_repeated_failures_back_off_and_a_vanished_file_waits_to_be_resent(inbox):
    path = inbox.drop_text("crm_outcomes.csv")
    digest = file_sha256(path)
    [first] = inbox.tick().run_requests
    inbox.run(first, dg.DagsterRunStatus.FAILURE)
    [second] = inbox.tick().run_requests  # the first retry: at once
    inbox.run(second, dg.DagsterRunStatus.FAILURE)
    backing_off = inbox.tick()
    assert backing_off.run_requests == [] and "failed, will be retried: crm_outcomes.csv (attempt 2 FAILURE; retry at" \
        in backing_off.skip_message
    entry = inbox.state()["failed"][digest]
    assert entry["attempt"] == 2 and entry["retry_at"] > time.time() + 30

    # a retry due while no file has the content waits for it to be re-sent, without a request
    state = inbox.state()
    state["failed"][digest]["retry_at"] = time.time() - 1
    inbox.cursor = json.dumps(state)
    path.unlink()
    gone = inbox.tick()
    assert gone.run_requests == [] and "re-send the file" in gone.skip_message
    inbox.drop_text("crm_outcomes_2026-11-12.csv")  # someone re-sends it: tried at once
    [third] = inbox.tick().run_requests
    assert third.run_key == f"{digest}:attempt-3" and files_of_single(third) == "crm_outcomes_2026-11-12.csv"


def test_a_cursor_of_the_old_sensor_is_checked_against_the_warehouse(inbox):
    """The live fault: the old cursor counted a file as processed when its run was requested;
    its run failed, so nothing was published. The new sensor reads that cursor and retries."""
    path = inbox.drop_text("crm_won_lost.csv")
    lost, kept = file_sha256(path), file_sha256(inbox.drop_text("crm_earlier.csv", HEADER + "lea_9999,won,2026-10-01\n"))
    inbox.publish(kept, "crm_earlier.csv", "earlier-run")
    stat = {p.name: [p.stat().st_size, p.stat().st_mtime_ns] for p in inbox.folder.iterdir()}
    inbox.cursor = json.dumps({"version": 1, "processed": {lost: "crm_won_lost.csv", kept: "crm_earlier.csv"},
                               "pending": {}, "settled": stat})
    old_request = dg.RunRequest(run_key=lost, tags={"leadscore/feedback_file": "crm_won_lost.csv"})
    inbox.run(old_request, dg.DagsterRunStatus.FAILURE)
    [retry] = inbox.tick().run_requests
    assert retry.run_key == f"{lost}:attempt-2" and files_of_single(retry) == "crm_won_lost.csv"
    assert inbox.state()["landed"] == {kept: "crm_earlier.csv"}
