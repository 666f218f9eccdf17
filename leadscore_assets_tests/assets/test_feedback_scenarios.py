"""Feedback that teaches: CRM outcome files with a known truth, through the real sensor and runs.

Each scenario gets its own LinkedIn project (2,000 demo contacts; dummy, logistic regression and
spline logistic, no Optuna search) on a real Dagster instance: a first run makes the champion,
then numbered outcome files (`demo_data.feedback`, 250 open leads each) are dropped into the
feedback folder, the sensor is ticked as the daemon does and the runs it requests are executed
in-process. What the user sees is asserted: the decision rows and the champion alias.

- `shifted`: the world changed (two weak segments now convert far more often). Retraining on
  the outcomes must be promoted within the first two files, and the model in use must rank the
  open leads closer to the shifted truth than the original champion did.
- `noisy`: 85% of the outcomes are coin flips. Every decision must be a rejection and the
  champion alias must not move: a challenger that wins on the held-out rows by chance is kept
  out by the credible-gain rule of `lib/evaluation/promotion.py` (the paired bootstrap interval of the gain
  must clear `min_gain` too).

`benchmarks/feedback_loop.py` runs the same loops (`leadscore_assets.testing.feedback_loop`) for more
files and prints the figures.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

from leadscore_assets.testing.feedback_loop import ScenarioLoop, scenario_config

pytestmark = pytest.mark.slow  # two feedback scenarios, several pipeline runs each: `pytest -m slow`


@pytest.fixture
def loop_for(tmp_path, linkedin_config):
    with contextlib.ExitStack() as stack:
        def start(scenario: str) -> ScenarioLoop:
            return stack.enter_context(ScenarioLoop.started(scenario_config(linkedin_config), scenario,
                                                            root=tmp_path / scenario))
        yield start


def test_shifted_world_is_learnt_from_feedback_and_promoted_within_two_files(loop_for):
    loop = loop_for("shifted")
    min_gain = loop.config.promotion.min_gain
    before = loop.open_lead_auc()
    decisions = []
    for batch in (1, 2):
        decisions.append(loop.land(batch))
        if decisions[-1].decision == "promoted":
            break
    promoted = decisions[-1]
    assert promoted.decision == "promoted", [d.reason for d in decisions]
    # promoted on a credible gain on held-out outcomes, after learning from outcomes it trained on
    assert promoted.reason.startswith(f"promoted: gain {promoted.metric_gain:+.4f} >= min_gain {min_gain}, credible ("), \
        promoted.reason
    assert np.nanmax([promoted.feedback_gain_low, promoted.metric_gain_low]) >= min_gain
    assert promoted.feedback_gain > promoted.metric_gain  # the new outcomes show what the stale rows dilute
    assert promoted.feedback_rows_trained_on > 0 and promoted.feedback_rows_held_out > 0
    assert loop.alias("champion") == promoted.challenger_version != "1"
    assert loop.alias("previous") == "1"
    assert list(loop.query("SELECT DISTINCT model_version FROM linkedin.lead_scores").model_version) == [
        promoted.challenger_version]
    # the model in use now ranks the open leads closer to the changed world than the first champion
    after = loop.open_lead_auc()
    assert after["model"] > before["model"] + 0.05, (before, after)
    assert after["model"] < after["truth"]


def test_noisy_feedback_never_replaces_the_champion(loop_for):
    loop = loop_for("noisy")
    min_gain = loop.config.promotion.min_gain
    decisions = [loop.land(batch) for batch in (1, 2)]
    assert [d.decision for d in decisions] == ["rejected", "rejected"], [d.reason for d in decisions]
    for d in decisions:
        assert d.champion_version == "1"
        assert d.reason.startswith(f"rejected: gain {d.metric_gain:+.4f} "), d.reason
        assert not np.isnan(d.metric_gain_low) and not np.isnan(d.feedback_gain_low)  # judged by the credible-gain rule
        # either no gain, or one that no held-out interval vouches for
        assert d.metric_gain < min_gain or max(d.metric_gain_low, d.feedback_gain_low) < min_gain
    assert decisions[1].feedback_rows_trained_on > decisions[0].feedback_rows_trained_on > 0  # it did learn from them
    assert loop.alias("champion") == "1"
    assert list(loop.query("SELECT DISTINCT model_version FROM linkedin.lead_scores").model_version) == ["1"]
