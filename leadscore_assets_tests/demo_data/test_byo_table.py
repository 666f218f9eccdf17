import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import SplineTransformer, StandardScaler

from leadscore_assets.demo_data import byo_table

NUMERIC = [f"m{i:02d}" for i in range(1, 26)]


def test_parquet_schema_and_separate_truth(tmp_path):
    path = byo_table.write(tmp_path, rows=3000, seed=2)
    assert path == tmp_path / "byo_example" / "accounts.parquet"
    schema = pq.read_schema(path)
    assert schema.names == ["account_ref", *NUMERIC, "segment", "region", "is_partner", "signup_date",
                            "notes", "contact_email", "outcome"]
    assert all(str(schema.field(c).type) == "double" for c in NUMERIC)
    assert str(schema.field("is_partner").type) == "bool" and str(schema.field("signup_date").type) == "date32[day]"
    truth = pd.read_csv(tmp_path / "truth" / "byo_example.csv")
    assert list(truth.columns) == ["account_ref", "true_probability"]
    accounts = pd.read_parquet(path)
    assert "true_probability" not in accounts and accounts.account_ref.is_unique
    assert set(truth.account_ref) == set(accounts.account_ref)


def test_outcome_rates_missing_values_and_noise_columns():
    accounts, truth = byo_table.generate(seed=7)
    assert len(accounts) == byo_table.DEFAULT_ROWS == 60_000  # enough rare positives to learn the truth
    assert set(accounts.outcome) == {"converted", "not_converted", "open"}
    labelled = accounts[accounts.outcome != "open"]
    assert 0.05 < 1 - len(labelled) / len(accounts) < 0.25
    assert 0.035 <= (labelled.outcome == "converted").mean() <= 0.065
    # open accounts are mostly recent, and chosen independently of the true probability
    is_open = accounts.outcome == "open"
    signup = pd.to_datetime(accounts.signup_date)
    assert signup[is_open].median() > signup[~is_open].median() + pd.Timedelta(days=180)
    assert abs(truth.true_probability[is_open].mean() - truth.true_probability[~is_open].mean()) < 0.01
    missing = accounts[NUMERIC].isna().mean()
    assert set(missing[missing > 0].index) == set(byo_table.MISSING_SHARE)
    assert accounts[NUMERIC].skew().max() > 5  # some heavily skewed columns
    assert accounts.contact_email.str.contains("@").all() and accounts.notes.str.len().gt(20).sum() > 10_000
    # notes carry no signal: same mean truth with and without each sentence
    has = accounts.notes.str.contains(byo_table.SENTENCES[0], regex=False, na=False)
    assert abs(truth.true_probability[has].mean() - truth.true_probability[~has].mean()) < 0.01


def test_deterministic_for_a_seed():
    a = byo_table.generate(500, seed=3)
    b = byo_table.generate(500, seed=3)
    assert a[0].equals(b[0]) and a[1].equals(b[1])


def test_truth_is_learnable_by_a_generic_model():
    # A generic model on every numeric column (log of the skewed positive ones, splines, missing
    # indicators) and segment, with no knowledge of which columns carry the signal.
    accounts, truth = byo_table.generate(40_000, seed=5)
    labelled = (accounts.outcome != "open").to_numpy()
    accounts, p = accounts[labelled], truth.true_probability.to_numpy()[labelled]
    y = (accounts.outcome == "converted").astype(int).to_numpy()
    num = accounts[NUMERIC].copy()
    for col in NUMERIC:
        if (num[col].dropna() > 0).all() and num[col].skew() > 2:
            num[col] = np.log(num[col])
    half = np.arange(len(y)) % 2 == 0
    splines = SplineTransformer(n_knots=4, knots="quantile").fit_transform(SimpleImputer(strategy="median").fit_transform(num))
    missing = num.isna().loc[:, num.isna().any()].to_numpy()
    X = np.hstack([splines, missing, pd.get_dummies(accounts.segment).to_numpy()]).astype(float)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=3000)).fit(X[half], y[half])
    auc = roc_auc_score(y[~half], model.predict_proba(X[~half])[:, 1])
    bayes = roc_auc_score(y[~half], p[~half])
    assert 0.72 < bayes < 0.88
    assert bayes - auc < 0.05, (bayes, auc)
