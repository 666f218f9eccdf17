import hashlib
import json
import os
import time
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from leadscore_assets.lib.feedback import (
    file_sha256,
    mark_processed,
    parse_feedback_file,
    resolve_conflicts,
    scan_folder,
)

HEADER = "lead_id,outcome,outcome_at\n"
RECEIVED = datetime(2026, 6, 1, 12, 0)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "feedback" / "linkedin"
    path.mkdir(parents=True)
    return path


def tick(folder: Path, state: dict | None):
    """One sensor tick, with the cursor going through JSON as it does in Dagster."""
    result = scan_folder(folder, json.loads(json.dumps(state)) if state is not None else None)
    return result, json.loads(json.dumps(result.state))


def names(items) -> list[str]:
    return [getattr(i, "path", i).name for i in items]


def parse(path: Path, known: set[str] | None = None, **kwargs):
    return parse_feedback_file(path, content_hash=f"hash-{path.name}", known_lead_ids=known, received_at=RECEIVED, **kwargs)


def write(folder: Path, name: str, content: str | bytes) -> Path:
    path = folder / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


# --- readiness and idempotence ----------------------------------------------------------------


def test_new_file_is_pending_first_ready_next_and_never_again(folder):
    write(folder, "fb_001.csv", HEADER + "L1,won,2026-05-01\n")
    first, state = tick(folder, None)
    assert names(first.pending) == ["fb_001.csv"] and first.ready == []
    second, state = tick(folder, state)
    assert names(second.ready) == ["fb_001.csv"] and second.pending == []
    assert len(second.ready[0].content_hash) == 64 and second.ready[0].size > 0
    third, state = tick(folder, state)
    assert third.ready == [] and third.pending == [] and third.duplicates == []


def test_identical_copy_under_another_name_is_a_duplicate_reported_once(folder):
    original = write(folder, "fb_001.csv", HEADER + "L1,won,2026-05-01\n")
    _, state = tick(folder, None)
    _, state = tick(folder, state)
    write(folder, "fb_001 (copy).csv", original.read_bytes())
    results = []
    for _ in range(4):
        result, state = tick(folder, state)
        results.append(result)
    assert all(r.ready == [] for r in results)
    reported = [d for r in results for d in r.duplicates]
    assert names(reported) == ["fb_001 (copy).csv"]
    assert reported[0].duplicate_of == "fb_001.csv"


OUTCOMES = HEADER + "L1,won,2026-05-01\nL2,lost,2026-05-02\n"
RESAVED = {
    "crlf": OUTCOMES.replace("\n", "\r\n").encode(),
    "bom": b"\xef\xbb\xbf" + OUTCOMES.encode(),
    "blank_lines": (OUTCOMES + "\n\n  \n").encode(),
    "excel": b"\xef\xbb\xbf" + (OUTCOMES + "\n").replace("\n", "\r\n").encode(),
    "utf16": OUTCOMES.encode("utf-16"),
}


@pytest.mark.parametrize("how", sorted(RESAVED))
def test_same_outcomes_resaved_differently_are_the_same_content(folder, how):
    original = write(folder, "fb_001.csv", OUTCOMES)
    _, state = tick(folder, None)
    first, state = tick(folder, state)
    write(folder, "fb_001 (resaved).csv", RESAVED[how])
    _, state = tick(folder, state)
    result, _ = tick(folder, state)
    assert result.ready == [] and names(result.duplicates) == ["fb_001 (resaved).csv"]
    assert result.duplicates[0].duplicate_of == "fb_001.csv"
    assert result.duplicates[0].content_hash == first.ready[0].content_hash == file_sha256(original)


def test_content_hash_of_a_clean_file_is_the_hash_of_its_bytes(folder):
    """Hashes already stored as run keys and in the cursor stay valid: only variants are normalised."""
    for name, data in [("clean.csv", OUTCOMES.encode()), ("no_final_line_end.csv", OUTCOMES.rstrip("\n").encode()),
                       ("binary.csv", b"PK\x03\x04\x00\r\n\x00")]:
        assert file_sha256(write(folder, name, data)) == hashlib.sha256(data).hexdigest(), name


def test_different_outcomes_are_different_content(folder):
    base = file_sha256(write(folder, "a.csv", OUTCOMES))
    assert file_sha256(write(folder, "b.csv", OUTCOMES.replace("lost", "won"))) != base
    assert file_sha256(write(folder, "c.csv", OUTCOMES + "L3,won,2026-05-03\n")) != base
    # a trailing tab is an empty last field, not whitespace: the row reads differently
    assert file_sha256(write(folder, "d.csv", OUTCOMES.replace("\t", "").replace("2026-05-02\n", "2026-05-02\t\n"))) != base


def test_two_identical_new_files_in_one_tick_are_handed_out_once(folder):
    write(folder, "a.csv", HEADER + "L1,won,2026-05-01\n")
    write(folder, "b.csv", HEADER + "L1,won,2026-05-01\n")
    _, state = tick(folder, None)
    result, _ = tick(folder, state)
    assert names(result.ready) == ["a.csv"] and names(result.duplicates) == ["b.csv"]


def test_growing_file_stays_pending_until_its_size_settles(folder):
    path = write(folder, "fb_002.csv", HEADER)
    state = None
    for row in range(3):
        result, state = tick(folder, state)
        assert result.ready == [] and names(result.pending) == ["fb_002.csv"]
        with path.open("a") as fh:
            fh.write(f"L{row},won,2026-05-01\n")
    result, state = tick(folder, state)  # last append seen for the first time
    assert names(result.pending) == ["fb_002.csv"]
    result, state = tick(folder, state)
    assert names(result.ready) == ["fb_002.csv"]


def test_temporary_and_non_csv_names_are_ignored(folder):
    for name in ["fb.csv.tmp", "fb.csv.part", "fb.csv.crdownload", ".fb.csv", "~$fb.csv", "notes.txt"]:
        write(folder, name, HEADER + "L1,won,2026-05-01\n")
    (folder / "archive.csv").mkdir()
    state = None
    for _ in range(3):
        result, state = tick(folder, state)
        assert result.ready == result.pending == result.duplicates == []


def test_empty_file_stays_pending_until_it_has_content(folder):
    path = write(folder, "fb_003.csv", b"")
    state = None
    for _ in range(3):
        result, state = tick(folder, state)
        assert names(result.pending) == ["fb_003.csv"] and result.ready == []
    path.write_text(HEADER + "L1,won,2026-05-01\n")
    _, state = tick(folder, state)
    result, _ = tick(folder, state)
    assert names(result.ready) == ["fb_003.csv"]


def test_file_rewritten_with_new_content_is_handed_out_again_but_touching_it_is_not(folder):
    path = write(folder, "export.csv", HEADER + "L1,replied,2026-05-01\n")
    _, state = tick(folder, None)
    first, state = tick(folder, state)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))  # touched, same bytes
    _, state = tick(folder, state)
    touched, state = tick(folder, state)
    assert touched.ready == [] and touched.duplicates == []
    path.write_text(HEADER + "L1,won,2026-05-09\n")
    _, state = tick(folder, state)
    rewritten, _ = tick(folder, state)
    assert names(rewritten.ready) == ["export.csv"]
    assert rewritten.ready[0].content_hash != first.ready[0].content_hash


def test_marked_processed_file_is_never_ready(folder):
    write(folder, "backfilled.csv", HEADER + "L1,won,2026-05-01\n")
    _, state = tick(folder, None)
    ready = scan_folder(folder, state).ready  # e.g. loaded by a manual run instead
    state = mark_processed(None, ready)
    _, state = tick(folder, state)
    result, _ = tick(folder, state)
    assert result.ready == [] and result.duplicates == []  # its own content: nothing to report


def test_missing_folder_is_an_empty_scan(tmp_path):
    result = scan_folder(tmp_path / "not_created_yet", None)
    assert result.ready == result.pending == result.duplicates == []
    assert json.loads(json.dumps(result.state)) == result.state


def test_state_stays_small_after_50_processed_files(folder):
    state = None
    for i in range(50):
        write(folder, f"fb_{i:03d}.csv", HEADER + f"L{i},won,2026-05-01\n" * 200)
        _, state = tick(folder, state)
        result, state = tick(folder, state)
        assert names(result.ready) == [f"fb_{i:03d}.csv"]
    cursor = json.dumps(state)
    assert len(state["processed"]) == 50 and state["pending"] == {}
    assert len(cursor) < 50 * 200  # hashes, names and sizes only: ~10x smaller than the data
    for path in folder.iterdir():
        path.unlink()
    _, state = tick(folder, state)
    assert state["settled"] == {} and len(state["processed"]) == 50  # gone names pruned, hashes kept


# --- parsing with quarantine ------------------------------------------------------------------


def test_half_valid_file_keeps_good_rows_and_quarantines_bad_ones_with_reasons(folder):
    path = write(folder, "fb_001.csv", HEADER + "\n".join([
        "L1,won,2026-05-01T10:00:00Z",
        "L2,lost,2026-05-02",
        ",won,2026-05-02",
        "L4,won,yesterday",
        "L5,maybe,2026-05-03",
        "L6,replied,now",
    ]) + "\n")
    batch = parse(path, known={"L1", "L2", "L4", "L5", "L6"})
    assert batch.outcomes["lead_id"].tolist() == ["L1", "L2"]
    reasons = dict(zip(batch.quarantined["row_number"], batch.quarantined["reason"]))
    assert reasons == {
        3: "fb_001.csv row 3 column 'lead_id': value is blank (required)",
        4: "fb_001.csv row 4 column 'outcome_at': value 'yesterday' is not a valid timestamp",
        5: "fb_001.csv row 5 column 'outcome': value 'maybe' is not a known outcome"
           " (expected one of: lost, no_reply, replied, won)",
        6: "fb_001.csv row 6 column 'outcome_at': value 'now' is not a valid timestamp",
    }
    assert batch.quarantined.set_index("row_number").loc[4, "outcome_at"] == "yesterday"  # raw value kept


def test_header_and_value_variations_are_normalised(folder):
    path = write(folder, "crm.csv", "\n".join([
        " Lead ID ;OUTCOME;Outcome At;Source;Notes",
        " L1 ; Won ;2026-05-01T12:00:00+02:00;;",
        "L2;No Reply;2026-05-02 08:30;hubspot;x",
        "L3;no-reply;2026-05-03;;",
    ]) + "\n")
    batch = parse(path)
    out = batch.outcomes
    assert batch.quarantined.empty
    assert out["lead_id"].tolist() == ["L1", "L2", "L3"]
    assert out["outcome"].tolist() == ["won", "no_reply", "no_reply"] and out["label"].tolist() == [1, 0, 0]
    assert out["outcome_at"].iloc[0] == pd.Timestamp("2026-05-01 10:00")  # converted to UTC, naive
    assert str(out["outcome_at"].dtype) == "datetime64[ns]"
    assert out["source"].tolist() == ["linkedin", "hubspot", "linkedin"]  # blank -> the source folder
    assert set(out["received_at"]) == {pd.Timestamp(RECEIVED)}
    assert parse(write(folder, "camel.csv", "leadId,outcome,outcomeAt\nL1,won,2026-05-01\n")).outcomes.shape[0] == 1


def test_missing_required_column_quarantines_every_row_with_a_file_level_reason(folder):
    path = write(folder, "fb_004.csv", "lead_id,outcome,date\nL1,won,2026-05-01\nL2,lost,2026-05-02\n")
    batch = parse(path)
    assert batch.outcomes.empty and batch.unknown_leads.empty
    q = batch.quarantined
    assert q["row_number"].tolist() == [0, 1, 2]
    assert q["reason"].str.contains("required column 'outcome_at' is missing").all()
    assert q.loc[q.row_number == 2, "raw_record"].item() == "L2,lost,2026-05-02"


def test_unknown_leads_are_reported_separately(folder):
    path = write(folder, "fb_005.csv", HEADER + "L1,won,2026-05-01\nGHOST,lost,2026-05-01\n")
    batch = parse(path, known={"L1"})
    assert batch.outcomes["lead_id"].tolist() == ["L1"]
    assert batch.unknown_leads["lead_id"].tolist() == ["GHOST"] and batch.quarantined.empty
    assert parse(path, known=None).outcomes.shape[0] == 2  # no known ids: nothing is unknown


def test_future_outcome_time_is_quarantined_so_it_cannot_win_every_conflict(folder):
    path = write(folder, "typo.csv", HEADER + "L1,won,2062-05-01\n")
    assert "later than the file's receipt" in parse(path).quarantined["reason"].item()


CORRUPT_FILES = {
    "binary.csv": bytes(range(256)) * 8,
    "zip_named_csv.csv": b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + bytes(200),
    "empty.csv": b"",
    "not_csv.csv": b"this is a note, not an export\n",
    "latin1.csv": (HEADER + "L1,won,2026-05-01\nL\xe92,won,2026-05-01\nL3,lost,2026-05-02\n").encode("latin-1"),
    "ragged.csv": (HEADER + "L1,won,2026-05-01\nL2,won\nL3,lost,2026-05-02,extra\nL4,lost,2026-05-02,,\n").encode(),
    "unclosed_quote.csv": (HEADER + 'L1,won,2026-05-01\n"L2,won,2026-05-01\nL3,lost,2026-05-02\n').encode(),
    "header_only.csv": HEADER.encode(),
    "utf16.csv": (HEADER + "L1,won,2026-05-01\n").encode("utf-16"),
}


@pytest.mark.parametrize("name", sorted(CORRUPT_FILES))
def test_corrupt_files_never_raise_and_every_row_lands_in_exactly_one_output(folder, name):
    batch = parse(write(folder, name, CORRUPT_FILES[name]))
    rows = [*batch.outcomes["row_number"], *batch.unknown_leads["row_number"],
            *batch.quarantined.loc[batch.quarantined.row_number > 0, "row_number"]]
    assert len(rows) == len(set(rows)) == batch.data_rows
    assert batch.quarantined["reason"].str.startswith(name).all()
    assert not batch.quarantined.empty or name == "utf16.csv"
    assert json.dumps(batch.quarantined.astype(str).to_dict("records"))  # storable (no lone surrogates)


def test_corrupt_files_say_what_is_wrong(folder):
    def file_reason(name):
        q = parse(write(folder, name, CORRUPT_FILES[name])).quarantined
        return q.loc[q.row_number == 0, "reason"].item()

    assert "binary" in file_reason("binary.csv") and "binary" in file_reason("zip_named_csv.csv")
    assert "empty" in file_reason("empty.csv")
    assert "not valid UTF-8" in file_reason("latin1.csv")
    assert "no data rows" in file_reason("header_only.csv")

    latin1 = parse(write(folder, "latin1.csv", CORRUPT_FILES["latin1.csv"]))
    assert latin1.outcomes["lead_id"].tolist() == ["L1", "L3"]
    assert "latin1.csv row 2 column 'lead_id'" in latin1.quarantined.loc[1, "reason"]

    ragged = parse(write(folder, "ragged.csv", CORRUPT_FILES["ragged.csv"]))
    assert ragged.outcomes["lead_id"].tolist() == ["L1", "L4"]  # blank trailing extras are harmless
    assert ragged.quarantined["reason"].tolist() == [
        "ragged.csv row 2: has 2 values but the header has 3 columns",
        "ragged.csv row 3: has 4 values but the header has 3 columns",
    ]

    unclosed = parse(write(folder, "unclosed_quote.csv", CORRUPT_FILES["unclosed_quote.csv"]))
    assert unclosed.outcomes["lead_id"].tolist() == ["L1"]
    assert "unclosed quote" in unclosed.quarantined["reason"].item()


# --- conflict resolution ----------------------------------------------------------------------


def test_conflicts_are_resolved_by_outcome_time_and_recorded(folder):
    # An older file received later must not override a newer outcome.
    newer = write(folder, "fb_010.csv", HEADER + "L1,won,2026-05-10\nL2,lost,2026-05-01\n")
    older = write(folder, "fb_011.csv", HEADER + "L1,no_reply,2026-05-01\nL3,replied,2026-05-02\n")
    batches = [
        parse_feedback_file(newer, "h10", None, received_at=datetime(2026, 5, 11)),
        parse_feedback_file(older, "h11", None, received_at=datetime(2026, 5, 20)),
        parse_feedback_file(newer, "h10", None, received_at=datetime(2026, 5, 11)),  # same file parsed again
    ]
    outcomes = pd.concat([b.outcomes for b in batches], ignore_index=True)
    resolved, resolutions = resolve_conflicts(outcomes)
    assert resolved.set_index("lead_id")["outcome"].to_dict() == {"L1": "won", "L2": "lost", "L3": "replied"}
    assert resolutions.to_dict("records") == [{
        "lead_id": "L1", "chosen_outcome": "won", "chosen_outcome_at": pd.Timestamp("2026-05-10"),
        "chosen_file": "fb_010.csv", "chosen_row": 1, "candidates": 2,
        "overridden": "no_reply @ 2026-05-01 00:00 (fb_011.csv#1)", "rule": "latest outcome_at",
    }]


def test_ties_on_outcome_time_are_broken_deterministically(folder):
    a = write(folder, "a.csv", HEADER + "L1,won,2026-05-01\nL1,lost,2026-05-01\n")
    b = write(folder, "b.csv", HEADER + "L1,replied,2026-05-01\n")
    same_day = datetime(2026, 5, 2)
    outcomes = pd.concat([parse_feedback_file(p, p.name, None, received_at=same_day).outcomes for p in (a, b)])
    for shuffled in (outcomes, outcomes.iloc[::-1], outcomes.sample(frac=1, random_state=3)):
        resolved, resolutions = resolve_conflicts(shuffled)
        assert resolved[["outcome", "file"]].values.tolist() == [["replied", "b.csv"]]  # file name, then row
        assert resolutions["rule"].item() == "latest outcome_at (tie: last file name)"
        assert resolutions["candidates"].item() == 3

    resolved, _ = resolve_conflicts(outcomes[outcomes.file == "a.csv"])
    assert resolved[["outcome", "row_number"]].values.tolist() == [["lost", 2]]  # same file: last row

    resent = write(folder, "0_resent.csv", HEADER + "L1,no_reply,2026-05-01\n")
    later = parse_feedback_file(resent, "r", None, received_at=datetime(2026, 5, 3)).outcomes
    resolved, resolutions = resolve_conflicts(pd.concat([outcomes, later]))
    assert resolved[["outcome", "file"]].values.tolist() == [["no_reply", "0_resent.csv"]]
    assert resolutions["rule"].item() == "latest outcome_at (tie: latest received_at)"


def test_no_conflicts_and_no_outcomes(folder):
    path = write(folder, "fb.csv", HEADER + "L1,won,2026-05-01\nL1,won,2026-05-03\n")
    resolved, resolutions = resolve_conflicts(parse(path).outcomes)
    assert resolved["outcome_at"].tolist() == [pd.Timestamp("2026-05-03")] and resolutions.empty  # same outcome
    resolved, resolutions = resolve_conflicts(parse(write(folder, "none.csv", HEADER)).outcomes)
    assert resolved.empty and resolutions.empty


def test_a_file_already_quiet_when_first_seen_is_ready_on_that_tick(folder):
    landed = folder / "crm_landed_earlier.csv"
    landed.write_text("lead_id,outcome,outcome_at\nl1,won,2026-11-01\n")
    os.utime(landed, (time.time() - 10, time.time() - 10))  # dropped 10 s before the tick
    fresh = folder / "crm_being_written.csv"
    fresh.write_text("lead_id,outcome,outcome_at\nl2,lost,2026-11-01\n")
    result, state = tick(folder, None)
    assert names(result.ready) == ["crm_landed_earlier.csv"]  # no extra tick to settle
    assert names(result.pending) == ["crm_being_written.csv"]  # written just now: one more look
    result, _ = tick(folder, state)
    assert names(result.ready) == ["crm_being_written.csv"]
