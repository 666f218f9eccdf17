"""The parity of a scorer's answers with the pipeline's own `lead_scores`: the served model, daily
scoring and Spark must answer each lead as the run scored it."""

import numpy as np
import pandas as pd

from leadscore_assets.lib.scoring.serving import REASON_COLUMNS


def assert_same_as_lead_scores(scores: pd.DataFrame, answer: pd.DataFrame):
    """The answers equal `lead_scores` (indexed by lead id) for their leads."""
    assert answer.error.isna().all(), answer.error.dropna().head().tolist()
    expected = scores.loc[answer.lead_id.astype(str)]
    np.testing.assert_allclose(answer.probability.astype(float), expected.probability, rtol=0, atol=1e-9)
    for column in ["decile", "grade", "contact"]:
        assert answer[column].tolist() == expected[column].tolist(), column
    for column in REASON_COLUMNS:
        assert answer[column].fillna("-").tolist() == expected[column].fillna("-").tolist(), column
    if "expected_order_value" in expected:
        np.testing.assert_allclose(answer.expected_order_value.astype(float), expected.expected_order_value, atol=1e-9)
        np.testing.assert_allclose(answer.expected_revenue.astype(float), expected.expected_revenue, atol=1e-9)
