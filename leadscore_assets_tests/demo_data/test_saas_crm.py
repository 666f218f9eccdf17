import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from leadscore_assets.demo_data import saas_crm

COMPANY_COLUMNS = ["ID", "ALEXA_RANK", "EMPLOYEE_RANGE", "INDUSTRY", "MRR", "COUNTRY", "CREATED_AT"]
ACTIONS = [f"ACTIONS_{c}" for c in saas_crm.CATEGORIES]
USERS = [f"USERS_{c}" for c in saas_crm.CATEGORIES]


def _most_complete(companies):
    order = companies.isna().sum(axis=1).sort_values(kind="stable").index
    return companies.loc[order].drop_duplicates("ID").set_index("ID")


def test_files_schema_messiness_and_separate_truth(tmp_path):
    path = saas_crm.write(tmp_path, rows=3000, seed=2)
    assert path == tmp_path / "saas_crm" / "companies.csv"
    companies = pd.read_csv(path)
    events = pd.read_csv(tmp_path / "saas_crm" / "usage_events.csv")
    truth = pd.read_csv(tmp_path / "truth" / "saas_crm.csv")
    assert list(companies.columns) == COMPANY_COLUMNS
    assert list(events.columns) == ["ID", "WHEN_TIMESTAMP", *ACTIONS, *USERS]
    assert truth.columns[0] == "ID" and "true_probability" in truth
    assert "true_probability" not in companies and "true_probability" not in events
    assert set(truth.ID) == set(companies.ID) and len(truth) == 3000
    assert set(companies.EMPLOYEE_RANGE.dropna()) == set(saas_crm.EMPLOYEE_RANGES)
    # duplicated ids (~2%), each with exactly one less complete copy
    dup = companies[companies.ID.duplicated(keep=False)]
    assert 0.015 * 3000 <= dup.ID.nunique() <= 0.025 * 3000
    nulls = dup.isna().sum(axis=1).groupby(dup.ID).agg(["min", "max", "size"])
    assert (nulls["size"] == 2).all() and (nulls["min"] < nulls["max"]).all()
    # dirty MRR (<= 0), impossible ranks, users > actions
    assert 0.005 * 3000 <= (companies.MRR <= 0).sum() <= 0.02 * 3000
    assert (companies.ALEXA_RANK <= 0).sum() > 0
    violations = (events[USERS].to_numpy() > events[ACTIONS].to_numpy()).any(axis=1).sum()
    assert 0 < violations < 0.01 * len(events)
    # events only inside the trial window, before the snapshot, one row per company and day
    created = pd.to_datetime(_most_complete(companies).CREATED_AT).dt.normalize()
    day = pd.to_datetime(events.WHEN_TIMESTAMP)
    offset = (day - created.loc[events.ID].to_numpy()).dt.days
    assert offset.between(0, saas_crm.TRIAL_DAYS - 1).all() and (day < pd.Timestamp(saas_crm.SNAPSHOT_DATE)).all()
    assert not events.duplicated(["ID", "WHEN_TIMESTAMP"]).any()
    assert 0.05 < 1 - events.ID.nunique() / 3000 < 0.35  # some companies never used the trial


def test_label_rate_and_probability_spread():
    companies, _, truth = saas_crm.generate(rows=3000, seed=7)
    mrr = _most_complete(companies).MRR
    labelled = mrr.isna() | (mrr > 0)
    assert 0.15 <= (mrr[labelled] > 0).mean() <= 0.30
    p = truth.true_probability
    assert p.quantile(0.05) < 0.03 and p.quantile(0.95) > 0.6 and p.max() > 0.85


def test_deterministic_for_a_seed():
    a = saas_crm.generate(rows=300, seed=4)
    b = saas_crm.generate(rows=300, seed=4)
    assert all(x.equals(y) for x, y in zip(a, b))


def test_truth_is_learnable_from_sql_style_aggregates():
    companies, events, truth = saas_crm.generate(rows=10000, seed=13)
    comp = _most_complete(companies)
    comp = comp[comp.MRR.isna() | (comp.MRR > 0)]
    y = (comp.MRR > 0).astype(int).to_numpy()
    # the aggregates exactly as documented, recomputed here independently of the generator
    day = pd.to_datetime(events.WHEN_TIMESTAMP).dt.normalize()
    ev = pd.DataFrame({"ID": events.ID, "a": events[ACTIONS].sum(axis=1), "u": events[USERS].sum(axis=1), "day": day})
    g = ev.groupby("ID")
    agg = pd.DataFrame({"a": g.a.sum(), "u": g.u.sum(), "n": g.day.nunique(), "first": g.day.min(), "last": g.day.max()})
    agg = agg.reindex(comp.index)
    recency = (pd.Timestamp(saas_crm.SNAPSHOT_DATE) - agg["last"]).dt.days
    freq = agg.n / ((agg["last"] - agg["first"]).dt.days + 1)
    alexa = comp.ALEXA_RANK.astype(float)
    alexa = alexa.where(alexa > 0)
    X = pd.concat(
        [
            np.log1p(agg.a).fillna(0), np.log1p(agg.u).fillna(0), np.log1p(agg.n).fillna(0),
            np.log1p(recency / 30).fillna(0), freq.fillna(0), agg.a.isna().rename("none"),
            np.log10(alexa).fillna(0), alexa.isna().rename("no_rank"),
            pd.get_dummies(comp.INDUSTRY.fillna("?")), pd.get_dummies(comp.EMPLOYEE_RANGE.fillna("?")),
        ],
        axis=1,
    ).astype(float).to_numpy()
    p = truth.set_index("ID").true_probability.loc[comp.index].to_numpy()
    half = np.arange(len(y)) % 2 == 0
    model = LogisticRegression(max_iter=3000).fit(X[half], y[half])
    auc = roc_auc_score(y[~half], model.predict_proba(X[~half])[:, 1])
    bayes = roc_auc_score(y[~half], p[~half])
    assert 0.75 < bayes < 0.92
    assert bayes - auc < 0.05, (bayes, auc)
