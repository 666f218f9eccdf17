"""Does CRM feedback teach? Outcome files with a known truth, through the real sensor and runs.

    python benchmarks/feedback_loop.py [--files 3] [--rows 3000] [--outcomes 250]
                                       [--scenarios shifted noisy faithful]

For each scenario of `leadscore_assets.demo_data.feedback` (`shifted`: two weak segments now
convert far more often; `noisy`: 85% of outcomes are coin flips; `faithful`: outcomes from the
export's own truth) a fresh LinkedIn project on a real Dagster instance (demo export, a first run
that makes the champion; dummy, logistic regression and spline logistic, no Optuna search) is
fed outcome files 1..N: each is dropped into the feedback folder, the project's sensor is ticked
as the daemon does and the run it requests is executed in-process. Per file it prints champion
and challenger on the same held-out rows (ROC-AUC and 95% interval), the gain with its paired
bootstrap intervals (all held-out rows / the newest feedback's held-out outcomes), the decision
and its reason, the feedback rows trained on and held out, and the ROC-AUC of the model in use
after the decision against the scenario's truth on every open lead of the export (`truth_auc`:
the truth's own, the best possible), with whether it came closer to it than after the previous
file, and the challenger's (what retraining offered, promoted or not). The pipeline never reads
the truth.

Exits non-zero when `shifted` is not promoted within its first two files or `noisy` is ever
promoted.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
import warnings
from pathlib import Path

import pandas as pd

from leadscore_assets.lib.project.config import load_project_config
from leadscore_assets.testing.feedback_loop import ScenarioLoop, scenario_config

DEFS = Path(__file__).resolve().parents[1] / "leadscore_assets" / "defs"


def run_scenario(scenario: str, files: int, rows: int, outcomes: int, export_seed: int, seed: int,
                 root: Path) -> pd.DataFrame:
    config = scenario_config(load_project_config(DEFS / "linkedin" / "defs.yaml"))
    out = []
    started = time.perf_counter()
    with ScenarioLoop.started(config, scenario, root=root / scenario, rows=rows, export_seed=export_seed,
                              outcomes=outcomes, seed=seed) as loop:
        before = loop.open_lead_auc()
        print(f"\n== {scenario}: {rows} demo contacts, {int(before['leads'])} open leads, champion v1 made in "
              f"{time.perf_counter() - started:.0f} s; its ROC-AUC against the {scenario} truth on the open leads "
              f"{before['model']:.4f} (truth's own {before['truth']:.4f})", flush=True)
        previous = before["model"]
        for batch in range(1, files + 1):
            d = loop.land(batch)
            auc = loop.open_lead_auc()
            challenger_auc = loop.open_lead_auc(d.challenger_version)["model"]
            out.append({
                "scenario": scenario, "file": batch,
                "champion": f"v{d.champion_version} {d.champion_metric:.4f} ({d.champion_roc_auc_95ci})",
                "challenger": f"v{d.challenger_version} {d.challenger_metric:.4f} ({d.challenger_roc_auc_95ci})",
                "gain [all held-out]": f"{d.metric_gain:+.4f} [{d.metric_gain_low:+.4f}, {d.metric_gain_high:+.4f}]",
                "gain [newest feedback]": (f"{d.feedback_gain:+.4f} [{d.feedback_gain_low:+.4f}, "
                                           f"{d.feedback_gain_high:+.4f}]"),
                "decision": d.decision,
                "trained_on/held_out": f"{d.feedback_rows_trained_on}/{d.feedback_rows_held_out}",
                "in_use": f"v{loop.alias('champion')}",
                "in_use_auc": round(auc["model"], 4), "truth_auc": round(auc["truth"], 4),
                "challenger_auc": round(challenger_auc, 4),
                "closer": "yes" if auc["model"] > previous + 1e-9 else "no",
                "run_s": round(d.seconds, 1), "reason": d.reason,
            })
            previous = auc["model"]
            row = out[-1]
            print(f"file {batch}: {row['decision']} ({row['run_s']} s run); model in use {row['in_use']} "
                  f"ROC-AUC vs truth {row['in_use_auc']:.4f} / {row['truth_auc']:.4f}, closer: {row['closer']}",
                  flush=True)
    return pd.DataFrame(out)


def verdicts(table: pd.DataFrame) -> list[str]:
    """What must hold: shifted promoted within its first two files, noisy never promoted."""
    failures = []
    shifted = table[table.scenario == "shifted"]
    if len(shifted) and not (shifted[shifted.file <= 2].decision == "promoted").any():
        failures.append("shifted: feedback from a changed world was not promoted within the first two files")
    noisy = table[table.scenario == "noisy"]
    if (noisy.decision == "promoted").any():
        failures.append(f"noisy: promoted on file(s) {list(noisy.file[noisy.decision == 'promoted'])}")
    return failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=3)
    parser.add_argument("--rows", type=int, default=3000, help="demo contacts (about a quarter are open leads)")
    parser.add_argument("--outcomes", type=int, default=250, help="outcomes per file")
    parser.add_argument("--scenarios", nargs="+", default=["shifted", "noisy", "faithful"],
                        choices=["shifted", "noisy", "faithful"])
    parser.add_argument("--export-seed", type=int, default=23)
    parser.add_argument("--seed", type=int, default=5, help="feedback files' seed")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # the in-process runs' event log; the table says what happened
    warnings.filterwarnings("ignore")

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="leadscore-feedback-loop-") as root:
        table = pd.concat([run_scenario(s, args.files, args.rows, args.outcomes, args.export_seed, args.seed, Path(root))
                           for s in args.scenarios], ignore_index=True)
    print(f"\n{len(table)} files in {time.perf_counter() - started:.0f} s\n")
    with pd.option_context("display.width", 250, "display.max_colwidth", 60):
        print(table.drop(columns=["reason"]).to_string(index=False))
    print()
    for row in table.itertuples():
        print(f"{row.scenario} file {row.file}: {row.reason}")
    failures = verdicts(table)
    print()
    for scenario in table.scenario.unique():
        part = table[table.scenario == scenario]
        print(f"{scenario}: decisions {' '.join(part.decision)}; model in use came closer to the truth on "
              f"file(s) {list(part.file[part.closer == 'yes']) or 'none'}")
    print("\n".join(["", *failures]) if failures else "\nOK: shifted promoted within two files, noisy never promoted")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
