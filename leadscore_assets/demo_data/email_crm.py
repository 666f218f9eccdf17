"""A Mailchimp-style email CRM in SQLite (subscribers, tags, transactions) with a known purchase model.

The label is "made a purchase" (at least one row in `transactions`). Its log-odds are a sum of
effects of what the CRM knew before any purchase: the member rating (ordinal, strongest), one
effect per tag plus an effect of the number of tags, a smooth rise-then-fall in the days from
opt-in to SNAPSHOT_DATE (older subscribers had longer to buy but cool off), small calendar
effects of the opt-in time (month, weekday, weekend) and a country effect for the six largest
countries with one shared effect for the long tail. Every term is a function of a column (or
of the tag rows) the pipeline sees, so a well-built model can reach the Bayes AUC; the true
probability of each subscriber goes to a truth file the pipeline never reads.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
from leadscore_assets.demo_data.common import hex_ids, sigmoid

DEFAULT_ROWS = 5000
SNAPSHOT_DATE = np.datetime64("2026-06-30T00:00:00")  # "today" for the CRM export: days since opt-in count to here
OPTIN_MAX_DAYS = 900  # opt-ins span the 900 days before SNAPSHOT_DATE

INTERCEPT = -2.9
RATING_EFFECT = {1: -1.3, 2: -0.6, 3: 0.0, 4: 0.7, 5: 1.4}  # Mailchimp member_rating (1-5 stars)
TAG_EFFECT = {  # each tag a subscriber carries adds its effect
    "webinar": 0.5, "newsletter": -0.1, "ebook": 0.2, "pricing-page": 0.9, "trial": 1.1,
    "event": 0.3, "partner": 0.4, "course-waitlist": 0.6,
}
TAG_WEIGHT = {  # how common each tag is (relative odds of being picked)
    "webinar": 1.0, "newsletter": 3.0, "ebook": 1.5, "pricing-page": 0.8, "trial": 0.6,
    "event": 0.9, "partner": 0.3, "course-waitlist": 0.5,
}
TAG_COUNT_EFFECT = np.array([-0.3, 0.0, 0.1, 0.1, 0.0, -0.15])  # by number of tags 0..5 (tag fatigue)
TAG_COUNT_SHARE = np.array([0.18, 0.27, 0.23, 0.16, 0.10, 0.06])
MONTH_EFFECT = np.array([0.05, 0.0, -0.05, 0.0, 0.0, -0.1, -0.15, -0.1, 0.05, 0.05, 0.15, 0.2])  # Jan..Dec of opt-in
WEEKDAY_EFFECT = np.array([0.1, 0.05, 0.05, 0.0, -0.05, 0.0, 0.0])  # Mon..Sun of opt-in
WEEKEND_EFFECT = -0.2  # added on Saturday and Sunday opt-ins
# Two-letter country codes, most common first (long tail). The first six have their own effect.
COUNTRIES = [
    "US", "GB", "DE", "FR", "CA", "AU", "NL", "ES", "IT", "SE", "BR", "IN", "BE", "CH", "IE",
    "AT", "DK", "NO", "FI", "PL", "PT", "MX", "AR", "JP", "SG", "NZ", "ZA", "IL", "CZ", "RO",
    "GR", "HU", "TR", "KR", "CO", "CL", "PH", "AE", "NG", "EE",
]
COUNTRY_EFFECT = {"US": 0.3, "GB": 0.2, "DE": -0.1, "FR": 0.0, "CA": 0.15, "AU": 0.25}
OTHER_COUNTRY_EFFECT = -0.2  # every country outside the top six shares this effect
ISO3 = {"US": "USA", "GB": "GBR", "DE": "DEU", "FR": "FRA", "CA": "CAN", "AU": "AUS", "NL": "NLD", "ES": "ESP"}
EMAIL_CLIENTS = ["gmail", "outlook", "apple", "other"]  # no effect: a noise column
SOURCES = ["signup form", "import", "api"]  # no effect: a noise column
FIRST = ["Alice", "Bob", "Chloé", "David", "Emma", "Farid", "Giulia", "Hugo", "Inès", "Jun", "Kofi", "Lena"]
LAST = ["Martin", "Bernard", "Smith", "Nguyen", "Garcia", "Müller", "Rossi", "Dubois", "Kowalski", "Silva"]
DOMAINS = ["gmail.com", "outlook.com", "icloud.com", "example.org", "corp.example.com"]


def _days_effect(days: np.ndarray) -> np.ndarray:
    """Days from opt-in to SNAPSHOT_DATE: rises (time to buy) then falls (cooling off)."""
    return 0.8 * np.log1p(days / 60.0) - 0.9 * days / 365.0


def _noise(values: np.ndarray, rng: np.random.Generator, share: float) -> np.ndarray:
    """Case changes or stray whitespace on a share of the values (vectorised)."""
    out = values.astype(object).copy()
    idx = np.flatnonzero(rng.random(len(out)) < share)
    kind = rng.integers(0, 4, len(idx))
    s = out[idx].astype(str)
    out[idx] = np.select(
        [kind == 0, kind == 1, kind == 2], [np.char.lower(s), np.char.upper(s), np.char.add("  ", s)], np.char.add(s, " ")
    )
    return out


def generate(
    rows: int = DEFAULT_ROWS, seed: int = 7
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Return (subscribers, tags, transactions, truth). Truth is keyed by `mailchimp_id`."""
    rng = np.random.default_rng(seed)
    ids = hex_ids(rows, seed, 10)

    rating = rng.choice(np.arange(1, 6), rows, p=[0.12, 0.33, 0.3, 0.15, 0.1])
    cw = 1.0 / np.arange(1, len(COUNTRIES) + 1) ** 1.1  # Zipf-like long tail
    country_idx = rng.choice(len(COUNTRIES), rows, p=cw / cw.sum())
    country = np.array(COUNTRIES)[country_idx]
    # Growing list: recent opt-ins are more common than old ones.
    age_s = (1 + (OPTIN_MAX_DAYS - 1) * rng.beta(1.0, 1.5, rows)) * 86400
    optin = SNAPSHOT_DATE - age_s.astype("timedelta64[s]")
    days = (SNAPSHOT_DATE - optin).astype(np.int64) / 86400.0
    dt = pd.DatetimeIndex(optin)
    month, weekday = dt.month.to_numpy() - 1, dt.dayofweek.to_numpy()

    # Tags: a count 0..5, then that many distinct tags by weighted sampling without replacement
    # (Efraimidis-Spirakis keys u**(1/w): the k largest keys are the sample).
    tag_names = np.array(list(TAG_EFFECT))
    n_tags = rng.choice(len(TAG_COUNT_SHARE), rows, p=TAG_COUNT_SHARE)
    keys = rng.random((rows, len(tag_names))) ** (1.0 / np.array([TAG_WEIGHT[t] for t in tag_names]))
    rank = np.argsort(np.argsort(-keys, axis=1), axis=1)
    has_tag = rank < n_tags[:, None]

    logit = (
        INTERCEPT
        + np.array([RATING_EFFECT[r] for r in range(1, 6)])[rating - 1]
        + has_tag @ np.array([TAG_EFFECT[t] for t in tag_names])
        + TAG_COUNT_EFFECT[n_tags]
        + _days_effect(days)
        + MONTH_EFFECT[month]
        + WEEKDAY_EFFECT[weekday]
        + np.where(weekday >= 5, WEEKEND_EFFECT, 0.0)
        + np.array([COUNTRY_EFFECT.get(c, OTHER_COUNTRY_EFFECT) for c in COUNTRIES])[country_idx]
    )
    p = sigmoid(logit)
    purchased = rng.random(rows) < p

    # Transactions: 1-4 per purchaser, after opt-in and before the snapshot.
    buyers = np.flatnonzero(purchased)
    n_tx = 1 + np.minimum(rng.geometric(0.6, len(buyers)) - 1, 3)
    tx_owner = np.repeat(buyers, n_tx)
    window = (SNAPSHOT_DATE - optin[tx_owner]).astype(np.int64)
    purchased_at = optin[tx_owner] + (rng.uniform(0.02, 1.0, len(tx_owner)) * window).astype("timedelta64[s]")
    amount = np.round(np.exp(rng.normal(np.log(49.0), 0.7, len(tx_owner))), 0) - 0.01
    transactions = pd.DataFrame(
        {
            "mailchimp_id": ids[tx_owner],
            "transaction_id": np.char.add("txn_", hex_ids(len(tx_owner), seed + 101, 12)),
            "amount": amount,
            # Recorded after the outcome (leakage): the purchase itself. Never a feature.
            "purchased_at": pd.DatetimeIndex(purchased_at).strftime("%Y-%m-%d %H:%M:%S"),
        }
    ).sort_values("purchased_at", kind="stable").reset_index(drop=True)
    last_purchase = pd.Series(purchased_at).groupby(tx_owner).max()
    last_changed = optin + (rng.uniform(0, 1, rows) * (SNAPSHOT_DATE - optin).astype(np.int64)).astype("timedelta64[s]")
    last_changed[last_purchase.index.to_numpy()] = (
        last_purchase.to_numpy().astype("datetime64[s]") + rng.integers(60, 3600, len(last_purchase)).astype("timedelta64[s]")
    )

    first = rng.choice(FIRST, rows)
    last = rng.choice(LAST, rows)
    local = np.char.add(np.char.add(np.char.lower(first), "."), np.char.lower(last))
    email = np.char.add(np.char.add(np.char.add(local, np.arange(rows).astype(str)), "@"), rng.choice(DOMAINS, rows))
    email = email.astype(object)
    bad = np.flatnonzero(rng.random(rows) < 0.01)  # ~1% invalid emails
    kinds = rng.integers(0, 3, len(bad))
    bad_s = email[bad].astype(str)
    email[bad] = np.where(
        kinds == 0, np.char.replace(bad_s, "@", " at "),
        np.where(kinds == 1, np.char.replace(bad_s, "@", "@@"), np.char.rpartition(bad_s, ".")[:, 0]),
    )

    shown_rating = rating.copy()
    bad_rating = rng.random(rows) < 0.004  # a few ratings outside 1-5: the true rating is kept in the model
    shown_rating[bad_rating] = rng.choice([0, 7], bad_rating.sum())
    shown_country = country.astype(object)
    iso3 = np.flatnonzero((rng.random(rows) < 0.006) & np.isin(country, list(ISO3)))  # a few 3-letter codes
    shown_country[iso3] = [ISO3[c] for c in country[iso3]]

    subscribers = pd.DataFrame(
        {
            "mailchimp_id": ids,
            "user_email": email,
            "first_name": _noise(first, rng, 0.05),
            "last_name": _noise(last, rng, 0.05),
            "member_rating": shown_rating,
            "optin_time": dt.strftime("%Y-%m-%d %H:%M:%S"),
            "country_code": _noise(shown_country, rng, 0.03),
            "email_client": _noise(rng.choice(EMAIL_CLIENTS, rows, p=[0.45, 0.25, 0.2, 0.1]), rng, 0.03),
            "source": rng.choice(SOURCES, rows, p=[0.6, 0.3, 0.1]),
            "language": rng.choice(["en", "fr", "de", "es"], rows, p=[0.7, 0.1, 0.1, 0.1]),
            # Recorded after the outcome (leakage): Mailchimp bumps LAST_CHANGED on every purchase.
            "last_changed": pd.DatetimeIndex(last_changed).strftime("%Y-%m-%d %H:%M:%S"),
        }
    )
    # ~0.5% duplicated ids: the same subscriber re-imported (same attributes, source 'import',
    # e-mail upper-cased), appended at the end so the original row comes first.
    dup = np.sort(rng.choice(rows, max(1, round(rows * 0.005)), replace=False))
    copies = subscribers.iloc[dup].copy()
    copies["source"] = "import"
    copies["user_email"] = copies["user_email"].astype(str).str.upper()
    subscribers = pd.concat([subscribers, copies], ignore_index=True)

    owner, tag_idx = np.nonzero(has_tag)
    tags = pd.DataFrame({"mailchimp_id": ids[owner], "tag": tag_names[tag_idx]})
    tags = tags.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    truth = pd.DataFrame({"mailchimp_id": ids, "true_probability": p})
    return subscribers, tags, transactions, truth


def write(data_dir: str | Path, rows: int = DEFAULT_ROWS, seed: int = 7) -> Path:
    """Write data/email_crm/crm_database.sqlite and data/truth/email_crm.csv; return the database path."""
    data_dir = Path(data_dir)
    subscribers, tags, transactions, truth = generate(rows, seed)
    (data_dir / "email_crm").mkdir(parents=True, exist_ok=True)
    (data_dir / "truth").mkdir(parents=True, exist_ok=True)
    path = data_dir / "email_crm" / "crm_database.sqlite"
    path.unlink(missing_ok=True)
    with sqlite3.connect(path) as conn:
        subscribers.to_sql("subscribers", conn, index=False)
        tags.to_sql("tags", conn, index=False)
        transactions.to_sql("transactions", conn, index=False)
    conn.close()
    truth.to_csv(data_dir / "truth" / "email_crm.csv", index=False)
    return path
