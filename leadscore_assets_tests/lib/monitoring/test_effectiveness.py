"""Score effectiveness: outcomes matched to the score a lead had before them, counted and rated."""

import numpy as np
import pandas as pd
import pytest

from leadscore_assets.lib.monitoring.effectiveness import (
    ALL_MONTHS,
    MATCHED,
    NEVER_SCORED,
    NO_OUTCOMES,
    SCORED_AFTER,
    figure,
    headline_text,
    history_rows,
    summarise,
    wilson_interval,
)

T = pd.Timestamp


def _history(rows):
    return pd.DataFrame(rows, columns=["lead_id", "probability", "decile", "grade", "model_version", "scored_at",
                                       "dagster_run_id"])


def _outcomes(rows):
    return pd.DataFrame(rows, columns=["lead_id", "label", "outcome_at"])


HISTORY = _history([
    ("L1", 0.10, 9, "D", "1", T("2026-01-01"), "r1"),
    ("L1", 0.80, 1, "A", "2", T("2026-02-01"), "r2"),  # rescored by a newer model
    ("L1", 0.05, 10, "D", "3", T("2026-04-01"), "r3"),  # after L1's outcome: never its score
    ("L2", 0.70, 1, "A", "1", T("2026-03-01"), "r1"),
    ("L3", 0.20, 8, "D", "1", T("2026-01-01"), "r1"),
])


def test_the_score_matched_is_the_latest_before_the_outcome_never_a_later_one():
    e = summarise(_outcomes([("L1", 1, T("2026-03-15"))]), HISTORY)
    row = e.joined.iloc[0]
    assert row.match == MATCHED and row.grade == "A" and row.model_version == "2" and row.probability == 0.80
    assert row.scored_at == T("2026-02-01")


def test_a_score_at_the_very_time_of_the_outcome_does_not_count_as_before_it():
    e = summarise(_outcomes([("L2", 1, T("2026-03-01"))]), HISTORY)
    assert e.joined.iloc[0].match == SCORED_AFTER


def test_unmatched_outcomes_are_counted_by_reason_not_dropped():
    outcomes = _outcomes([("L1", 1, T("2026-03-15")),  # matched
                          ("L2", 0, T("2026-02-01")),  # scored only on 2026-03-01: after its outcome
                          ("L9", 1, T("2026-02-01"))])  # never scored
    e = summarise(outcomes, HISTORY)
    assert dict(zip(e.joined.lead_id, e.joined.match)) == {"L1": MATCHED, "L2": SCORED_AFTER, "L9": NEVER_SCORED}
    assert e.headline == {**e.headline, "outcomes": 3, "matched": 1, "unmatched_never_scored": 1,
                          "unmatched_scored_after_outcome": 1}
    assert "2 unmatched" in headline_text(e)


def test_conversion_by_grade_per_month_and_over_all_months_with_intervals():
    outcomes = _outcomes([("L1", 1, T("2026-03-15")), ("L2", 0, T("2026-03-20")), ("L3", 0, T("2026-02-01"))])
    e = summarise(outcomes, HISTORY)
    overall = e.by_grade[e.by_grade.scored_month == ALL_MONTHS].set_index("grade")
    assert overall.loc["A", ["outcomes", "converted"]].tolist() == [2, 1] and overall.loc["A"].conversion_rate == 0.5
    assert overall.loc["D", ["outcomes", "converted"]].tolist() == [1, 0]
    monthly = e.by_grade[e.by_grade.scored_month != ALL_MONTHS]
    assert set(zip(monthly.scored_month, monthly.grade)) == {("2026-02", "A"), ("2026-03", "A"), ("2026-01", "D")}
    assert (overall.rate_low_95 <= overall.conversion_rate).all() and (overall.conversion_rate <= overall.rate_high_95).all()
    assert e.headline["top_grade"] == "A" and e.headline["top_grade_conversion"] == 0.5
    assert e.headline["rest_conversion"] == 0.0
    deciles = e.by_decile[e.by_decile.scored_month == ALL_MONTHS]
    assert deciles.decile.tolist() == [1, 8] and deciles.outcomes.tolist() == [2, 1]
    long = e.long_table()
    assert set(long.dimension) == {"grade", "decile"} and long.outcomes.sum() == 2 * (3 + 3)


def test_wilson_interval_matches_the_textbook_values_and_is_empty_without_outcomes():
    lo, hi = wilson_interval([5, 0, 10, 0], [10, 10, 10, 0])
    assert lo[0] == pytest.approx(0.2366, abs=1e-4) and hi[0] == pytest.approx(0.7634, abs=1e-4)
    assert lo[1] == 0 and hi[1] == pytest.approx(0.2775, abs=1e-4)  # 0 of 10 is not "surely 0%"
    assert hi[2] == pytest.approx(1) and lo[2] == pytest.approx(0.7225, abs=1e-4)
    assert np.isnan(lo[3]) and np.isnan(hi[3])


def test_no_outcomes_yet_gives_zero_counts_and_says_so():
    for outcomes in (None, _outcomes([])):
        for history in (None, HISTORY):
            e = summarise(outcomes, history)
            assert e.headline == {"outcomes": 0, "matched": 0, "unmatched_never_scored": 0,
                                  "unmatched_scored_after_outcome": 0}
            assert e.by_grade.empty and e.by_decile.empty and e.calibration.empty and e.long_table().empty
            assert NO_OUTCOMES in headline_text(e)
            figure(e, "empty")  # the picture is drawn too, saying there is nothing yet


def test_calibration_puts_production_next_to_training():
    outcomes = _outcomes([("L1", 1, T("2026-03-15")), ("L2", 0, T("2026-03-20"))])
    training = pd.DataFrame({"model_version": ["1", "2"], "decile": [1, 1], "leads": [50, 60],
                             "rate": [0.6, 0.7], "mean_probability": [0.65, 0.72]})
    cal = summarise(outcomes, HISTORY, training).calibration.set_index("model_version")
    assert cal.loc["2", "mean_predicted"] == 0.80 and cal.loc["2", "observed"] == 1.0
    assert cal.loc["2", "training_observed"] == 0.7 and cal.loc["2", "training_mean_predicted"] == 0.72
    assert cal.loc["1", "observed"] == 0.0 and cal.loc["1", "training_test_leads"] == 50


def test_history_gets_a_row_only_when_a_score_changed():
    scores = pd.DataFrame({"lead_id": ["L1", "L2", "L3"], "probability": [0.8, 0.7001, 0.5], "decile": [1, 1, 3],
                           "grade": ["A", "A", "B"], "model_version": ["2", "1", "1"],
                           "scored_at": T("2026-05-01"), "name": ["never", "stored", "here"]})
    latest = HISTORY.drop_duplicates("lead_id", keep="last")  # L1 v3 D, L2 v1 A 0.70, L3 v1 D
    rows = history_rows(scores, latest, "r4")
    assert rows.lead_id.tolist() == ["L1", "L3"]  # L2 unchanged (to 3 dp)
    assert "name" not in rows.columns and set(rows.dagster_run_id) == {"r4"}
    assert history_rows(scores, None, "r4").lead_id.tolist() == ["L1", "L2", "L3"]
