import time

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import r2_score, roc_auc_score

from leadscore_assets.demo_data import web_sessions

COLUMNS = [
    "session_id", "visitor_id", "started_at", "traffic_source", "device", "browser", "country",
    "landing_page", "pages_viewed", "session_duration_s", "engagement_depth", "repeat_visitor",
    "hour", "weekday", "cart_adds", "is_ordered", "revenue",
]


@pytest.fixture(scope="module")
def full():
    """The default demo data (all 472,871 sessions, seed 7) and how long generating it took."""
    start = time.perf_counter()
    sessions, truth = web_sessions.generate(472_871)
    return sessions, truth, time.perf_counter() - start


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


def test_full_scale_generation_rates_and_messiness(full):
    sessions, truth, seconds = full
    assert seconds < 15
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
    # the truth is the generator's probability: realised rates match it
    assert abs(truth.true_probability.mean() - sessions.is_ordered.mean()) < 0.002


def test_conversion_follows_the_business_description(full):
    sessions, truth, _ = full
    ordered = sessions.is_ordered
    # 5+ pages convert at ~50%, a single page at ~0%, 2-4 pages in between
    pages = sessions.pages_viewed
    single, few, many = ordered[pages == 1].mean(), ordered[pages.between(2, 4)].mean(), ordered[pages >= 5].mean()
    assert single < 0.005 and 0.45 <= many <= 0.55 and single < few < many
    # repeat visitors convert ~18% more (relative)
    by_repeat = ordered.groupby(sessions.repeat_visitor).mean()
    assert 1.13 <= by_repeat[True] / by_repeat[False] <= 1.23
    # conversion peaks at 2 PM
    by_hour = ordered.groupby(sessions.hour).mean()
    assert by_hour.idxmax() == 14 and by_hour[14] > 1.15 * by_hour.drop([13, 14, 15]).mean()
    # direct traffic converts best, at ~7.3%
    by_source = ordered.groupby(sessions.traffic_source).mean().sort_values(ascending=False)
    assert by_source.index[0] == "direct" and 0.070 <= by_source["direct"] <= 0.076
    assert by_source.iloc[0] - by_source.iloc[1] > 0.002


def test_order_values_follow_the_business_description(full):
    sessions, truth, _ = full
    ordered = sessions.is_ordered == 1
    assert (sessions.revenue[~ordered] == 0).all() and (sessions.revenue[ordered] > 0).all()
    rev, expected = sessions.revenue[ordered], truth.true_expected_revenue[ordered]
    # orders average ~$60, most between $50 and $70
    assert 58 < rev.mean() < 62 and rev.between(50, 70).mean() > 0.65
    assert rev.median() < rev.mean()  # log-normal: a right tail
    # log-normal around the truth's analytic mean with sigma REVENUE_SIGMA
    assert abs(rev.mean() / expected.mean() - 1) < 0.01
    log_resid = np.log(rev) - (np.log(expected) - web_sessions.REVENUE_SIGMA**2 / 2)
    assert abs(log_resid.std() - web_sessions.REVENUE_SIGMA) < 0.003 and abs(log_resid.mean()) < 0.003
    # the observable features explain most of the variance: the true mean reaches R^2 > 0.5 with room
    assert r2_score(rev, expected) > 0.6
    # bigger baskets, desktop and email / direct visitors spend more; social and promo landings less
    by_cart = rev.groupby(sessions.cart_adds[ordered].clip(upper=4)).mean()
    assert by_cart.is_monotonic_increasing
    by_device = rev.groupby(sessions.device[ordered]).mean()
    assert by_device["desktop"] > by_device["tablet"] > by_device["mobile"]
    by_source = rev.groupby(sessions.traffic_source[ordered]).mean()
    assert by_source.idxmax() == "email" and by_source.idxmin() == "social"
    by_landing = rev.groupby(sessions.landing_page[ordered]).mean()
    assert by_landing.idxmin() == "promo"


def test_deterministic_for_a_seed():
    a = web_sessions.generate(2000, seed=9)
    b = web_sessions.generate(2000, seed=9)
    assert a[0].equals(b[0]) and a[1].equals(b[1])
    c = web_sessions.generate(2000, seed=10)
    assert not a[0].equals(c[0])


def _design(s: pd.DataFrame) -> np.ndarray:
    """A hand-built design matrix with the generator's feature shapes (pages as levels up to 12)."""
    return pd.concat(
        [
            pd.get_dummies(s[["traffic_source", "browser", "landing_page"]]),
            pd.get_dummies(s.device.fillna("missing"), prefix="device"),
            pd.get_dummies(s.weekday, prefix="wd"),
            pd.get_dummies(s.hour, prefix="h"),
            pd.get_dummies(s.pages_viewed.clip(upper=12), prefix="pages"),
            np.log(s.pages_viewed), np.log1p(s.session_duration_s / 60), s.engagement_depth,
            s.repeat_visitor, np.log1p(s.cart_adds), s.cart_adds.clip(upper=web_sessions.REVENUE_CART_CAP).rename("cart_capped"),
        ],
        axis=1,
    ).astype(float).to_numpy()


def test_truth_is_learnable():
    sessions, truth = web_sessions.generate(60_000, seed=21)
    s = sessions[(sessions.session_duration_s >= 0) & (sessions.pages_viewed >= 1)]
    X = _design(s)
    y = s.is_ordered.to_numpy()
    p = truth.true_probability.to_numpy()[s.index]
    half = np.arange(len(y)) % 2 == 0
    model = LogisticRegression(max_iter=3000).fit(X[half], y[half])
    auc = roc_auc_score(y[~half], model.predict_proba(X[~half])[:, 1])
    bayes = roc_auc_score(y[~half], p[~half])
    assert 0.88 < bayes < 0.96
    assert bayes - auc < 0.02, (bayes, auc)
    # no single column gives the order away (pages_viewed is the strongest, well below 0.95)
    assert roc_auc_score(y, s.pages_viewed) < 0.94


def test_order_value_is_learnable(full):
    """A log-linear regression on the orders of one half predicts the other half's order values
    nearly as well as the true conditional mean: the revenue targets (R^2 > 0.5) are reachable."""
    sessions, truth, _ = full
    s = sessions[(sessions.is_ordered == 1) & (sessions.session_duration_s >= 0) & (sessions.pages_viewed >= 1)]
    X, y = _design(s), s.revenue.to_numpy()
    half = np.arange(len(y)) % 2 == 0
    model = LinearRegression().fit(X[half], np.log(y[half]))
    pred = np.exp(model.predict(X[~half]) + web_sessions.REVENUE_SIGMA**2 / 2)
    r2, bayes = r2_score(y[~half], pred), r2_score(y[~half], truth.true_expected_revenue.to_numpy()[s.index][~half])
    assert r2 > 0.6 and bayes - r2 < 0.02, (r2, bayes)
    assert np.sqrt(np.mean((y[~half] - pred) ** 2)) < 20 and np.mean(np.abs(y[~half] - pred) / y[~half]) < 0.3
