"""lead_scores: every lead, labelled or not, scored by the current champion."""


from datetime import datetime, timezone

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from leadscore_assets.assets.common import asset_kwargs, key, load_feature_set, read_table, table, write_table
from leadscore_assets.lib.config import ProjectConfig
from leadscore_assets.lib.evaluation import deciles
from leadscore_assets.lib.features import ID
from leadscore_assets.lib.registry import CHAMPION, load_champion
from leadscore_assets.resources.mlflow_store import MlflowStore


def build(config: ProjectConfig) -> list:
    @dg.asset(
        deps=[key(config, "champion_model"), key(config, "features")],
        **asset_kwargs(
            config, "lead_scores", "scoring",
            f"Probability and decile (1 = best 10%) for every lead, from `models:/{config.registered_model_name}@champion`.",
            {"mlflow", "duckdb"},
        ),
    )
    def lead_scores(warehouse: DuckDBResource, mlflow_store: MlflowStore) -> dg.MaterializeResult:
        name = config.registered_model_name
        version = mlflow_store.client.get_model_version_by_alias(name, CHAMPION).version
        pipeline = load_champion(name)
        with warehouse.get_connection() as conn:
            frame = read_table(conn, table(config, "features"))
            fs = load_feature_set(conn, config)
        p = pipeline.predict_proba(frame[fs.columns])[:, 1]
        scores = pd.DataFrame({
            ID: frame[ID].astype(str),
            "probability": p,
            "decile": deciles(p),
            "model_name": name,
            "model_version": str(version),
            "scored_at": datetime.now(timezone.utc).replace(tzinfo=None),
        }).sort_values("probability", ascending=False)
        with warehouse.get_connection() as conn:
            write_table(conn, table(config, "lead_scores"), scores)
        by_decile = scores.groupby("decile").probability.agg(["size", "min", "max"]).round(4).reset_index()
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": len(scores),
                "model_version": str(version),
                "mean_probability": float(p.mean()),
                "by_decile": dg.MetadataValue.md(by_decile.to_markdown(index=False)),
                "top_leads": dg.MetadataValue.md(scores.head(10).to_markdown(index=False)),
            }
        )

    return [lead_scores]
