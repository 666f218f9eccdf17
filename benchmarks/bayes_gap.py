"""Champion vs best possible: test ROC-AUC and Brier of each project's champion next to the
Bayes AUC and Brier computed from the demo generator's truth file on the same test rows.

Run after the main job:  python benchmarks/bayes_gap.py [--data-dir data] [--max-gap 0.03]
Exits non-zero when a gap exceeds --max-gap. The pipeline itself never reads the truth files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import duckdb
import mlflow
import pandas as pd
from sklearn.metrics import brier_score_loss, r2_score, roc_auc_score

from leadscore_assets.assets.tables import exists as table_exists
from leadscore_assets.lib.project.config import load_project_config
from leadscore_assets.resources.warehouse import published_file
from leadscore_assets.lib.features.frame import ID, LABEL, SPLIT, FeatureSet
from leadscore_assets.lib.scoring.registry import load_version

DEFS = Path(__file__).resolve().parents[1] / "leadscore_assets" / "defs"


def gap_for(project: Path, data_dir: Path) -> dict | None:
    config = load_project_config(project)
    truth_path = data_dir / "truth" / f"{config.name}.csv"
    if not truth_path.exists():
        return None
    truth = pd.read_csv(truth_path, dtype={0: str})
    truth = truth.rename(columns={truth.columns[0]: ID})
    with duckdb.connect(str(published_file(data_dir / "warehouse", config.name)), read_only=True) as conn:
        if not table_exists(conn, f"{config.name}.features"):
            print(f"{config.name}: not materialized yet, skipped")
            return None
        test = conn.execute(f"SELECT * FROM {config.name}.features WHERE {SPLIT} = 'test'").df()
        fs = FeatureSet.from_frame(conn.execute(f"SELECT * FROM {config.name}.feature_schema").df())
    uri = f"sqlite:///{data_dir / 'mlflow' / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    model = load_version(config.registered_model_name, "champion")  # the sklearn pipeline of the served model
    test["score"] = model.predict_proba(test[fs.columns])[:, 1]
    rows = test.merge(truth, on=ID, how="inner")
    y = rows[LABEL].astype(int)
    out = {
        "project": config.name,
        "test_rows": len(rows),
        "champion_auc": roc_auc_score(y, rows.score),
        "bayes_auc": roc_auc_score(y, rows.true_probability),
        "champion_brier": brier_score_loss(y, rows.score),
        "bayes_brier": brier_score_loss(y, rows.true_probability),
    }
    out["auc_gap"] = out["bayes_auc"] - out["champion_auc"]
    out["brier_ratio"] = out["champion_brier"] / out["bayes_brier"]
    if config.revenue and "true_expected_revenue" in truth:
        out.update(revenue_vs_truth(config, data_dir, truth))
    return out


def revenue_vs_truth(config, data_dir: Path, truth: pd.DataFrame) -> dict:
    """E[revenue | order] of the scores against the generator's true conditional mean, on the
    converting test rows: R^2 of each against the realised revenue (noise bounds both)."""
    with duckdb.connect(str(published_file(data_dir / "warehouse", config.name)), read_only=True) as conn:
        rows = conn.execute(f"""
            SELECT f.{ID}, v.{config.revenue.column} AS revenue, s.expected_order_value
            FROM {config.name}.features f
            JOIN {config.name}.validated_contacts v ON v.{config.id_column} = f.{ID}
            JOIN {config.name}.lead_scores s ON s.{ID} = f.{ID}
            WHERE f.{SPLIT} = 'test' AND f.{LABEL} = 1""").df().merge(truth, on=ID)
    return {"revenue_r2": r2_score(rows.revenue, rows.expected_order_value),
            "bayes_revenue_r2": r2_score(rows.revenue, rows.true_expected_revenue)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--max-gap", type=float, default=0.03)
    args = parser.parse_args()
    results = [r for p in sorted(DEFS.glob("*/defs.yaml")) if (r := gap_for(p, Path(args.data_dir)))]
    if not results:
        print("no project with a truth file: run the main job on demo data first")
        return 1
    table = pd.DataFrame(results)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    worst = table.auc_gap.max()
    print(f"largest AUC gap to Bayes: {worst:.4f} (limit {args.max_gap})")
    return 0 if worst <= args.max_gap else 1


if __name__ == "__main__":
    sys.exit(main())
