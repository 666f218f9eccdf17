"""Outcome files parsed: every row lands in exactly one output, bad ones with a reason."""

import json

import pandas as pd
import pytest

from leadscore_assets.testing.feedback_files import HEADER, RECEIVED, parse, write


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
        3: "fb_001.csv row 3 column 'lead_id': is blank (required)",
        4: "fb_001.csv row 4 (lead 'L4') column 'outcome_at': is not a valid timestamp (expected ISO 8601, year first)",
        5: "fb_001.csv row 5 (lead 'L5') column 'outcome': is not a known outcome"
           " (expected one of: lost, no_reply, replied, won)",
        6: "fb_001.csv row 6 (lead 'L6') column 'outcome_at': is not a valid timestamp (expected ISO 8601, year first)",
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
    assert parse(path).quarantined["reason"].item() == (
        "typo.csv row 1 (lead 'L1') column 'outcome_at': is later than the file's receipt: a time more than 24 h"
        " after it was received (2026-06-01 12:00 UTC)")  # the time itself is a value: not shown


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


EMAIL, PHONE = "jane.doe@example.com", "+33 6 12 34 56 78"


def test_reasons_name_row_lead_column_and_rule_but_never_a_value(folder):
    """Notes typed into the wrong column (an email, a phone number) are quarantined with a reason
    naming file, row, lead, column and rule; the values stay in the quarantine's own columns only."""
    note = f"met at expo, reach me at {EMAIL} {PHONE}"
    rows = [
        "L1,won,2026-05-01",
        f'L2,"{note}",2026-05-01',  # free text as the outcome
        f"L3,won,{EMAIL}",  # an email as the outcome time
        f"L4,lost,call me {PHONE}",  # a phone number as the outcome time
        f"L5,won,2031-05-01",  # in the future
        f'"{note}",won,2026-05-01',  # free text as the lead id: not quoted as a lead
        f"L7,{'maybe later ' * 40},2026-05-01",  # overlong
    ]
    path = write(folder, "notes.csv", HEADER.encode() + "\n".join(rows).encode() + b"\n" + "L8,won,2026-05-0\xe9\n".encode("latin-1"))
    batch = parse(path, known={f"L{n}" for n in range(1, 9)})
    assert batch.outcomes["lead_id"].tolist() == ["L1"]
    reasons = dict(zip(batch.quarantined["row_number"], batch.quarantined["reason"]))
    timestamp = "is not a valid timestamp (expected ISO 8601, year first)"
    outcome = "is not a known outcome (expected one of: lost, no_reply, replied, won)"
    assert reasons[2] == f"notes.csv row 2 (lead 'L2') column 'outcome': {outcome}"
    assert reasons[3] == f"notes.csv row 3 (lead 'L3') column 'outcome_at': {timestamp}"
    assert reasons[4] == f"notes.csv row 4 (lead 'L4') column 'outcome_at': {timestamp}"
    assert reasons[5].startswith("notes.csv row 5 (lead 'L5') column 'outcome_at': is later than the file's receipt")
    assert 6 not in reasons and batch.unknown_leads["row_number"].tolist() == [6]  # valid, but no known lead
    assert reasons[7] == f"notes.csv row 7 (lead 'L7') column 'outcome': {outcome}"
    assert reasons[8] == "notes.csv row 8 (lead 'L8') column 'outcome_at': contains bytes that are not valid UTF-8"
    for reason in reasons.values():
        for secret in [EMAIL, PHONE, "jane", "+33", "call me", "met at", "maybe", "2031", "2026-05-0"]:
            assert secret not in reason, (secret, reason)
    raw = batch.quarantined.set_index("row_number")
    assert raw.loc[3, "outcome_at"] == EMAIL  # the raw value is kept in its column, to repair the row


def test_a_headerless_file_does_not_quote_its_first_record_as_a_header(folder):
    path = write(folder, "no_header.csv", f"L1,won,{EMAIL}\nL2,lost,2026-05-02\n")
    reasons = parse(path).quarantined["reason"]
    assert reasons.str.contains("required column 'outcome' is missing").all()
    assert not reasons.str.contains("jane|example", regex=True).any()
