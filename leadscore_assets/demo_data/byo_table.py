"""A bring-your-own accounts table (Parquet) unlike any demo source, with a known conversion model.

Twenty-five anonymous numeric columns m01..m25 (different scales, some skewed, some with
missing values, some correlated with each other), two categoricals, a boolean, a signup date,
free-text notes, a contact e-mail and an `outcome` of 'converted' / 'not_converted' / 'open'
('open' = unlabelled). Only six numeric columns and `segment` carry signal, each through a smooth
effect on the log-odds: log(m03), a bell-shaped bump in m07, linear m12, log1p(m15), linear m19
(missing m19 has its own effect) and tanh(log(m22) - 3); everything else is noise, which is what
a generic table looks like to a modeller. Positives are rare (~5% of labelled rows). Open
accounts are mostly recent signups, chosen independently of the outcome. The true probability of
every account goes to a truth file the pipeline never reads.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from leadscore_assets.demo_data.common import sigmoid

DEFAULT_ROWS = 60_000
SNAPSHOT_DATE = np.datetime64("2026-01-01")  # signups span the three years before this day
OPEN_RECENT_DAYS = 120  # most accounts signed up in the last 120 days are still open

INTERCEPT = -6.0
SEGMENTS = {"smb": -0.3, "mid_market": 0.3, "enterprise": 0.6, "startup": 0.1, "public_sector": -0.6}
SEGMENT_SHARE = [0.4, 0.25, 0.1, 0.17, 0.08]
REGIONS = ["emea", "north_america", "apac", "latam"]  # no effect: noise
M03_LOG_COEF = 0.5  # per unit of log(m03) - 8
M07_BUMP = 1.2  # + M07_BUMP * exp(-((m07 - 55) / 10) ** 2 / 2): mid values convert best
M12_COEF = 3.0  # per unit of m12 (a 0-1 ratio)
M15_LOG_COEF = 0.6  # per unit of log1p(m15) (a count)
M19_COEF = 0.5  # per unit of m19 (standardised score)
M19_MISSING_EFFECT = 0.25  # missing m19: its own fixed effect
M22_TANH = 0.8  # + M22_TANH * tanh(log(m22) - 3): saturating
SIGNAL_COLUMNS = ["m03", "m07", "m12", "m15", "m19", "m22"]
MISSING_SHARE = {"m04": 0.05, "m05": 0.08, "m11": 0.1, "m19": 0.12, "m23": 0.15}
SENTENCES = np.array([
    "Called twice, left a voicemail.", "Asked for a pricing sheet.", "Met at the spring trade show.",
    "Budget review next quarter.", "Prefers e-mail over phone.", "Champion moved to another team.",
    "Using a competitor for now.", "Interested in the API.", "Requested a security questionnaire.",
    "Follow up after the holidays.", "Legal is reviewing the terms.", "Small team, growing fast.",
    "No decision maker identified yet.", "Downloaded the whitepaper.", "Referred by an existing customer.",
])
FIRST = ["ana", "ben", "carla", "dev", "eli", "fatou", "gus", "hana", "ivan", "jade"]
LAST = ["okafor", "lindqvist", "moreau", "tanaka", "kowal", "reyes", "obrien", "schulz"]


def true_logit(frame: pd.DataFrame) -> np.ndarray:
    """Log-odds of conversion from the signal columns (as written) and segment."""
    m19 = frame["m19"].to_numpy(dtype=float)
    return (
        INTERCEPT
        + np.array([SEGMENTS[s] for s in frame["segment"]])
        + M03_LOG_COEF * (np.log(frame["m03"].to_numpy(dtype=float)) - 8)
        + M07_BUMP * np.exp(-(((frame["m07"].to_numpy(dtype=float) - 55) / 10) ** 2) / 2)
        + M12_COEF * frame["m12"].to_numpy(dtype=float)
        + M15_LOG_COEF * np.log1p(frame["m15"].to_numpy(dtype=float))
        + np.where(np.isnan(m19), M19_MISSING_EFFECT, M19_COEF * np.nan_to_num(m19))
        + M22_TANH * np.tanh(np.log(frame["m22"].to_numpy(dtype=float)) - 3)
    )


def generate(rows: int = DEFAULT_ROWS, seed: int = 7) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (accounts, truth). Truth is keyed by `account_ref`."""
    rng = np.random.default_rng(seed)
    n = rows
    m03 = np.round(np.exp(rng.normal(8, 1.0, n)), 2)  # skewed, revenue-like
    m07 = np.round(rng.normal(50, 15, n), 1)
    m = {
        "m01": np.round(rng.normal(100, 15, n), 2),
        "m02": np.round(np.exp(rng.normal(9, 1.3, n))),
        "m03": m03,
        "m04": np.round(m03 * np.exp(rng.normal(0, 0.6, n)) / 12, 2),  # correlated with m03, no own effect
        "m05": np.round(rng.random(n), 4),
        "m06": rng.poisson(3, n).astype(float),
        "m07": m07,
        "m08": np.round(m07 + rng.normal(0, 10, n), 1),  # correlated with m07, no own effect
        "m09": np.round(rng.exponential(2, n), 3),
        "m10": np.round(rng.normal(0, 1, n), 4),
        "m11": np.round(rng.normal(0, 1000, n), 1),
        "m12": np.round(rng.beta(2, 5, n), 4),
        "m13": rng.integers(0, 101, n).astype(float),
        "m14": np.round((rng.pareto(1.5, n) + 1) * 10, 2),  # heavy tail
        "m15": rng.poisson(np.exp(rng.normal(1.2, 0.9, n))).astype(float),
        "m16": np.round(rng.normal(0, 250, n), 1),
        "m17": np.round(rng.standard_t(3, n), 4),
        "m18": np.round(rng.uniform(-1, 1, n), 4),
        "m19": np.round(rng.normal(0, 1, n), 4),
        "m20": np.round(rng.gamma(2, 50, n), 2),
        "m21": np.round(rng.lognormal(0, 0.3, n), 4),
        "m22": np.round(np.exp(rng.normal(3, 1.0, n)), 3),
        "m23": np.round(rng.normal(1e6, 2e5, n)),
        "m24": (rng.random(n) < 0.02).astype(float) * rng.integers(1, 5, n),  # mostly zero
        "m25": np.round(rng.weibull(1.5, n) * 30, 2),
    }
    for col, share in MISSING_SHARE.items():
        m[col][rng.random(n) < share] = np.nan
    seg = rng.choice(np.array(list(SEGMENTS)), n, p=SEGMENT_SHARE)
    frame = pd.DataFrame({"segment": seg, **m})
    p = sigmoid(true_logit(frame))
    converted = rng.random(n) < p

    signup = SNAPSHOT_DATE - rng.integers(1, 3 * 365, n).astype("timedelta64[D]")
    recent = (SNAPSHOT_DATE - signup).astype(np.int64) <= OPEN_RECENT_DAYS
    is_open = rng.random(n) < np.where(recent, 0.6, 0.04)  # independent of the outcome given nothing
    outcome = np.where(is_open, "open", np.where(converted, "converted", "not_converted"))

    refs = np.char.add("ACC-", np.char.zfill((100_000 + rng.permutation(n * 4)[:n]).astype(str), 7))
    first, last = rng.choice(FIRST, n), rng.choice(LAST, n)
    email = np.char.add(np.char.add(np.char.add(np.char.add(first, "."), last), np.arange(n).astype(str)), "@client.example")
    notes = np.char.add(np.char.add(rng.choice(SENTENCES, n), " "), rng.choice(SENTENCES, n)).astype(object)
    notes[rng.random(n) < 0.2] = None
    accounts = pd.DataFrame(
        {
            "account_ref": refs,
            **{k: m[k] for k in sorted(m)},
            "segment": seg,
            "region": rng.choice(REGIONS, n, p=[0.4, 0.35, 0.15, 0.1]),
            "is_partner": rng.random(n) < np.where(seg == "enterprise", 0.3, 0.1),  # no effect
            "signup_date": pd.to_datetime(signup).date,
            "notes": notes,  # free text, independent of the outcome: not a feature unless configured
            "contact_email": email,  # personal data
            "outcome": outcome,  # the label: 'open' rows are unlabelled
        }
    )
    truth = pd.DataFrame({"account_ref": refs, "true_probability": p})
    return accounts, truth


def write(data_dir: str | Path, rows: int = DEFAULT_ROWS, seed: int = 7) -> Path:
    """Write data/byo_example/accounts.parquet and data/truth/byo_example.csv; return the Parquet path."""
    data_dir = Path(data_dir)
    accounts, truth = generate(rows, seed)
    (data_dir / "byo_example").mkdir(parents=True, exist_ok=True)
    (data_dir / "truth").mkdir(parents=True, exist_ok=True)
    path = data_dir / "byo_example" / "accounts.parquet"
    accounts.to_parquet(path, index=False, engine="pyarrow")
    truth.to_csv(data_dir / "truth" / "byo_example.csv", index=False)
    return path
