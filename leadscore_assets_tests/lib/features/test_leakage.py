"""Single-feature separation: a planted leak is named, honest signals and identifiers are not."""

import numpy as np
import pandas as pd

from leadscore_assets.lib.features.frame import FeatureSet
from leadscore_assets.lib.features.leakage import leaks, single_feature_separation

FS = FeatureSet(numeric=["visits", "closed_days", "signal"], categorical=["industry", "crm_stage", "account_code"])


def _leads(n: int = 2000, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(signal - 1.5)))).astype(int)
    x = pd.DataFrame({
        "visits": rng.poisson(3, n).astype(float),
        # only filled in once a deal closed: its presence alone is the outcome
        "closed_days": np.where(y == 1, rng.uniform(1, 60, n), np.nan),
        "signal": signal,
        "industry": rng.choice(["retail", "saas", "finance"], n),
        "crm_stage": np.where(y == 1, "Closed Won", rng.choice(["Open", "Closed Lost"], n)),
        "account_code": [f"acc-{i}" for i in range(n)],  # one row per level: not a leak
    })
    return x, y


def test_planted_leaks_are_named_with_their_figure_and_honest_columns_pass():
    x, y = _leads()
    separation = single_feature_separation(x, y, FS, seed=1).set_index("feature").auc
    assert separation["closed_days"] > 0.99 and separation["crm_stage"] > 0.95
    assert 0.6 < separation["signal"] < 0.95  # a real, strong signal is not a leak
    assert separation["account_code"] < 0.6 and separation["visits"] < 0.6
    found = leaks(single_feature_separation(x, y, FS, seed=1), 0.95, accepted=[])
    assert sorted(found.feature) == ["closed_days", "crm_stage"]


def test_a_project_can_accept_a_named_column_knowingly():
    x, y = _leads()
    found = leaks(single_feature_separation(x, y, FS, seed=1), 0.95, accepted=["crm_stage"])
    assert list(found.feature) == ["closed_days"]


def test_accepting_a_date_column_covers_its_parts():
    separation = pd.DataFrame({"feature": ["created_at_hour", "other"], "encoding": "numeric", "auc": [0.99, 0.97]})
    assert list(leaks(separation, 0.95, accepted=["created_at"], date_columns=["created_at"]).feature) == ["other"]


def test_a_single_class_has_nothing_to_separate():
    x, _ = _leads(50)
    separation = single_feature_separation(x, np.zeros(50, int), FS)
    assert separation.empty and leaks(separation, 0.95, accepted=[]).empty
