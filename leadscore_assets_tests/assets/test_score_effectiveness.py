"""score_effectiveness on real runs: the LinkedIn pipeline scores its leads, the CRM later reports
how some of them ended (a faithful demo outcome file), and the next run shows a sales lead how
each grade converted, judged by the score the lead had before its outcome."""

import hashlib
from datetime import datetime
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from leadscore_assets.assets import scoring
from leadscore_assets.components.lead_scoring_project import project_definitions
from leadscore_assets.demo_data import feedback, linkedin
from leadscore_assets.resources import build_resources
from leadscore_assets.testing.runs import feedback_run_config, warehouse_file, with_candidates

pytestmark = pytest.mark.slow  # two pipeline runs

FIRST_RUN_AT = datetime(2026, 3, 1, 9, 0)  # the demo leads were created from 2026-01-05 on


class _FirstRunClock(datetime):
    """`lead_scores`'s clock during the first run: the demo export is history (its outcomes all
    fall before today), so the first scoring is placed where it would have happened, early in the
    export's months, and the CRM's outcomes come in the weeks after it."""

    @classmethod
    def now(cls, tz=None):
        return FIRST_RUN_AT.replace(tzinfo=tz) if tz else FIRST_RUN_AT


def _metadata(result, name: str) -> dict:
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key.path == ["linkedin", name]]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def test_conversion_by_grade_after_crm_outcomes_land(tmp_path, linkedin_config, monkeypatch):
    data_dir = tmp_path / "data"
    linkedin.write(data_dir, rows=2500, seed=11)
    config = with_candidates(linkedin_config, ["dummy", "logistic_regression"])
    defs = dg.Definitions.merge(project_definitions(config),
                                dg.Definitions(resources=build_resources(data_dir), executor=dg.in_process_executor))
    job, instance = defs.resolve_job_def("linkedin_pipeline"), dg.DagsterInstance.ephemeral()

    with monkeypatch.context() as patched:
        patched.setattr(scoring, "datetime", _FirstRunClock)
        first = job.execute_in_process(instance=instance)
    before = _metadata(first, "score_effectiveness")
    assert before["outcomes"] == 0 and before["outcomes_matched"] == 0
    assert before["status"] == "no CRM outcomes have landed yet"

    path = feedback.write_feedback(data_dir, n=500, seed=5)
    second = job.execute_in_process(
        instance=instance,
        run_config=feedback_run_config(config, [path], [hashlib.sha256(path.read_bytes()).hexdigest()]))
    after = _metadata(second, "score_effectiveness")
    landed = len(open(path).readlines()) - 1
    assert after["outcomes"] == landed
    assert after["outcomes_matched"] + after["unmatched_never_scored"] + after["unmatched_scored_after_outcome"] == landed
    assert after["unmatched_scored_after_outcome"] > 0  # outcomes before 2026-03-01: counted, not matched
    assert after["outcomes_matched"] > 250

    with duckdb.connect(str(warehouse_file(data_dir, "linkedin")), read_only=True) as conn:
        table = conn.execute("SELECT * FROM linkedin.score_effectiveness WHERE dimension = 'grade' "
                             "AND scored_month = 'all' ORDER BY value").df().set_index("value")
        runs = conn.execute("SELECT count(DISTINCT dagster_run_id), min(scored_at) FROM linkedin.score_history").fetchall()[0]
    print("\nconversion by grade (all months):\n", table[["outcomes", "converted", "conversion_rate", "rate_low_95",
                                                         "rate_high_95", "mean_probability"]].round(3).to_string())
    print({k: after[k] for k in ("outcomes", "outcomes_matched", "unmatched_scored_after_outcome",
                                 "unmatched_never_scored", "top_grade_conversion", "other_grades_conversion",
                                 "top_grade_lift")})
    grades = sorted(table.index)
    assert table.outcomes.sum() == after["outcomes_matched"] and len(grades) >= 2
    assert table.loc[grades[0], "conversion_rate"] > table.loc[grades[-1], "conversion_rate"]  # A beats the lowest
    # the first run's scores as of their time; the second run adds a row only where a lead's score changed
    assert runs[1] == FIRST_RUN_AT and (runs[0] == 2) == (_metadata(second, "score_history")["appended"] > 0)

    assert Path(after["picture"]).is_file() and Path(after["picture"]).suffix == ".png"
    assert {r.data["grade"] for r in after["conversion_by_grade"].records} == set(grades)
    assert after["training_figures"] == "found for every version"  # production calibration next to training's
    assert "training_observed" in after["calibration_production_vs_training"]
