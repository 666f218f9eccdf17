import sqlite3

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import SplineTransformer

from leadscore_assets.demo_data import email_crm

ROWS = 6000


def _read(path):
    with sqlite3.connect(path) as conn:
        tables = {t: pd.read_sql(f"SELECT * FROM {t}", conn) for t in ("subscribers", "tags", "transactions")}
    conn.close()
    return tables


def test_database_tables_messiness_and_separate_truth(tmp_path):
    path = email_crm.write(tmp_path, rows=ROWS, seed=3)
    assert path == tmp_path / "email_crm" / "crm_database.sqlite"
    tables = _read(path)
    subs, tags, tx = tables["subscribers"], tables["tags"], tables["transactions"]
    truth = pd.read_csv(tmp_path / "truth" / "email_crm.csv", dtype={"mailchimp_id": str})
    assert truth.columns[0] == "mailchimp_id" and "true_probability" in truth
    assert all("true_probability" not in t.columns for t in tables.values())
    assert len(truth) == ROWS == subs.mailchimp_id.nunique() and set(truth.mailchimp_id) == set(subs.mailchimp_id)
    assert {"mailchimp_id", "user_email", "first_name", "last_name", "member_rating", "optin_time",
            "country_code", "email_client", "source"} <= set(subs.columns)
    assert list(tx.columns) == ["mailchimp_id", "transaction_id", "amount", "purchased_at"]
    # positives: subscribers with a transaction
    positive_rate = tx.mailchimp_id.nunique() / ROWS
    assert 0.10 <= positive_rate <= 0.25
    assert set(tx.mailchimp_id) <= set(subs.mailchimp_id) and (tx.amount > 0).all()
    optin = subs.drop_duplicates("mailchimp_id").set_index("mailchimp_id").optin_time
    assert (pd.to_datetime(tx.purchased_at) > pd.to_datetime(optin.loc[tx.mailchimp_id].to_numpy())).all()
    # tags: 8 distinct, 0..5 per subscriber, no repeated (id, tag)
    assert tags.tag.nunique() == 8 and not tags.duplicated().any()
    assert tags.groupby("mailchimp_id").size().max() <= 5 and tags.mailchimp_id.nunique() < ROWS
    # messiness
    dupes = subs.mailchimp_id.duplicated().sum()
    assert 0.003 * ROWS <= dupes <= 0.008 * ROWS
    assert (~subs.user_email.str.contains(r"^[^@\s]+@[^@\s]+\.[a-zA-Z]{2,}$")).sum() > 0.005 * ROWS
    assert (~subs.member_rating.between(1, 5)).sum() > 0
    codes = subs.country_code.str.strip().str.upper()
    assert (codes.str.len() == 3).sum() > 0 and (subs.country_code != codes).sum() > 0
    assert 38 <= codes[codes.str.len() == 2].nunique() <= 40


def test_deterministic_for_a_seed():
    a = email_crm.generate(rows=500, seed=5)
    b = email_crm.generate(rows=500, seed=5)
    c = email_crm.generate(rows=500, seed=6)
    assert all(x.equals(y) for x, y in zip(a, b))
    assert not a[3].true_probability.equals(c[3].true_probability)


def _features(subs, tags, tx):
    subs = subs.drop_duplicates("mailchimp_id").set_index("mailchimp_id")
    subs = subs[subs.member_rating.between(1, 5)]
    optin = pd.to_datetime(subs.optin_time)
    days = (pd.Timestamp(email_crm.SNAPSHOT_DATE) - optin).dt.total_seconds().to_numpy() / 86400
    code = subs.country_code.str.strip().str.upper()
    code = code.where(code.isin(list(email_crm.COUNTRY_EFFECT)), "other")
    tag_wide = pd.crosstab(tags.mailchimp_id, tags.tag).reindex(subs.index, fill_value=0)
    parts = [
        pd.get_dummies(subs.member_rating.astype(int), prefix="r"),
        pd.get_dummies(code, prefix="c"),
        tag_wide,
        pd.get_dummies(tag_wide.sum(axis=1), prefix="n"),
        pd.get_dummies(optin.dt.month, prefix="m"),
        pd.get_dummies(optin.dt.dayofweek, prefix="d"),
        pd.DataFrame(SplineTransformer(n_knots=6).fit_transform(np.log1p(days)[:, None]), index=subs.index),
    ]
    X = pd.concat(parts, axis=1).astype(float).to_numpy()
    label = subs.index.isin(tx.mailchimp_id).astype(int)
    return X, label, subs.index


def test_truth_is_learnable_from_visible_columns():
    subs, tags, tx, truth = email_crm.generate(rows=20000, seed=11)
    X, y, ids = _features(subs, tags, tx)
    p = truth.set_index("mailchimp_id").true_probability.loc[ids].to_numpy()
    half = np.arange(len(y)) % 2 == 0
    model = LogisticRegression(C=1.0, max_iter=2000).fit(X[half], y[half])
    auc = roc_auc_score(y[~half], model.predict_proba(X[~half])[:, 1])
    bayes = roc_auc_score(y[~half], p[~half])
    assert 0.7 < bayes < 0.9
    assert bayes - auc < 0.05, (bayes, auc)
