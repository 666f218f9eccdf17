"""One outcome per lead when CRM files disagree: the latest `outcome_at`, deterministic
tie-breaks, and a record of every lead whose outcomes disagreed."""

from __future__ import annotations

import pandas as pd

RESOLUTION_COLUMNS = [
    "lead_id", "chosen_outcome", "chosen_outcome_at", "chosen_file", "chosen_row", "candidates", "overridden", "rule",
]


_TIE_BREAK_NOTES = {
    "outcome_at": "",
    "received_at": " (tie: latest received_at)",
    "file": " (tie: last file name)",
    "row_number": " (tie: last row in file)",
}


OVERRIDDEN_SHOWN = 5


def _compact_candidates(others: pd.DataFrame) -> str:
    """`lost @ 2026-05-01 00:00 (fb_011.csv#1); ...`, newest first, at most OVERRIDDEN_SHOWN of them."""
    shown = [f"{r.outcome} @ {r.outcome_at:%Y-%m-%d %H:%M} ({r.file}#{r.row_number})"
             for r in others.head(OVERRIDDEN_SHOWN).itertuples()]
    if len(others) > OVERRIDDEN_SHOWN:
        shown.append(f"+{len(others) - OVERRIDDEN_SHOWN} more")
    return "; ".join(shown)


def resolve_conflicts(outcomes: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One outcome per lead: the latest `outcome_at`; ties by latest `received_at`, file name, row.

    The same (content_hash, row_number) seen twice (a file parsed again) counts once. A lead is
    listed in the resolutions table when its candidates carry more than one distinct outcome;
    the rule names the tie-break when `outcome_at` alone did not decide.
    """
    order = ["lead_id", "outcome_at", "received_at", "file", "row_number"]
    if outcomes.empty:
        return outcomes.copy().reset_index(drop=True), pd.DataFrame(columns=RESOLUTION_COLUMNS)
    candidates = outcomes.drop_duplicates(subset=["content_hash", "row_number"])
    candidates = candidates.sort_values(order, na_position="first", kind="stable").reset_index(drop=True)
    is_chosen = ~candidates["lead_id"].duplicated(keep="last")
    resolved = candidates[is_chosen].reset_index(drop=True)

    distinct = candidates.groupby("lead_id")["outcome"].transform("nunique")
    resolutions = []
    for lead_id, group in candidates[distinct > 1].groupby("lead_id", sort=True):
        chosen, others = group.iloc[-1], group.iloc[:-1].iloc[::-1]  # others newest first
        runner_up = others.iloc[0]
        decided_by = next((key for key in order[1:] if runner_up[key] != chosen[key]), "row_number")
        rule = "latest outcome_at" + _TIE_BREAK_NOTES[decided_by]
        resolutions.append({
            "lead_id": lead_id,
            "chosen_outcome": chosen["outcome"],
            "chosen_outcome_at": chosen["outcome_at"],
            "chosen_file": chosen["file"],
            "chosen_row": int(chosen["row_number"]),
            "candidates": len(group),
            "overridden": _compact_candidates(others),
            "rule": rule,
        })
    return resolved, pd.DataFrame(resolutions, columns=RESOLUTION_COLUMNS)
