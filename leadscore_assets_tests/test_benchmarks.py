"""benchmarks/stage_profile.py: its pure helpers on synthetic events and samples (no pipeline run)."""

import importlib.util
import sys
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "stage_profile.py"
_spec = importlib.util.spec_from_file_location("stage_profile", SCRIPT)
sp = importlib.util.module_from_spec(_spec)
sys.modules["stage_profile"] = sp  # dataclasses look their module up
_spec.loader.exec_module(sp)

MIB = sp.MIB
CHECK_STEPS = {"p__validated_contacts_ids_unique", "p__labels_positive_rate_plausible"}


def _events():
    """A run: raw (1-3 s), validate (3-4 s), a check (4-4.5 s), labels started at 5 s and never ended."""
    return [
        (0.5, "RUN_START", None),
        (1.0, "STEP_START", "p__raw_contacts"),
        (2.0, "ASSET_MATERIALIZATION", "p__raw_contacts"),
        (3.0, "STEP_SUCCESS", "p__raw_contacts"),
        (3.0, "STEP_START", "p_validate_contacts"),
        (4.0, "STEP_SUCCESS", "p_validate_contacts"),
        (4.0, "STEP_START", "p__validated_contacts_ids_unique"),
        (4.5, "STEP_FAILURE", "p__validated_contacts_ids_unique"),
        (5.0, "STEP_START", "p__labels"),
        (5.5, "LOGS_CAPTURED", "p__labels"),
    ]


def test_step_windows_from_start_and_end_events():
    windows = {w.step_key: w for w in sp.step_windows(_events(), run_end=6.0)}
    assert list(windows) == ["p__raw_contacts", "p_validate_contacts", "p__validated_contacts_ids_unique", "p__labels"]
    assert (windows["p__raw_contacts"].start, windows["p__raw_contacts"].end) == (1.0, 3.0)
    assert windows["p__raw_contacts"].seconds == pytest.approx(2.0)
    assert windows["p__validated_contacts_ids_unique"].status == "STEP_FAILURE"
    assert (windows["p__labels"].end, windows["p__labels"].status) == (6.0, "RUNNING")  # died inside: ends with the run
    assert sp.step_windows(_events())[-1].end == 5.5  # without run_end: its last event


def test_samples_go_to_the_step_running_at_their_time():
    windows = sp.step_windows(_events(), run_end=6.0)
    samples = [(0.7, 100), (1.5, 300), (2.9, 500), (3.5, 200), (4.8, 900), (5.2, 400), (7.0, 50)]
    peaks = sp.attribute_samples(samples, windows)
    assert peaks["p__raw_contacts"] == 500  # the step's largest sample, not its last
    assert peaks["p_validate_contacts"] == 200
    assert peaks["p__labels"] == 400
    assert peaks[sp.BETWEEN] == 900  # 0.7, 4.8 and 7.0 fall outside every step
    assert "p__validated_contacts_ids_unique" not in peaks  # shorter than any sample gap: no figure


def test_stage_names_drop_the_project_prefix_and_group_checks():
    assert sp.stage_name("p__raw_contacts", "p", CHECK_STEPS) == "raw_contacts"
    assert sp.stage_name("p_validate_contacts", "p", CHECK_STEPS) == "validate_contacts"
    assert sp.stage_name("p__labels_positive_rate_plausible", "p", CHECK_STEPS) == sp.CHECKS
    assert sp.stage_name("other_op", "p", CHECK_STEPS) == "other_op"


def test_group_stages_sums_checks_and_accounts_for_the_rest_of_the_run():
    windows = [
        sp.StepWindow("p__raw_contacts", 0.0, 2.0, "STEP_SUCCESS"),
        sp.StepWindow("p__validated_contacts_ids_unique", 2.0, 2.5, "STEP_SUCCESS"),
        sp.StepWindow("p__labels", 2.6, 3.6, "STEP_SUCCESS"),
        sp.StepWindow("p__labels_positive_rate_plausible", 3.6, 3.8, "STEP_SUCCESS"),
    ]
    peaks = {"p__raw_contacts": 200 * MIB, "p__validated_contacts_ids_unique": 150 * MIB,
             "p__labels_positive_rate_plausible": 300 * MIB, sp.BETWEEN: 120 * MIB}
    stages = sp.group_stages(windows, peaks, "p", CHECK_STEPS, total_seconds=5.0)
    assert [s.stage for s in stages] == ["raw_contacts", "labels", sp.CHECKS, sp.BETWEEN]
    by = {s.stage: s for s in stages}
    assert by[sp.CHECKS].seconds == pytest.approx(0.7) and by[sp.CHECKS].steps == 2
    assert by[sp.CHECKS].peak_rss_mib == pytest.approx(300)  # peak over the group, not a sum
    assert by["labels"].peak_rss_mib is None
    assert by[sp.BETWEEN].seconds == pytest.approx(5.0 - 2.0 - 1.0 - 0.7)
    assert sum(s.seconds for s in stages) == pytest.approx(5.0)


def test_scaling_ratio_is_one_for_linear_stages_and_below_one_for_fixed_costs():
    def size(rows, linear, fixed, total):
        return {"rows": rows, "total_seconds": total,
                "stages": [{"stage": "linear", "seconds": linear}, {"stage": "fixed", "seconds": fixed}]}

    rows = {r["stage"]: r for r in sp.scaling_rows([size(500_000, 50.0, 10.0, 70.0), size(50_000, 5.0, 10.0, 16.0)])}
    assert rows["linear"]["s_per_100k"] == {50_000: pytest.approx(10.0), 500_000: pytest.approx(10.0)}
    assert rows["linear"]["time_per_row_ratio"] == pytest.approx(1.0)
    assert rows["fixed"]["time_per_row_ratio"] == pytest.approx(0.1)  # same seconds for 10x the rows
    assert rows[sp.TOTAL]["time_per_row_ratio"] == pytest.approx((70 / 500_000) / (16 / 50_000))
    single = sp.scaling_rows([size(50_000, 5.0, 10.0, 16.0)])
    assert all(r["time_per_row_ratio"] is None for r in single)
    missing = sp.scaling_rows([size(50_000, 5.0, 10.0, 16.0),
                               {"rows": 100_000, "total_seconds": 20.0, "stages": [{"stage": "linear", "seconds": 10.0}]}])
    assert {r["stage"]: r["time_per_row_ratio"] for r in missing}["fixed"] is None


def test_tables_render_every_stage_and_the_total():
    result = {"total_seconds": 10.0, "peak_rss_mib": 512.0, "stages": [
        {"stage": "features", "seconds": 7.5, "peak_rss_mib": 500.0, "steps": 1},
        {"stage": sp.CHECKS, "seconds": 2.0, "peak_rss_mib": None, "steps": 3},
        {"stage": sp.BETWEEN, "seconds": 0.5, "peak_rss_mib": 400.0, "steps": 0},
    ]}
    text = sp.size_table(result)
    assert "features" in text and "75.0%" in text and "checks (3)" in text and "total" in text
    scaling = sp.scaling_table([{**result, "rows": 1000}, {**result, "rows": 2000}])
    assert "s/100k @ 1,000" in scaling and "0.50" in scaling  # same seconds for twice the rows


def test_rss_sampler_records_this_process():
    assert sp.current_rss() > 10 * MIB
    with sp.RssSampler(interval=0.01) as sampler:
        time.sleep(0.1)
    assert len(sampler.samples) >= 3
    assert all(rss > 0 for _, rss in sampler.samples)
    assert sampler.max_gap < 1.0


def test_arguments_need_sizes_and_a_known_project():
    assert sp.parse_args(["web_sessions", "--rows", "50000", "472871"]).rows == [50000, 472871]
    with pytest.raises(SystemExit):
        sp.parse_args(["web_sessions"])
    with pytest.raises(SystemExit):
        sp.parse_args(["no_such_project", "--rows", "10"])
    assert sp.GENERATOR_FOR["byo_example"] == "byo_table"


def test_lemlist_floor_shrinks_with_more_contacts():
    """The correctly specified model's gap to Bayes is the sample's share of any gap: on a large
    export it is small, and the script reports the test rows it judged on."""
    spec = importlib.util.spec_from_file_location("lemlist_floor", SCRIPT.parent / "lemlist_floor.py")
    floor = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(floor)
    big = floor.floor_for(20_000, 11)
    assert big["test_rows"] > 2_500
    assert 0 <= big["gap"] < 0.01
    assert big["bayes_auc"] > 0.7
