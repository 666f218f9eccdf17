"""One outcome per lead when files disagree, decided the same way every time."""

from datetime import datetime

import pandas as pd

from leadscore_assets.lib.labels.feedback_resolution import resolve_conflicts
from leadscore_assets.testing.feedback_files import HEADER, parse, write


def test_conflicts_are_resolved_by_outcome_time_and_recorded(folder):
    # An older file received later must not override a newer outcome.
    newer = write(folder, "fb_010.csv", HEADER + "L1,won,2026-05-10\nL2,lost,2026-05-01\n")
    older = write(folder, "fb_011.csv", HEADER + "L1,no_reply,2026-05-01\nL3,replied,2026-05-02\n")
    batches = [
        parse(newer, None, content_hash="h10", received_at=datetime(2026, 5, 11)),
        parse(older, None, content_hash="h11", received_at=datetime(2026, 5, 20)),
        parse(newer, None, content_hash="h10", received_at=datetime(2026, 5, 11)),  # same file parsed again
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
    outcomes = pd.concat([parse(p, None, content_hash=p.name, received_at=same_day).outcomes for p in (a, b)])
    for shuffled in (outcomes, outcomes.iloc[::-1], outcomes.sample(frac=1, random_state=3)):
        resolved, resolutions = resolve_conflicts(shuffled)
        assert resolved[["outcome", "file"]].values.tolist() == [["replied", "b.csv"]]  # file name, then row
        assert resolutions["rule"].item() == "latest outcome_at (tie: last file name)"
        assert resolutions["candidates"].item() == 3

    resolved, _ = resolve_conflicts(outcomes[outcomes.file == "a.csv"])
    assert resolved[["outcome", "row_number"]].values.tolist() == [["lost", 2]]  # same file: last row

    resent = write(folder, "0_resent.csv", HEADER + "L1,no_reply,2026-05-01\n")
    later = parse(resent, None, content_hash="r", received_at=datetime(2026, 5, 3)).outcomes
    resolved, resolutions = resolve_conflicts(pd.concat([outcomes, later]))
    assert resolved[["outcome", "file"]].values.tolist() == [["no_reply", "0_resent.csv"]]
    assert resolutions["rule"].item() == "latest outcome_at (tie: latest received_at)"


def test_no_conflicts_and_no_outcomes(folder):
    path = write(folder, "fb.csv", HEADER + "L1,won,2026-05-01\nL1,won,2026-05-03\n")
    resolved, resolutions = resolve_conflicts(parse(path).outcomes)
    assert resolved["outcome_at"].tolist() == [pd.Timestamp("2026-05-03")] and resolutions.empty  # same outcome
    resolved, resolutions = resolve_conflicts(parse(write(folder, "none.csv", HEADER)).outcomes)
    assert resolved.empty and resolutions.empty
