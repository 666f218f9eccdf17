"""Score effectiveness: do leads graded A convert more than B, C and D, once the scores are live?

Joins each CRM outcome that landed to the score its lead had *when it was scored*, not the
current model's: the latest row of the score history (`score_history`, one row each time a
lead's score changed) strictly before the outcome's `outcome_at`. From those pairs:

- conversion by grade and by decile, per month of scoring and over all months, with counts,
  rates and Wilson 95% intervals (small groups get wide intervals, not false precision);
- production calibration: mean predicted probability against observed conversion per decile and
  model version, next to the same figures measured on the test split when that version was trained;
- one picture of the three, and headline figures (outcomes matched, top grade against the rest).

Outcomes whose lead was never scored, or only scored after the outcome happened, are counted and
reported as unmatched, never silently dropped. Ids and scores only: no personal data enters here.
No I/O: the asset (assets/effectiveness.py) reads the tables and writes the files.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

ID = "lead_id"
HISTORY_COLUMNS = [ID, "probability", "decile", "grade", "model_version", "scored_at", "dagster_run_id"]
# what a change of score is: a lead's history gets a row only when one of these moved (the
# probability to 3 decimals), so rescoring unchanged leads every night does not grow the table
CHANGE_KEY = ["model_version", "grade", "decile", "probability_3dp"]
MATCHED, NEVER_SCORED, SCORED_AFTER = "matched", "never scored", "scored only after the outcome"
ALL_MONTHS = "all"
Z95 = 1.959963984540054
NO_OUTCOMES = "no CRM outcomes have landed yet"


def wilson_interval(successes, n, z: float = Z95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of a binomial rate (NaN where n = 0). Unlike the normal approximation
    it stays inside [0, 1] and is honest for 0 or n successes out of a few."""
    k, n = np.asarray(successes, dtype=float), np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    lo, hi = np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)
    return np.where(n > 0, lo, np.nan), np.where(n > 0, hi, np.nan)


def history_rows(scores: pd.DataFrame, latest: pd.DataFrame | None, run_id: str) -> pd.DataFrame:
    """The rows of `scores` (a lead_scores frame) to append to the score history: leads not in
    `latest` (each lead's newest history row) or whose version, grade, decile or probability
    (3 dp) changed since."""
    rows = scores.assign(dagster_run_id=run_id)[HISTORY_COLUMNS].copy()
    rows[ID] = rows[ID].astype(str)
    rows["model_version"] = rows["model_version"].astype(str)
    rows["decile"] = rows["decile"].astype(int)
    if latest is None or latest.empty:
        return rows.reset_index(drop=True)
    before = latest[[ID, "model_version", "grade", "decile", "probability"]].copy()
    before[ID], before["model_version"] = before[ID].astype(str), before["model_version"].astype(str)
    before["decile"] = before["decile"].astype(int)
    now = rows.assign(probability_3dp=rows.probability.round(3))
    before = before.assign(probability_3dp=before.probability.round(3)).drop(columns="probability")
    same = now.merge(before, on=[ID, *CHANGE_KEY], how="inner")[ID]
    return rows[~rows[ID].isin(set(same))].reset_index(drop=True)


def as_of_scores(outcomes: pd.DataFrame, history: pd.DataFrame | None) -> pd.DataFrame:
    """Every outcome (`lead_id`, `label`, `outcome_at`, ...) with the latest score its lead had
    strictly before `outcome_at`, and `match`: matched, never scored, or scored only after the
    outcome (score columns empty then)."""
    out = outcomes.copy()
    out[ID] = out[ID].astype(str)
    out["outcome_at"] = pd.to_datetime(out["outcome_at"]).astype("datetime64[ns]")
    score_cols = ["probability", "decile", "grade", "model_version", "scored_at"]
    if history is None or history.empty or out.empty:
        joined = out.assign(**{c: np.nan for c in score_cols})
        joined["scored_at"] = pd.NaT
    else:
        h = history[[ID, *score_cols]].copy()
        h[ID] = h[ID].astype(str)
        h["scored_at"] = pd.to_datetime(h["scored_at"]).astype("datetime64[ns]")
        h = h.dropna(subset=["scored_at"]).sort_values("scored_at", kind="stable")
        known = out["outcome_at"].notna()
        left = out[known].reset_index().sort_values("outcome_at", kind="stable")
        merged = pd.merge_asof(left, h, left_on="outcome_at", right_on="scored_at", by=ID,
                               direction="backward", allow_exact_matches=False)
        joined = pd.concat([merged.set_index("index"), out[~known].assign(**{c: np.nan for c in score_cols})])
        joined = joined.sort_index()
        joined["scored_at"] = pd.to_datetime(joined["scored_at"])
    ever = set(history[ID].astype(str)) if history is not None and not history.empty else set()
    joined["match"] = np.where(joined["scored_at"].notna(), MATCHED,
                               np.where(joined[ID].isin(ever), SCORED_AFTER, NEVER_SCORED))
    return joined.reset_index(drop=True)


def _rates(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    t = frame.groupby(by, dropna=False).agg(outcomes=("label", "size"), converted=("label", "sum"),
                                            mean_probability=("probability", "mean")).reset_index()
    t["converted"] = t["converted"].astype(int)
    t["conversion_rate"] = t.converted / t.outcomes
    t["rate_low_95"], t["rate_high_95"] = wilson_interval(t.converted, t.outcomes)
    return t


def conversion_table(matched: pd.DataFrame, dimension: str) -> pd.DataFrame:
    """Conversion by `dimension` (grade or decile): one row per value over all months
    (`scored_month` = "all"), then one per month of scoring and value."""
    columns = ["scored_month", dimension, "outcomes", "converted", "conversion_rate", "rate_low_95", "rate_high_95",
               "mean_probability"]
    if matched.empty:
        return pd.DataFrame(columns=columns)
    m = matched.assign(scored_month=matched.scored_at.dt.strftime("%Y-%m"))
    if dimension == "decile":
        m["decile"] = m["decile"].astype(int)
    overall = _rates(m, [dimension]).assign(scored_month=ALL_MONTHS)
    monthly = _rates(m, ["scored_month", dimension]).sort_values(["scored_month", dimension], kind="stable")
    return pd.concat([overall, monthly], ignore_index=True)[columns]


def calibration_table(matched: pd.DataFrame, training: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per model version and decile: production mean predicted against observed conversion (with
    its interval), next to the version's test-split figures at training (`training` has
    model_version, decile, leads, rate and, from newer releases, mean_probability)."""
    columns = ["model_version", "decile", "outcomes", "mean_predicted", "observed", "observed_low_95",
               "observed_high_95", "training_test_leads", "training_mean_predicted", "training_observed"]
    if matched.empty:
        return pd.DataFrame(columns=columns)
    m = matched.assign(decile=matched.decile.astype(int), model_version=matched.model_version.astype(str))
    t = _rates(m, ["model_version", "decile"]).rename(columns={
        "mean_probability": "mean_predicted", "conversion_rate": "observed", "rate_low_95": "observed_low_95",
        "rate_high_95": "observed_high_95"})
    if training is not None and not training.empty:
        tr = training.assign(model_version=training.model_version.astype(str), decile=training.decile.astype(int))
        tr = tr.rename(columns={"leads": "training_test_leads", "rate": "training_observed",
                                "mean_probability": "training_mean_predicted"})
        t = t.merge(tr.reindex(columns=["model_version", "decile", "training_test_leads", "training_mean_predicted",
                                        "training_observed"]), on=["model_version", "decile"], how="left")
    return t.reindex(columns=columns).sort_values(["model_version", "decile"], kind="stable").reset_index(drop=True)


@dataclass
class Effectiveness:
    joined: pd.DataFrame  # every outcome, its as-of score and match
    by_grade: pd.DataFrame
    by_decile: pd.DataFrame
    calibration: pd.DataFrame
    headline: dict = field(default_factory=dict)

    @property
    def matched(self) -> pd.DataFrame:
        return self.joined[self.joined.match == MATCHED]

    def long_table(self) -> pd.DataFrame:
        """Grade and decile rows in one table (the warehouse's `score_effectiveness`)."""
        parts = [t.rename(columns={d: "value"}).assign(dimension=d, value=lambda x: x.value.astype(str))
                 for d, t in (("grade", self.by_grade), ("decile", self.by_decile))]
        cols = ["dimension", "value", "scored_month", "outcomes", "converted", "conversion_rate", "rate_low_95",
                "rate_high_95", "mean_probability"]
        frame = pd.concat([p.reindex(columns=cols) for p in parts], ignore_index=True)
        return frame.astype({"outcomes": "int64", "converted": "int64", "conversion_rate": "float64",
                             "rate_low_95": "float64", "rate_high_95": "float64", "mean_probability": "float64",
                             "dimension": "string", "value": "string", "scored_month": "string"})


def summarise(outcomes: pd.DataFrame | None, history: pd.DataFrame | None,
              training: pd.DataFrame | None = None) -> Effectiveness:
    """Outcomes (one per lead: `lead_id`, `label` 1/0, `outcome_at`) against the score history."""
    if outcomes is None:
        outcomes = pd.DataFrame(columns=[ID, "label", "outcome_at"])
    outcomes = outcomes[outcomes["label"].notna()] if len(outcomes) else outcomes
    joined = as_of_scores(outcomes, history)
    joined["label"] = joined["label"].astype(float)
    matched = joined[joined.match == MATCHED]
    by_grade, by_decile = conversion_table(matched, "grade"), conversion_table(matched, "decile")
    counts = joined.match.value_counts()
    head = {"outcomes": len(joined), "matched": int(counts.get(MATCHED, 0)),
            "unmatched_never_scored": int(counts.get(NEVER_SCORED, 0)),
            "unmatched_scored_after_outcome": int(counts.get(SCORED_AFTER, 0))}
    if len(matched):
        top = sorted(matched.grade.astype(str).unique())[0]
        is_top = matched.grade.astype(str) == top
        rest = matched[~is_top]
        head.update({"top_grade": top, "top_grade_outcomes": int(is_top.sum()),
                     "top_grade_conversion": float(matched[is_top].label.mean()),
                     "rest_conversion": float(rest.label.mean()) if len(rest) else float("nan"),
                     "overall_conversion": float(matched.label.mean())})
        rest_rate = head["rest_conversion"]
        head["top_grade_lift"] = head["top_grade_conversion"] / rest_rate if rest_rate and rest_rate > 0 else float("nan")
    return Effectiveness(joined, by_grade, by_decile, calibration_table(matched, training), head)


def headline_text(e: Effectiveness) -> str:
    """One sentence a sales lead reads first."""
    h = e.headline
    if h["outcomes"] == 0:
        return f"{NO_OUTCOMES}: nothing to compare the scores with."
    unmatched = h["unmatched_never_scored"] + h["unmatched_scored_after_outcome"]
    if h["matched"] == 0:
        return (f"{h['outcomes']} CRM outcomes landed, none of them for a lead scored before its outcome "
                f"({h['unmatched_never_scored']} never scored, {h['unmatched_scored_after_outcome']} scored only after).")
    return (f"Of {h['matched']} outcomes matched to the score the lead had before it ({unmatched} unmatched), "
            f"grade {h['top_grade']} converted {h['top_grade_conversion']:.1%} against {h['rest_conversion']:.1%} "
            f"for the other grades (lift {h['top_grade_lift']:.2f}).")


def figure(e: Effectiveness, title: str) -> Figure:
    """Conversion by grade per month of scoring, by decile (all months, 95% intervals), and the
    calibration seen in production next to the one measured at training."""
    fig = Figure(figsize=(15, 4.5), dpi=80)
    ax_grade, ax_decile, ax_cal = fig.subplots(1, 3)
    g = e.by_grade
    if len(g):
        months = [m for m in g.scored_month.unique() if m != ALL_MONTHS]
        grades = sorted(g.grade.astype(str).unique())
        width = 0.8 / max(len(grades), 1)
        x = np.arange(len(months) + 1)
        for i, grade in enumerate(grades):
            rows = g[g.grade.astype(str) == grade].set_index("scored_month").reindex([*months, ALL_MONTHS])
            err = np.vstack([rows.conversion_rate - rows.rate_low_95, rows.rate_high_95 - rows.conversion_rate])
            ax_grade.bar(x + i * width, rows.conversion_rate, width, yerr=np.nan_to_num(err), capsize=2,
                         label=f"grade {grade}")
        ax_grade.set_xticks(x + width * (len(grades) - 1) / 2, [*months, "all months"], rotation=30, fontsize="small")
        ax_grade.legend(fontsize="small")
    ax_grade.set(ylabel="conversion rate", title="Conversion by grade, per month scored")
    d = e.by_decile[e.by_decile.scored_month == ALL_MONTHS] if len(e.by_decile) else e.by_decile
    if len(d):
        err = np.vstack([d.conversion_rate - d.rate_low_95, d.rate_high_95 - d.conversion_rate])
        ax_decile.bar(d.decile.astype(int), d.conversion_rate, yerr=np.nan_to_num(err), capsize=2, color="tab:blue")
        ax_decile.set_xticks(range(1, 11))
    ax_decile.set(xlabel="decile (1 = top 10% of scores)", ylabel="conversion rate",
                  title="Conversion by decile (95% intervals)")
    ax_cal.plot([0, 1], [0, 1], "--", color="grey", label="perfectly calibrated")
    c = e.calibration
    for version, rows in c.groupby("model_version") if len(c) else ():
        ax_cal.plot(rows.mean_predicted, rows.observed, "o-", label=f"production, v{version}")
        trained = rows.dropna(subset=["training_mean_predicted", "training_observed"])
        if len(trained):
            ax_cal.plot(trained.training_mean_predicted, trained.training_observed, "s:",
                        label=f"at training (test split), v{version}")
    top = float(np.nanmax([0.05, *(c.mean_predicted if len(c) else []), *(c.observed if len(c) else [])]))
    ax_cal.set(xlim=(0, min(1, top * 1.1)), ylim=(0, min(1, top * 1.1)), xlabel="mean predicted probability",
               ylabel="observed conversion rate", title="Calibration by decile")
    ax_cal.legend(fontsize="small")
    if not len(e.matched):
        for ax in (ax_grade, ax_decile):
            ax.text(0.5, 0.5, NO_OUTCOMES if not len(e.joined) else "no outcome matched a score",
                    ha="center", va="center", transform=ax.transAxes)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
