"""A B2B SaaS CRM (companies.csv + daily usage_events.csv) with a known trial-to-paid model.

The label is "converted to paying customer": MRR > 0 (converted) versus MRR empty (not
converted); MRR itself is the outcome and never a feature. Every company gets a TRIAL_DAYS
trial starting on its CREATED_AT day and usage events only inside that window, i.e. before any
conversion, so usage is a legitimate feature. The log-odds are an additive sum of smooth
effects of the usage aggregates below (computed from the events exactly as written, including
the few rows where users exceed actions), of INDUSTRY, EMPLOYEE_RANGE and log10(ALEXA_RANK)
(missing values have their own fixed effect), and companies with no event at all get one
fixed NO_EVENTS_EFFECT in place of every usage term. Per company, over its rows in
usage_events.csv:
    total_actions      = sum of ACTIONS_CRM_CONTACTS + ACTIONS_CRM_COMPANIES + ACTIONS_CRM_DEALS + ACTIONS_EMAIL
    total_users        = sum of USERS_CRM_CONTACTS + USERS_CRM_COMPANIES + USERS_CRM_DEALS + USERS_EMAIL
    days_active        = count of distinct event days (one row per company and day)
    recency_days       = SNAPSHOT_DATE - last event day, in days
    activity_frequency = days_active / (last event day - first event day + 1)
The effects give a realistic spread of probabilities (about 0.02 to 0.9) so calibration can be
judged; the true probabilities go to a truth file the pipeline never reads.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from leadscore_assets.demo_data.common import sigmoid

DEFAULT_ROWS = 3000
SNAPSHOT_DATE = np.datetime64("2026-06-30")  # export day: recency is counted to here
CREATED_SPAN_DAYS = 330  # CREATED_AT spans the 330 days before SNAPSHOT_DATE - TRIAL_DAYS
TRIAL_DAYS = 28  # usage events fall on days 0..27 after the CREATED_AT day

# Usage terms are centred on a typical trial (so NO_EVENTS_EFFECT reads against an average user):
INTERCEPT = -1.2
ACTIONS_COEF = 0.6  # per unit of log1p(total_actions) - 5
USERS_COEF = 0.35  # per unit of log1p(total_users) - 4
DAYS_ACTIVE_COEF = 0.5  # per unit of log1p(days_active) - 2
RECENCY_COEF = -0.3  # per unit of log1p(recency_days / 30) - 2
FREQUENCY_COEF = 0.6  # per unit of activity_frequency - 0.5 (activity_frequency is in (0, 1])
NO_EVENTS_EFFECT = -1.7  # replaces every usage term for a company with no event
ALEXA_COEF = -0.25  # per unit of log10(ALEXA_RANK) - 5 (a better-known site converts more)
ALEXA_MISSING_EFFECT = -0.15
INDUSTRIES = {
    "Software": 0.4, "Marketing": 0.5, "E-commerce": 0.2, "Financial Services": -0.2,
    "Healthcare": -0.5, "Education": -0.4, "Manufacturing": -0.3, "Consulting": 0.1,
    "Real Estate": -0.1, "Non-profit": -0.7,
}
INDUSTRY_MISSING_EFFECT = -0.3
EMPLOYEE_RANGES = {"1-10": -0.5, "11-50": 0.2, "51-200": 0.4, "201-1000": 0.1, "1001+": -0.3}
EMPLOYEE_MISSING_EFFECT = -0.2
EMPLOYEE_SHARE = [0.35, 0.3, 0.18, 0.11, 0.06]
COUNTRIES = ["US", "GB", "DE", "FR", "CA", "AU", "NL", "ES", "IN", "BR"]  # no effect: a noise column
CATEGORIES = ["CRM_CONTACTS", "CRM_COMPANIES", "CRM_DEALS", "EMAIL"]
ACTION_RATE = np.array([6.0, 3.0, 2.0, 4.0])  # mean actions per active day and category, before engagement
TEAM_SIZE = np.array([0.4, 1.2, 2.0, 3.0, 4.0])  # extra users per category and day, by employee range


def usage_aggregates(events: pd.DataFrame, ids: np.ndarray) -> pd.DataFrame:
    """The per-company aggregates the truth uses (see module docstring), NaN for no events."""
    day = pd.to_datetime(events["WHEN_TIMESTAMP"]).to_numpy().astype("datetime64[D]")
    frame = pd.DataFrame(
        {
            "ID": events["ID"].to_numpy(),
            "actions": events[[f"ACTIONS_{c}" for c in CATEGORIES]].sum(axis=1).to_numpy(),
            "users": events[[f"USERS_{c}" for c in CATEGORIES]].sum(axis=1).to_numpy(),
            "day": day,
        }
    )
    g = frame.groupby("ID")
    agg = pd.DataFrame(
        {
            "total_actions": g.actions.sum(),
            "total_users": g.users.sum(),
            "days_active": g.day.nunique(),
            "first": g.day.min(),
            "last": g.day.max(),
        }
    ).reindex(ids)
    agg["recency_days"] = (pd.Timestamp(SNAPSHOT_DATE) - agg["last"]).dt.days
    agg["activity_frequency"] = agg.days_active / ((agg["last"] - agg["first"]).dt.days + 1)
    return agg.drop(columns=["first", "last"])


def true_logit(agg: pd.DataFrame, industry: np.ndarray, employees: np.ndarray, alexa: np.ndarray) -> np.ndarray:
    """Log-odds of converting from the aggregates and the (true, pre-corruption) firmographics."""
    no_events = agg.total_actions.isna().to_numpy()
    usage = (
        ACTIONS_COEF * (np.log1p(agg.total_actions.to_numpy()) - 5)
        + USERS_COEF * (np.log1p(agg.total_users.to_numpy()) - 4)
        + DAYS_ACTIVE_COEF * (np.log1p(agg.days_active.to_numpy()) - 2)
        + RECENCY_COEF * (np.log1p(agg.recency_days.to_numpy() / 30.0) - 2)
        + FREQUENCY_COEF * (agg.activity_frequency.to_numpy() - 0.5)
    )
    return (
        INTERCEPT
        + np.where(no_events, NO_EVENTS_EFFECT, np.nan_to_num(usage))
        + np.array([INDUSTRIES.get(i, INDUSTRY_MISSING_EFFECT) for i in industry])
        + np.array([EMPLOYEE_RANGES.get(e, EMPLOYEE_MISSING_EFFECT) for e in employees])
        + np.where(np.isnan(alexa), ALEXA_MISSING_EFFECT, ALEXA_COEF * (np.log10(np.where(np.isnan(alexa), 1e5, alexa)) - 5))
    )


def generate(rows: int = DEFAULT_ROWS, seed: int = 7) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Return (companies, usage_events, truth). Truth is keyed by `ID`."""
    rng = np.random.default_rng(seed)
    ids = 100_001 + rng.permutation(rows * 3)[:rows]  # integer company ids, not in creation order
    emp_idx = rng.choice(len(EMPLOYEE_RANGES), rows, p=EMPLOYEE_SHARE)
    employees = np.array(list(EMPLOYEE_RANGES), dtype=object)[emp_idx]
    employees[rng.random(rows) < 0.05] = None
    industry = rng.choice(list(INDUSTRIES), rows).astype(object)
    industry[rng.random(rows) < 0.06] = None
    # Alexa rank: bigger companies have better-known sites; small ones often have no rank.
    alexa = np.round(10 ** np.clip(rng.normal(6.3 - 0.35 * emp_idx, 0.7), 2.5, 7.3))
    alexa[rng.random(rows) < 0.08 + 0.08 * (emp_idx == 0)] = np.nan
    created = (
        SNAPSHOT_DATE.astype("datetime64[s]")
        - np.timedelta64(TRIAL_DAYS * 86400, "s")
        - rng.uniform(0, CREATED_SPAN_DAYS * 86400, rows).astype("timedelta64[s]")
    )
    created_day = created.astype("datetime64[D]")

    # Usage: a latent engagement drives how many days, and how busily, a company uses the trial.
    engagement = rng.normal(0.15 * emp_idx, 1.0)
    has_events = rng.random(rows) >= sigmoid(-1.6 - 0.8 * engagement)  # ~20% never use the product
    days_active = np.where(has_events, 1 + rng.binomial(TRIAL_DAYS - 1, sigmoid(-1.4 + 1.0 * engagement)), 0)
    # Pick days_active distinct days, earlier trial days more likely (Efraimidis-Spirakis keys).
    keys = rng.random((rows, TRIAL_DAYS)) ** (1.0 / np.exp(-np.arange(TRIAL_DAYS) / 12.0))
    rank = np.argsort(np.argsort(-keys, axis=1), axis=1)
    owner, offset = np.nonzero(rank < days_active[:, None])
    n_ev = len(owner)
    busy = np.exp(0.4 * engagement[owner] + rng.normal(0, 0.5, n_ev))  # how busy each active day is
    rate = ACTION_RATE[None, :] * busy[:, None]
    actions = rng.poisson(rate)
    users = np.where(actions > 0, np.minimum(actions, 1 + rng.poisson(TEAM_SIZE[emp_idx[owner]][:, None], (n_ev, 4))), 0)
    bad = np.flatnonzero(rng.random(n_ev) < 0.003)  # a few rows with more users than actions
    users[bad, 0] = actions[bad, 0] + rng.integers(1, 4, len(bad))
    when = created_day[owner] + offset.astype("timedelta64[D]")
    events = pd.DataFrame({"ID": ids[owner], "WHEN_TIMESTAMP": pd.DatetimeIndex(when).strftime("%Y-%m-%d %H:%M:%S")})
    for j, c in enumerate(CATEGORIES):
        events[f"ACTIONS_{c}"] = actions[:, j]
    for j, c in enumerate(CATEGORIES):
        events[f"USERS_{c}"] = users[:, j]
    events = events.sort_values(["WHEN_TIMESTAMP", "ID"], kind="stable").reset_index(drop=True)

    agg = usage_aggregates(events, ids)
    p = sigmoid(true_logit(agg, industry, employees, alexa))
    converted = rng.random(rows) < p
    mrr = np.where(converted, np.round(np.exp(rng.normal(np.log(80) + 0.6 * emp_idx, 0.5)), 0), np.nan)

    companies = pd.DataFrame(
        {
            "ID": ids,
            "ALEXA_RANK": pd.array(alexa, dtype="Int64"),
            "EMPLOYEE_RANGE": employees,
            "INDUSTRY": industry,
            # The outcome (leakage): monthly revenue once paying, empty otherwise. Never a feature.
            "MRR": mrr,
            "COUNTRY": rng.choice(COUNTRIES, rows, p=[0.35, 0.12, 0.1, 0.08, 0.08, 0.06, 0.06, 0.05, 0.06, 0.04]),
            "CREATED_AT": pd.DatetimeIndex(created).strftime("%Y-%m-%d %H:%M:%S"),
        }
    )
    dirty = rng.random(rows) < 0.01  # dirty customer rows: MRR 0 or negative, to be quarantined
    companies.loc[dirty, "MRR"] = rng.choice([0.0, -49.0, -99.0, -1.0], dirty.sum())
    bad_rank = np.flatnonzero(rng.random(rows) < 0.004)  # a few impossible ranks (truth keeps the real one)
    companies.loc[bad_rank, "ALEXA_RANK"] = rng.choice([0, -1], len(bad_rank))
    # ~2% duplicated ids: a second, less complete copy (COUNTRY and maybe more blanked), placed
    # before or after the complete one at random; the pipeline keeps the most complete.
    dup = rng.choice(rows, max(1, round(rows * 0.02)), replace=False)
    copies = companies.iloc[dup].copy()
    copies["COUNTRY"] = None
    for col in ("ALEXA_RANK", "EMPLOYEE_RANGE", "INDUSTRY"):
        copies.loc[rng.random(len(copies)) < 0.4, col] = None
    companies = pd.concat([companies, copies], ignore_index=True)
    companies = companies.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    truth = pd.DataFrame({"ID": ids, "true_probability": p})
    return companies, events, truth


def write(data_dir: str | Path, rows: int = DEFAULT_ROWS, seed: int = 7) -> Path:
    """Write data/saas_crm/{companies,usage_events}.csv and data/truth/saas_crm.csv; return the companies path."""
    data_dir = Path(data_dir)
    companies, events, truth = generate(rows, seed)
    (data_dir / "saas_crm").mkdir(parents=True, exist_ok=True)
    (data_dir / "truth").mkdir(parents=True, exist_ok=True)
    path = data_dir / "saas_crm" / "companies.csv"
    companies.to_csv(path, index=False)
    events.to_csv(data_dir / "saas_crm" / "usage_events.csv", index=False)
    truth.to_csv(data_dir / "truth" / "saas_crm.csv", index=False)
    return path
