"""CRM outcome files for the feedback loop: won/lost for leads that were still open in a demo export.

The demo exports leave part of their leads open (LinkedIn: `status` not `done`), so the label rule
leaves them unlabelled. A CRM later learns how some of them ended: this module writes such an
outcome file (`lead_id,outcome,outcome_at`) into `data/feedback/<project>/`, where the project's
feedback sensor picks it up. Outcomes are drawn from the truth file's `true_probability`, so the
new labels follow the same engagement model as the export's own labels; each outcome time falls
between the lead's creation and `outcome_time`. `bad_rows` adds rows a real CRM drop would have
(an unknown lead id, an unparseable timestamp, an unknown outcome word) to exercise the quarantine.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

POSITIVE_OUTCOMES = ("won", "replied")
NEGATIVE_OUTCOMES = ("lost", "no_reply")
BAD_ROW_KINDS = ("unknown_lead", "bad_timestamp", "bad_outcome")
MAX_DELAY_DAYS = 45  # an open lead's outcome arrives within this many days of its creation


@dataclass(frozen=True)
class _DemoSource:
    """Where a demo generator writes its export and truth, and how to read its open leads."""

    export: str  # relative to the data directory
    truth: str
    id_column: str  # in the export and the truth file; its values are the warehouse's lead ids
    created_column: str
    status_column: str
    done_status: str  # status (case and whitespace insensitive) of leads the label rule already decided
    email_column: str | None  # rows with an invalid email are quarantined by validation: never chosen


EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$"  # as in defs/linkedin/defs.yaml

SOURCES = {
    "linkedin": _DemoSource(
        export="linkedin/lemlist_export.csv", truth="truth/linkedin.csv", id_column="_id",
        created_column="createdAt", status_column="status", done_status="done", email_column="email",
    ),
}


def open_leads(data_dir: str | Path, project: str = "linkedin") -> pd.DataFrame:
    """The demo export's leads that are still open (unlabelled by the rule) and pass validation,
    one row per lead: `lead_id`, `created_at` (naive UTC) and `true_probability`."""
    if project not in SOURCES:
        raise ValueError(f"no demo feedback for project {project!r}; known: {', '.join(SOURCES)}")
    src, data_dir = SOURCES[project], Path(data_dir)
    export_path = data_dir / src.export
    if not export_path.exists():
        raise FileNotFoundError(f"{export_path}: write the demo export first "
                                f"(python -m leadscore_assets.demo_data {project})")
    export = pd.read_csv(export_path, dtype=str, keep_default_na=False)
    truth = pd.read_csv(data_dir / src.truth, dtype={src.id_column: str})
    export = export.drop_duplicates(src.id_column, keep="first")
    is_open = export[src.status_column].str.strip().str.lower() != src.done_status
    if src.email_column:
        is_open &= export[src.email_column].str.strip().str.lower().str.match(EMAIL_PATTERN)
    leads = export.loc[is_open, [src.id_column, src.created_column]].merge(truth, on=src.id_column, how="inner")
    created = pd.to_datetime(leads[src.created_column], utc=True, format="ISO8601").dt.tz_localize(None)
    return (pd.DataFrame({"lead_id": leads[src.id_column], "created_at": created,
                          "true_probability": leads["true_probability"].astype(float)})
            .sort_values("lead_id", kind="stable").reset_index(drop=True))


def generate(
    data_dir: str | Path,
    project: str = "linkedin",
    n: int = 300,
    seed: int = 7,
    outcome_time: datetime | str | None = None,
    bad_rows: int = 0,
    exclude: Iterable[str] = (),
) -> pd.DataFrame:
    """Outcome rows (`lead_id`, `outcome`, `outcome_at` as ISO text) for up to `n` open leads
    created before `outcome_time` (default: now, UTC) and not in `exclude` (leads an earlier file
    already reported), plus `bad_rows` problem rows in random places."""
    rng = np.random.default_rng(seed)
    as_of = pd.Timestamp(outcome_time if outcome_time is not None else datetime.now(UTC))
    as_of = as_of.tz_convert("UTC").tz_localize(None) if as_of.tzinfo else as_of
    leads = open_leads(data_dir, project)
    leads = leads[(leads.created_at < as_of) & ~leads.lead_id.isin(set(exclude))]
    chosen = leads.iloc[np.sort(rng.choice(len(leads), size=min(n, len(leads)), replace=False))]
    engaged = rng.random(len(chosen)) < chosen.true_probability.to_numpy()
    outcome = np.where(engaged, rng.choice(POSITIVE_OUTCOMES, len(chosen)), rng.choice(NEGATIVE_OUTCOMES, len(chosen)))
    # Uniformly within (created, min(created + MAX_DELAY_DAYS, as_of)]: never before the lead existed.
    latest = (chosen.created_at + pd.Timedelta(days=MAX_DELAY_DAYS)).clip(upper=as_of)
    span_s = (latest - chosen.created_at).dt.total_seconds().to_numpy()
    offset_s = np.ceil(rng.uniform(0.0, 1.0, len(chosen)) * span_s).clip(1, np.maximum(span_s, 1))
    outcome_at = chosen.created_at + pd.to_timedelta(offset_s, unit="s")
    rows = pd.DataFrame({
        "lead_id": chosen.lead_id.to_numpy(),
        "outcome": outcome,
        "outcome_at": outcome_at.dt.strftime("%Y-%m-%dT%H:%M:%SZ").to_numpy(),
    })
    for i in range(bad_rows):
        kind = BAD_ROW_KINDS[i % len(BAD_ROW_KINDS)]
        template = rows.iloc[int(rng.integers(len(rows)))] if len(rows) else pd.Series(
            {"lead_id": f"{project}_0", "outcome": "won", "outcome_at": as_of.strftime("%Y-%m-%dT%H:%M:%SZ")})
        bad = template.copy()
        if kind == "unknown_lead":
            bad["lead_id"] = f"unknown_{seed}_{i:04d}"
        elif kind == "bad_timestamp":
            bad["outcome_at"] = "last tuesday"
        else:
            bad["outcome"] = "maybe later"
        at = int(rng.integers(len(rows) + 1))
        rows = pd.concat([rows.iloc[:at], bad.to_frame().T, rows.iloc[at:]], ignore_index=True)
    return rows


def write_feedback(
    data_dir: str | Path,
    project: str = "linkedin",
    n: int = 300,
    seed: int = 7,
    outcome_time: datetime | str | None = None,
    bad_rows: int = 0,
    name: str | None = None,
    exclude: Iterable[str] = (),
) -> Path:
    """Write one CRM outcome CSV into `data/feedback/<project>/` (the sensor's folder); return its path.

    Deterministic per (export, seed, outcome_time, bad_rows, exclude): with the default `outcome_time`
    (now), leads are fixed by the seed but outcome times depend on the day it runs only for
    leads created within MAX_DELAY_DAYS of it. The file is written under a temporary name and
    renamed, as a well-behaved CRM export does, so a sensor never sees it half-written.
    """
    rows = generate(data_dir, project, n=n, seed=seed, outcome_time=outcome_time, bad_rows=bad_rows, exclude=exclude)
    folder = Path(data_dir) / "feedback" / project
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (name or f"crm_outcomes_seed{seed}.csv")
    partial = path.with_name(path.name + ".part")
    rows.to_csv(partial, index=False)
    partial.replace(path)
    return path


def write(data_dir: str | Path, rows: int = 300, seed: int = 7) -> Path:
    """`python -m leadscore_assets.demo_data feedback --rows 300`: LinkedIn outcomes for `rows` open
    leads (needs the LinkedIn export written first)."""
    return write_feedback(data_dir, "linkedin", n=rows, seed=seed)
