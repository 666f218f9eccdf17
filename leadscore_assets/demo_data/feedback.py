"""CRM outcome files for the feedback loop: won/lost for leads that were still open in a demo export.

The demo exports leave part of their leads open (LinkedIn: `status` not `done`), so the label rule
leaves them unlabelled. A CRM later learns how some of them ended: this module writes such an
outcome file (`lead_id,outcome,outcome_at`) into `data/feedback/<project>/`, where the project's
feedback sensor picks it up. Outcomes are drawn from the truth file's `true_probability`, so the
new labels follow the same engagement model as the export's own labels; each outcome time falls
between the lead's creation and `outcome_time`. `bad_rows` adds rows a real CRM drop would have
(an unknown lead id, an unparseable timestamp, an unknown outcome word) to exercise the quarantine.

Scenarios, each with a known truth, so a benchmark can tell whether feedback teaches the model:

- `faithful` (default): outcomes drawn from the truth file, as above.
- `shifted`: the world changed after the export was labelled: some segments now convert
  differently (LinkedIn: the `Enterprise ABM` campaign and the `Hospital & Health Care` industry,
  both weak before, have their true odds of engaging multiplied by `SHIFT_ODDS_RATIO`). Outcomes are
  drawn from the shifted probability; `true_probabilities(..., "shifted")` gives it for every lead
  and `write_feedback` also writes it to `truth/<project>_shifted.csv`.
- `noisy`: the CRM's labels are mostly noise: `NOISE_SHARE` of the outcomes are coin flips at the
  open leads' base rate, the rest follow the truth. Nothing a model should learn from.

Files come in numbered batches (`batch` 1, 2, ...): batch k reports open leads that batches
1..k-1 (same project, seed and size) did not, so a sequence of files never reports a
lead twice; every batch is deterministic given the export and the seed. The same seed and batch
choose the same leads in every scenario (and the same random draws), so the scenarios differ
only in how the outcomes were made.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

SCENARIOS = ("faithful", "shifted", "noisy")
POSITIVE_OUTCOMES = ("won", "replied")
NEGATIVE_OUTCOMES = ("lost", "no_reply")
BAD_ROW_KINDS = ("unknown_lead", "bad_timestamp", "bad_outcome")
MAX_DELAY_DAYS = 45  # an open lead's outcome arrives within this many days of its creation
NOISE_SHARE = 0.85  # `noisy`: share of outcomes that are coin flips at the base rate
SHIFT_ODDS_RATIO = 30.0  # `shifted`: how much the true odds of each shifted segment are multiplied


@dataclass(frozen=True)
class Segment:
    """Leads whose export `column` equals `value` (case and whitespace insensitive)."""

    column: str
    value: str


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
    shifted: tuple[Segment, ...] = ()  # `shifted`: segments whose true odds change


EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$"  # as in defs/linkedin/defs.yaml

SOURCES = {
    "linkedin": _DemoSource(
        export="linkedin/lemlist_export.csv", truth="truth/linkedin.csv", id_column="_id",
        created_column="createdAt", status_column="status", done_status="done", email_column="email",
        # weak before (campaign effect -0.4, industry effect -0.6 on the log-odds), strong now
        shifted=(Segment("campaignName", "Enterprise ABM"), Segment("industry", "Hospital & Health Care")),
    ),
}


def _source(project: str) -> _DemoSource:
    if project not in SOURCES:
        raise ValueError(f"no demo feedback for project {project!r}; known: {', '.join(SOURCES)}")
    return SOURCES[project]


def _check_scenario(scenario: str) -> None:
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown feedback scenario {scenario!r}; known: {', '.join(SCENARIOS)}")


def _export(data_dir: Path, src: _DemoSource, project: str) -> pd.DataFrame:
    export_path = data_dir / src.export
    if not export_path.exists():
        raise FileNotFoundError(f"{export_path}: write the demo export first "
                                f"(python -m leadscore_assets.demo_data {project})")
    export = pd.read_csv(export_path, dtype=str, keep_default_na=False)
    return export.drop_duplicates(src.id_column, keep="first")


def _shift_multiplier(export: pd.DataFrame, src: _DemoSource) -> np.ndarray:
    """Per export row, the factor its true odds are multiplied by in the `shifted` world."""
    odds = np.ones(len(export))
    for seg in src.shifted:
        hit = export[seg.column].fillna("").astype(str).str.strip().str.lower() == seg.value.lower()
        odds *= np.where(hit.to_numpy(), SHIFT_ODDS_RATIO, 1.0)
    return odds


def _with_truth(export: pd.DataFrame, data_dir: Path, src: _DemoSource, scenario: str) -> pd.DataFrame:
    """`export` joined to its truth; `true_probability` is the scenario's (shifted: the new world)."""
    truth = pd.read_csv(data_dir / src.truth, dtype={src.id_column: str})
    rows = export.merge(truth, on=src.id_column, how="inner")
    p = rows["true_probability"].astype(float).to_numpy()
    if scenario == "shifted":
        odds = p / (1.0 - p) * _shift_multiplier(rows, src)
        p = odds / (1.0 + odds)
    return rows.assign(true_probability=p)


def true_probabilities(data_dir: str | Path, project: str = "linkedin", scenario: str = "faithful") -> pd.DataFrame:
    """Every export lead's true probability of engaging in the scenario's world (`lead_id`,
    `true_probability`, `shifted` = whether its odds changed): the truth file for `faithful` and
    `noisy` (noisy labels do not change the world), the shifted truth for `shifted`."""
    _check_scenario(scenario)
    src, data_dir = _source(project), Path(data_dir)
    export = _export(data_dir, src, project)
    rows = _with_truth(export, data_dir, src, scenario)
    shifted = _shift_multiplier(rows, src) != 1.0 if scenario == "shifted" else np.zeros(len(rows), bool)
    return (pd.DataFrame({"lead_id": rows[src.id_column].to_numpy(),
                          "true_probability": rows["true_probability"].to_numpy(), "shifted": shifted})
            .sort_values("lead_id", kind="stable").reset_index(drop=True))


def open_leads(data_dir: str | Path, project: str = "linkedin", scenario: str = "faithful") -> pd.DataFrame:
    """The demo export's leads that are still open (unlabelled by the rule) and pass validation,
    one row per lead: `lead_id`, `created_at` (naive UTC) and `true_probability` (the scenario's)."""
    _check_scenario(scenario)
    src, data_dir = _source(project), Path(data_dir)
    export = _export(data_dir, src, project)
    is_open = export[src.status_column].str.strip().str.lower() != src.done_status
    if src.email_column:
        is_open &= export[src.email_column].str.strip().str.lower().str.match(EMAIL_PATTERN)
    leads = _with_truth(export.loc[is_open], data_dir, src, scenario)
    created = pd.to_datetime(leads[src.created_column], utc=True, format="ISO8601").dt.tz_localize(None)
    return (pd.DataFrame({"lead_id": leads[src.id_column], "created_at": created,
                          "true_probability": leads["true_probability"].astype(float)})
            .sort_values("lead_id", kind="stable").reset_index(drop=True))


def _as_of(outcome_time: datetime | str | None) -> pd.Timestamp:
    as_of = pd.Timestamp(outcome_time if outcome_time is not None else datetime.now(UTC))
    return as_of.tz_convert("UTC").tz_localize(None) if as_of.tzinfo else as_of


def _rng(seed: int, batch: int | None, stream: int = 0) -> np.random.Generator:
    """Batch 1 (or no batch) draws as an unbatched file of the same seed; later batches and
    scenario-specific draws (`stream` > 0) get their own streams."""
    if stream == 0 and (batch is None or batch == 1):
        return np.random.default_rng(seed)
    return np.random.default_rng([seed, batch or 1, stream])


def generate(
    data_dir: str | Path,
    project: str = "linkedin",
    n: int = 300,
    seed: int = 7,
    outcome_time: datetime | str | None = None,
    bad_rows: int = 0,
    exclude: Iterable[str] = (),
    scenario: str = "faithful",
    batch: int | None = None,
) -> pd.DataFrame:
    """Outcome rows (`lead_id`, `outcome`, `outcome_at` as ISO text) for up to `n` open leads
    created before `outcome_time` (default: now, UTC) and not in `exclude` (leads an earlier file
    already reported), plus `bad_rows` problem rows in random places.

    `scenario` says how outcomes are made (see the module docstring). `batch` k (1, 2, ...) is
    file k of a sequence: it also leaves out the leads that batches 1..k-1 (same `n`, seed and
    `exclude`) reported."""
    _check_scenario(scenario)
    if batch is not None and batch < 1:
        raise ValueError(f"batch must be 1 or more, got {batch}")
    as_of = _as_of(outcome_time)
    leads = open_leads(data_dir, project, scenario)
    reported = set(exclude)
    for earlier in range(1, batch or 1):  # the leads are chosen alike in every scenario
        reported |= set(_draw(leads, project, n, seed, as_of, reported, scenario, earlier, 0).lead_id)
    return _draw(leads, project, n, seed, as_of, reported, scenario, batch, bad_rows)


def _draw(
    leads: pd.DataFrame, project: str, n: int, seed: int, as_of: pd.Timestamp, exclude: set[str], scenario: str,
    batch: int | None, bad_rows: int,
) -> pd.DataFrame:
    rng = _rng(seed, batch)
    base_rate = float(leads.true_probability.mean()) if len(leads) else 0.0  # the CRM's, over every open lead
    leads = leads[(leads.created_at < as_of) & ~leads.lead_id.isin(exclude)]
    chosen = leads.iloc[np.sort(rng.choice(len(leads), size=min(n, len(leads)), replace=False))]
    engaged = rng.random(len(chosen)) < chosen.true_probability.to_numpy()
    if scenario == "noisy":
        noise = _rng(seed, batch, stream=1)
        flipped = noise.random(len(chosen)) < NOISE_SHARE
        engaged = np.where(flipped, noise.random(len(chosen)) < base_rate, engaged)
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


def file_name(seed: int, scenario: str = "faithful", batch: int | None = None) -> str:
    """`crm_outcomes_seed7.csv` (today's default), else e.g. `crm_outcomes_shifted_seed7_file2.csv`."""
    parts = ["crm_outcomes", *([scenario] if scenario != "faithful" else []), f"seed{seed}",
             *([f"file{batch}"] if batch is not None else [])]
    return "_".join(parts) + ".csv"


def write_truth(data_dir: str | Path, project: str = "linkedin", scenario: str = "shifted") -> Path:
    """The scenario's true probability of every lead, as `truth/<project>_<scenario>.csv`
    (`<id column>,true_probability,shifted`): what a benchmark scores a model against."""
    src = _source(project)
    truth = true_probabilities(data_dir, project, scenario).rename(columns={"lead_id": src.id_column})
    path = Path(data_dir) / "truth" / f"{project}_{scenario}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    truth.to_csv(path, index=False)
    return path


def write_feedback(
    data_dir: str | Path,
    project: str = "linkedin",
    n: int = 300,
    seed: int = 7,
    outcome_time: datetime | str | None = None,
    bad_rows: int = 0,
    name: str | None = None,
    exclude: Iterable[str] = (),
    scenario: str = "faithful",
    batch: int | None = None,
) -> Path:
    """Write one CRM outcome CSV into `data/feedback/<project>/` (the sensor's folder); return its path.

    Deterministic per (export, seed, outcome_time, bad_rows, exclude, scenario, batch): with the
    default `outcome_time` (now), leads are fixed by the seed but outcome times depend on the day
    it runs only for leads created within MAX_DELAY_DAYS of it. The file is written under a
    temporary name and renamed, as a well-behaved CRM export does, so a sensor never sees it
    half-written. A `shifted` file also writes its truth (`write_truth`) first.
    """
    rows = generate(data_dir, project, n=n, seed=seed, outcome_time=outcome_time, bad_rows=bad_rows, exclude=exclude,
                    scenario=scenario, batch=batch)
    if scenario == "shifted":
        write_truth(data_dir, project, scenario)
    folder = Path(data_dir) / "feedback" / project
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (name or file_name(seed, scenario, batch))
    partial = path.with_name(path.name + ".part")
    rows.to_csv(partial, index=False)
    partial.replace(path)
    return path


def write(data_dir: str | Path, rows: int = 300, seed: int = 7, scenario: str = "faithful",
          batch: int | None = None) -> Path:
    """`python -m leadscore_assets.demo_data feedback --rows 300 [--scenario shifted --batch 2]`:
    LinkedIn outcomes for `rows` open leads (needs the LinkedIn export written first)."""
    return write_feedback(data_dir, "linkedin", n=rows, seed=seed, scenario=scenario, batch=batch)
