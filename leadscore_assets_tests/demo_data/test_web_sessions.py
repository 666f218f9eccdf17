import time

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from leadscore_assets.demo_data import web_sessions

COLUMNS = [
    "session_id", "visitor_id", "started_at", "traffic_source", "device", "browser", "country",
    "landing_page", "pages_viewed", "session_duration_s", "engagement_depth", "repeat_visitor",
    "hour", "weekday", "cart_adds", "is_ordered", "revenue",
]


def test_parquet_schema_and_separate_truth(tmp_path):
    path = web_sessions.write(tmp_path, rows=5000, seed=3)
    assert path == tmp_path / "web_sessions" / "sessions.parquet"
    table = pq.read_table(path)
    assert table.column_names == COLUMNS and table.num_rows == 5000
    truth = pd.read_csv(tmp_path / "truth" / "web_sessions.csv")
    assert list(truth.columns) == ["session_id", "true_probability", "true_expected_revenue"]
    sessions = table.to_pandas()
    assert sessions.session_id.is_unique and set(truth.session_id) == set(sessions.session_id)
    assert str(table.schema.field("started_at").type).startswith("timestamp")


def test_full_scale_generation_rates_messiness_and_revenue():
    start = time.perf_counter()
    sessions, truth = web_sessions.generate(472_871)
    assert time.perf_counter() - start < 15
    assert len(sessions) == len(truth) == 472_871 and sessions.session_id.is_unique
    assert 0.063 <= sessions.is_ordered.mean() <= 0.073
    span = sessions.started_at.max() - sessions.started_at.min()
    assert pd.Timedelta(days=85) < span <= pd.Timedelta(days=web_sessions.DAYS)
    assert (sessions.started_at.dt.hour == sessions.hour).all()
    assert (sessions.started_at.dt.dayofweek == sessions.weekday).all()
    assert sessions.engagement_depth.between(0, 1).all() and (sessions.cart_adds >= 0).all()
    assert sessions.pages_viewed.max() > 40  # long tail
    # repeat_visitor agrees with visitor_id: the earliest session of a visitor is the only first visit
    first = ~sessions.sort_values("started_at", kind="stable").duplicated("visitor_id")
    assert (first.reindex(sessions.index) == ~sessions.repeat_visitor).all()
    # messiness: ~0.5% in all, each kind present
    neg, zero, nodev = (sessions.session_duration_s < 0).sum(), (sessions.pages_viewed == 0).sum(), sessions.device.isna().sum()
    assert neg > 0 and zero > 0 and nodev > 0 and neg + zero + nodev < 0.008 * len(sessions)
    # revenue: 0 without an order, log-normal with the truth's analytic mean given an order
    ordered = sessions.is_ordered == 1
    assert (sessions.revenue[~ordered] == 0).all() and (sessions.revenue[ordered] > 0).all()
    rev, expected = sessions.revenue[ordered], truth.true_expected_revenue[ordered]
    assert 50 < rev.mean() < 70 and abs(rev.mean() / expected.mean() - 1) < 0.03
    assert rev.median() < rev.mean()  # long right tail
    log_resid = np.log(rev) - (np.log(expected) - web_sessions.REVENUE_SIGMA**2 / 2)
    assert abs(log_resid.std() - web_sessions.REVENUE_SIGMA) < 0.02 and abs(log_resid.mean()) < 0.02


def test_deterministic_for_a_seed():
    a = web_sessions.generate(2000, seed=9)
    b = web_sessions.generate(2000, seed=9)
    assert a[0].equals(b[0]) and a[1].equals(b[1])


def test_truth_is_learnable():
    sessions, truth = web_sessions.generate(60_000, seed=21)
    s = sessions[(sessions.session_duration_s >= 0) & (sessions.pages_viewed >= 1)]
    X = pd.concat(
        [
            pd.get_dummies(s[["traffic_source", "browser", "landing_page"]]),
            pd.get_dummies(s.device.fillna("missing"), prefix="device"),
            pd.get_dummies(s.weekday, prefix="wd"),
            np.log(s.pages_viewed), np.log1p(s.session_duration_s / 60), s.engagement_depth,
            s.repeat_visitor, np.log1p(s.cart_adds),
            np.cos(2 * np.pi * s.hour / 24).rename("hc"), np.sin(2 * np.pi * s.hour / 24).rename("hs"),
        ],
        axis=1,
    ).astype(float).to_numpy()
    y = s.is_ordered.to_numpy()
    p = truth.true_probability.to_numpy()[s.index]
    half = np.arange(len(y)) % 2 == 0
    model = LogisticRegression(max_iter=3000).fit(X[half], y[half])
    auc = roc_auc_score(y[~half], model.predict_proba(X[~half])[:, 1])
    bayes = roc_auc_score(y[~half], p[~half])
    assert 0.75 < bayes < 0.9
    assert bayes - auc < 0.05, (bayes, auc)
