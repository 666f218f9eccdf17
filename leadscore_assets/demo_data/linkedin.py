"""A realistic, messy LemList LinkedIn campaign export with a known engagement model.

Engagement follows a logistic model of pre-outreach attributes only (title, industry, company
size, location, campaign, day of week added). The true probability of every contact is
written to a separate truth file that the pipeline never reads, so benchmarks can report the
gap between the champion and the best possible (Bayes) AUC on the same rows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

TITLES = {  # title -> effect on the log-odds of engaging
    "CEO": 1.0, "Founder": 1.1, "Co-Founder": 0.9, "CTO": 0.6, "VP Sales": 0.8,
    "VP Marketing": 0.7, "Head of Growth": 0.9, "Director of Sales": 0.5,
    "Marketing Director": 0.4, "Sales Manager": 0.1, "Marketing Manager": 0.0,
    "Account Executive": -0.3, "Software Engineer": -0.9, "Data Analyst": -0.7,
    "Recruiter": -0.5, "Intern": -1.3,
}
INDUSTRIES = {
    "Computer Software": 0.5, "Marketing and Advertising": 0.6, "Financial Services": -0.2,
    "Hospital & Health Care": -0.6, "Retail": -0.1, "Education Management": -0.4,
    "Information Technology and Services": 0.3, "Construction": -0.5,
}
LOCATIONS = {
    "Paris, France": 0.3, "Lyon, France": 0.2, "London, United Kingdom": 0.0,
    "Berlin, Germany": -0.1, "New York, United States": -0.3, "Madrid, Spain": 0.1,
    "Toronto, Canada": -0.2,
}
CAMPAIGNS = {"SaaS founders Q1": 0.3, "Agency outreach": 0.0, "Enterprise ABM": -0.4}
WEEKDAY_EFFECT = np.array([0.15, 0.1, 0.05, 0.0, -0.1, -0.3, -0.35])  # Mon..Sun of createdAt
INTERCEPT = -1.6
UNKNOWN_EFFECT = -0.2  # effect of a missing industry or size: part of the model, visible to a learner
FIRST = ["Alice", "Bob", "Chloé", "David", "Emma", "Farid", "Giulia", "Hugo", "Inès", "Jun"]
LAST = ["Martin", "Bernard", "Smith", "Nguyen", "Garcia", "Müller", "Rossi", "Dubois"]
ENGAGED_STATES = ["linkedinReplied", "linkedinInterested"]
DONE_STATES = ["linkedinInviteAccepted", "linkedinVisitDone", "emailsSent", "linkedinInviteSent"]
OPEN_STATES = ["linkedinInviteSent", "linkedinVisitDone", "emailsOpened"]


def _size_effect(size: np.ndarray) -> np.ndarray:
    """Mid-sized companies (about 50-500 staff) engage most: a bump, not a line."""
    return -0.35 * (np.log10(size) - 2.2) ** 2 + 0.3


def _messy_case(values: np.ndarray, rng: np.random.Generator, share: float = 0.15) -> np.ndarray:
    """Mixed case and stray whitespace on a share of the values, as real exports have."""
    out = values.astype(object).copy()
    idx = np.flatnonzero(rng.random(len(out)) < share)
    for i in idx:
        v = out[i]
        if isinstance(v, str):
            out[i] = rng.choice([v.upper(), v.lower(), f"  {v} ", f"{v}  "])
    return out


def generate(rows: int = 5000, seed: int = 7) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (export, truth). `export` has LemList's camelCase columns and its messiness."""
    rng = np.random.default_rng(seed)
    titles = rng.choice(list(TITLES), rows)
    industries = rng.choice(list(INDUSTRIES), rows).astype(object)
    industry_missing = rng.random(rows) < 0.06
    industries[industry_missing] = None
    sizes = np.round(10 ** rng.uniform(0.3, 4.3, rows)).astype(int)
    size_missing = rng.random(rows) < 0.04
    locations = rng.choice(list(LOCATIONS), rows)
    campaigns = rng.choice(list(CAMPAIGNS), rows, p=[0.4, 0.35, 0.25])
    start = np.datetime64("2026-01-05T08:00")
    created = start + (rng.uniform(0, 200 * 24 * 60, rows)).astype("timedelta64[m]")
    weekday = pd.DatetimeIndex(created).dayofweek.to_numpy()

    logit = (
        INTERCEPT
        + np.array([TITLES[t] for t in titles])
        + np.array([INDUSTRIES[i] if i is not None else UNKNOWN_EFFECT for i in industries])
        + np.where(size_missing, UNKNOWN_EFFECT, _size_effect(sizes))
        + np.array([LOCATIONS[loc] for loc in locations])
        + np.array([CAMPAIGNS[c] for c in campaigns])
        + WEEKDAY_EFFECT[weekday]
    )
    p = 1.0 / (1.0 + np.exp(-logit))
    engaged = rng.random(rows) < p

    status = rng.choice(["done", "inProgress", "reviewed", "paused"], rows, p=[0.75, 0.15, 0.05, 0.05])
    is_done = status == "done"
    last_state = np.where(
        engaged & is_done,
        rng.choice(ENGAGED_STATES, rows),
        np.where(is_done, rng.choice(DONE_STATES, rows), rng.choice(OPEN_STATES, rows)),
    )
    # Open contacts have not answered yet: their outcome is unknown, never a negative.
    ids = np.array([f"lea_{seed:02d}{i:08d}" for i in range(rows)])
    first = rng.choice(FIRST, rows)
    last = rng.choice(LAST, rows)
    email = np.char.add(np.char.add(np.char.lower(first.astype(str)), "."), np.char.lower(last.astype(str)))
    email = np.char.add(np.char.add(email, np.arange(rows).astype(str)), "@example.com").astype(object)
    bad_email = rng.random(rows) < 0.02
    if bad_email.any():
        email[bad_email] = np.char.replace(email[bad_email].astype(str), "@", " at ")
    steps = np.where(engaged & is_done, rng.integers(1, 3, rows), rng.integers(2, 6, rows))

    export = pd.DataFrame(
        {
            "_id": ids,
            "email": email,
            "emailStatus": rng.choice(["deliverable", "risky", "unknown"], rows, p=[0.8, 0.1, 0.1]),
            "firstName": first,
            "lastName": last,
            "phone": [f"+33 6 {rng.integers(10, 99)} {rng.integers(10, 99)} {rng.integers(10, 99)} {i % 100:02d}" for i in range(rows)],
            "picture": [f"https://img.lemlist.example/{i}.jpg" for i in ids],
            "linkedinUrl": [f"https://www.linkedin.com/in/{f.lower()}-{i[-6:]}" for f, i in zip(first, ids)],
            "companyName": rng.choice(["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark"], rows),
            "jobTitle": _messy_case(titles, rng),
            "industry": _messy_case(industries, rng),
            "companySize": sizes.astype(object),
            "location": _messy_case(locations, rng, 0.05),
            "campaignName": campaigns,
            "createdAt": pd.DatetimeIndex(created).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "status": _messy_case(status, rng, 0.05),
            "lastState": last_state,
            "lastStateAt": (pd.DatetimeIndex(created) + pd.to_timedelta(rng.integers(1, 30, rows), "D")).strftime(
                "%Y-%m-%dT%H:%M:%S.000Z"
            ),
            "stepsCompleted": steps,
        }
    )
    export.loc[size_missing, "companySize"] = None
    truth = pd.DataFrame({"_id": ids, "true_probability": p})
    dupes = export.sample(frac=0.01, random_state=seed)
    export = pd.concat([export, dupes], ignore_index=True).sample(frac=1.0, random_state=seed + 1)
    return export.reset_index(drop=True), truth


def write(data_dir: str | Path, rows: int = 5000, seed: int = 7) -> Path:
    """Write the export under data/linkedin/ and its truth under data/truth/; return the export path."""
    data_dir = Path(data_dir)
    export, truth = generate(rows, seed)
    (data_dir / "linkedin").mkdir(parents=True, exist_ok=True)
    (data_dir / "truth").mkdir(parents=True, exist_ok=True)
    path = data_dir / "linkedin" / "lemlist_export.csv"
    export.to_csv(path, index=False)
    truth.to_csv(data_dir / "truth" / "linkedin.csv", index=False)
    return path
