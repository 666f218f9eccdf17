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
  out by the credible-gain rule of `lib/promotion.py` (the paired bootstrap interval of the gain
  must clear `min_gain` too).

`benchmarks/feedback_loop.py` runs the same loops for more files and prints the figures.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import mlflow
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from leadscore_assets.demo_data import feedback, linkedin
from leadscore_assets.lib.config import ProjectConfig
from leadscore_assets.lib.features import ID, FeatureSet
from leadscore_assets_tests.assets.test_feedback_loop import FeedbackLoop, step_failures
from leadscore_assets_tests.conftest import with_candidates
from leadscore_assets.lib.registry import load_version

pytestmark = pytest.mark.slow  # two feedback scenarios, several pipeline runs each: `pytest -m slow`

ROWS, EXPORT_SEED, FEEDBACK_SEED, OUTCOMES = 2000, 23, 5, 250
CANDIDATES = ["dummy", "logistic_regression", "spline_logistic"]


def scenario_config(config: ProjectConfig, candidates: list[str] = CANDIDATES) -> ProjectConfig:
    """The project's own policy and features; a small candidate list and no Optuna search."""
    config = with_candidates(config, candidates)
    search = config.models.search.model_copy(update={"n_trials": 0})
    return config.model_copy(update={"models": config.models.model_copy(update={"search": search})})


def auc_against_truth(score: np.ndarray, true_probability: np.ndarray) -> float:
    """The ROC-AUC `score` has in expectation on outcomes drawn from `true_probability`: every
    lead counts as a positive with weight p and as a negative with weight 1 - p."""
    p = np.asarray(true_probability, dtype=float)
    s = np.asarray(score, dtype=float)
    y = np.r_[np.ones(len(p)), np.zeros(len(p))]
    return float(roc_auc_score(y, np.r_[s, s], sample_weight=np.r_[p, 1 - p]))


class ScenarioLoop(FeedbackLoop):
    """A project fed numbered outcome files of one scenario, each run as the sensor requests."""

    def __init__(self, config: ProjectConfig, data_dir: Path, instance: dg.DagsterInstance, scenario: str,
                 outcomes: int = OUTCOMES, seed: int = FEEDBACK_SEED):
        super().__init__(config, data_dir, instance)
        self.scenario, self.outcomes, self.seed = scenario, outcomes, seed

    @classmethod
    @contextlib.contextmanager
    def started(cls, config: ProjectConfig, scenario: str, root: Path | None = None, rows: int = ROWS,
                export_seed: int = EXPORT_SEED, **kwargs) -> Iterator[ScenarioLoop]:
        """Demo export, instance and a first run that makes the champion; the sensor ticked once."""
        with contextlib.ExitStack() as stack:
            if root is None:
                root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"feedback_{scenario}_")))
            data_dir, home = root / "data", root / "dagster_home"
            home.mkdir(parents=True)
            linkedin.write(data_dir, rows=rows, seed=export_seed)
            instance = dg.DagsterInstance.local_temp(tempdir=str(home), overrides={"telemetry": {"enabled": False}})
            stack.callback(instance.dispose)
            loop = cls(config, data_dir, instance, scenario, **kwargs)
            first = loop.execute()
            assert first.success, step_failures(first)
            assert loop.alias("champion") == "1"
            assert loop.tick().run_requests == []
            yield loop

    def land(self, batch: int) -> pd.Series:
        """Drop file `batch` of the scenario, tick until the sensor is quiet, run what it asks for;
        the decision row of that run (with `seconds`: the run's wall time)."""
        path = feedback.write_feedback(self.data_dir, n=self.outcomes, seed=self.seed, scenario=self.scenario,
                                       batch=batch)
        self.reported |= set(pd.read_csv(path, dtype=str).lead_id)
        [request] = self.requests_until_quiet()
        assert request.tags["leadscore/feedback_file"] == path.name
        started = time.perf_counter()
        result = self.execute(request)
        assert result.success, step_failures(result)
        return pd.concat([self.decision_of(result.run_id),
                          pd.Series({"file": path.name, "seconds": time.perf_counter() - started})])

    def open_lead_auc(self, version: str | None = None) -> dict[str, float]:
        """The champion's (or model `version`'s) ROC-AUC against the scenario's truth on every open
        lead of the export, next to the truth's own (the best any model can do there)."""
        truth = feedback.true_probabilities(self.data_dir, scenario=self.scenario)
        open_ids = feedback.open_leads(self.data_dir).lead_id
        features = self.query(f"SELECT * FROM linkedin.features WHERE list_contains(?, {ID})", [list(open_ids)])
        fs = FeatureSet.from_frame(self.query("SELECT * FROM linkedin.feature_schema"))
        rows = features.merge(truth.rename(columns={"lead_id": ID}), on=ID, how="inner")
        if version is None:
            model = self.load_champion()
        else:
            mlflow.set_tracking_uri(self.tracking_uri)
            mlflow.set_registry_uri(self.tracking_uri)
            model = load_version(self.config.registered_model_name, str(version))
        score = model.predict_proba(rows[fs.columns])[:, 1]
        return {"model": auc_against_truth(score, rows.true_probability),
                "truth": auc_against_truth(rows.true_probability, rows.true_probability),
                "leads": float(len(rows))}


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
