"""lead_scores: every lead, labelled or not, scored by the current champion, with reasons.

Each lead gets its probability, decile, grade (A-D around the champion's threshold), a
contact / do-not-contact flag and its top three reasons raising and lowering the score, in
words a salesperson reads ("Job title is ceo (raises the score)"), from lib/scoring's `Scorer`,
the one the served model (HTTP, daily scoring, Spark) answers with.

Memory does not grow with the leads' reasons: the features are read from DuckDB and scored and
explained batch by batch (`models.explain_max_rows` leads at a time), each batch appended to the
table, which DuckDB then ranks. Nor with the leads: the call list is joined and ranked in DuckDB and
written as CSV and Parquet a batch at a time (`stream_call_list`), the score history is appended in
SQL and the page's figures are SQL aggregates and the list's top rows.
"""

from datetime import datetime, timezone
from typing import Iterator

import dagster as dg
import numpy as np
import pandas as pd

from leadscore_assets.assets.common import (
    column_schema,
    feature_set_of,
    select_in_batches,
    table_value,
    warehouse_connection,
)
from leadscore_assets.assets.inputs import Reads, StagedTable
from leadscore_assets.assets.specs import asset_kwargs, step_tags
from leadscore_assets.assets.tables import (
    FEATURES,
    FEATURE_SCHEMA,
    LEAD_SCORES,
    MODEL_DECISIONS,
    REVENUE_MODEL,
    SCORE_HISTORY,
    VALIDATED_CONTACTS,
)
from leadscore_assets.assets.effectiveness import record_score_history
from leadscore_assets.lib.project.config import ProjectConfig
from leadscore_assets.lib.features.frame import ID, SPLIT
from leadscore_assets.lib.scoring.registry import current_champion, load_serving_parts, load_version
from leadscore_assets.lib.scoring.workers import scoring_workers
from leadscore_assets.lib.scoring.scorer import BATCH_ROWS, REVENUE_COLUMNS, Scorer, decile_cut_points
from leadscore_assets.lib.scoring.call_list import (
    NULLABLE_INTEGERS,
    call_list_query,
    context_dtypes,
    top_of_call_list,
    with_rank,
)
from leadscore_assets.resources.call_list_files import published_call_list, write_call_list_files
from leadscore_assets.resources.mlflow_store import MlflowStore
from leadscore_assets.resources.storage import LeadscoreStorage
from leadscore_assets.resources.warehouse import Warehouse

# DuckDB's own memory while lead_scores writes and ranks every lead with its reasons (by default 80%
# of RAM, which it keeps using as leads grow); beyond it DuckDB spills to a file beside the warehouse
DUCKDB_MEMORY = "1GB"  # 512 MB failed the final ORDER BY of 4.7M scored leads (two sort threads pin more); 1 GB: 19 s, 1.1 GiB
CALL_LIST_ROWS = 32_768  # the call list is written this many leads at a time (16 DuckDB vectors)


def build(config: ProjectConfig) -> list:
    reads = Reads(config, after=("champion_model",), model_decisions=MODEL_DECISIONS, features=FEATURES,
                  feature_schema=FEATURE_SCHEMA, validated_contacts=VALIDATED_CONTACTS,
                  revenue_model=REVENUE_MODEL if config.revenue else None)
    scores_spec = dg.AssetSpec(
        deps=reads.deps,
        **asset_kwargs(
            config, "lead_scores", "scoring",
            f"Probability, decile, grade A-D, contact flag and top reasons for every lead, from "
            f"`models:/{config.registered_model_name}@champion`.",
            {"mlflow", "shap", "duckdb"},
        ),
    )

    # the op keeps the name it had as a single asset (step keys unchanged); score_history is
    # appended in the same step, so a run that scores always records what it scored
    @dg.multi_asset(op_tags=step_tags(config), name=f"{config.name}__lead_scores", ins=reads.ins,
                    specs=[scores_spec, SCORE_HISTORY.spec(config, "scoring", {"duckdb"}, [LEAD_SCORES.key(config)])])
    def lead_scores(context: dg.AssetExecutionContext, warehouse: Warehouse, mlflow_store: MlflowStore,
                    storage: LeadscoreStorage, model_decisions: StagedTable, features: StagedTable,
                    feature_schema: StagedTable, validated_contacts: StagedTable, **revenue: StagedTable):
        name = config.registered_model_name
        version = scoring_version(mlflow_store, name, decision_of_run(model_decisions, context.run_id))
        if version is None:
            raise dg.Failure(description=(
                f"no champion for {name}: no model has been promoted yet (see {MODEL_DECISIONS.of(config)} "
                "for why the challenger was rejected); scores are left as they were"))
        threshold = float(version.tags.get("leadscore.threshold", 0.5))
        served = load_serving_parts(name, str(version.version), mlflow_store.client)  # None: a version from before serving models
        with warehouse_connection(warehouse, config) as conn:
            conn.execute(f"SET memory_limit = '{DUCKDB_MEMORY}'")  # the connection's own instance: closed below
            fs = feature_set_of(feature_schema)
            scorer = champion_scorer(conn, config, fs, served, version, threshold, mlflow_store, features,
                                     revenue.get("revenue_model"))
            stamp = {"threshold": threshold, "model_name": name, "model_version": str(version.version),
                     "scored_at": datetime.now(timezone.utc).replace(tzinfo=None)}
            written = []  # the first batch as written: the asset page's column schema
            rows = config.models.explain_max_rows
            leads = conn.execute(f"SELECT count(*) FROM {features.sql}").fetchall()[0][0]
            batches = scored_batches(scorer, feature_batches(conn, features, fs.columns, rows), stamp, rows, written,
                                     workers=scoring_workers(leads))
            rows = LEAD_SCORES.write_batches(conn, config, batches, order_by="probability DESC")
            history = record_score_history(conn, config, LEAD_SCORES.of(config), context.run_id)
            files, top = stream_call_list(conn, config, validated_contacts,
                                          storage.report_dir(config.name, "call_list"), context.run_id)
            page = scores_page(conn, config, top)
        yield dg.MaterializeResult(asset_key=LEAD_SCORES.key(config), metadata={
            # first on the page: who to call, as a table
            f"top_{config.call_list.top}_leads": page.pop("top"), "dagster/row_count": rows,
            "dagster/column_schema": column_schema(written[0]), "model_version": str(version.version),
            "threshold": round(threshold, 4), **page,
            # the whole ranked list for the sales team, where `published` puts this run's list
            # (this run's own copies are renamed there, so their names would not exist after it)
            **{f"call_list_{kind}": dg.MetadataValue.path(str(path)) for kind, path in published_call_list(files).items()},
        })
        yield dg.MaterializeResult(asset_key=SCORE_HISTORY.key(config), metadata={
            "dagster/row_count": history["rows"], "appended": history["appended"], "pruned": history["pruned"]})

    return [lead_scores]


def decision_of_run(model_decisions: StagedTable, run_id: str) -> tuple[str, str] | None:
    """(decision, challenger version) recorded by this run's champion_model, if it ran."""
    if not model_decisions.exists():
        return None
    rows = model_decisions.read("decision, challenger_version", "WHERE dagster_run_id = ?", [run_id])
    return (str(rows.decision.iloc[-1]), str(rows.challenger_version.iloc[-1])) if len(rows) else None


def scoring_version(mlflow_store: MlflowStore, name: str, decided: tuple[str, str] | None):
    """The version to score with: when this run judged a challenger, the one `published` will make
    champion (the challenger if promoted); else the current champion (None: there is none)."""
    if decided and decided[0] == "promoted":
        return mlflow_store.client.get_model_version(name, decided[1])
    return current_champion(mlflow_store.client, name)


def stream_call_list(conn, config: ProjectConfig, validated_contacts: StagedTable, directory,
                     run_id: str) -> tuple[dict, pd.DataFrame]:
    """The call list built in DuckDB (lib/scoring/call_list.py's `call_list_query`) and written as
    CSV and Parquet a batch at a time into `directory` (resources/call_list_files.py); returns the
    files and its top rows as the page shows them."""
    scores, validated = LEAD_SCORES.of(config), validated_contacts.sql
    types = {r[0]: r[1] for r in conn.execute(f"DESCRIBE {validated}").fetchall()}
    context = context_columns(conn, config, validated_contacts)[1:]
    have = [r[0] for r in conn.execute(f"DESCRIBE {scores}").fetchall()]
    typed = [c for c in context if types[c] in NULLABLE_INTEGERS or types[c] == "BOOLEAN"]
    counts = conn.execute("SELECT " + ", ".join(
        [f"(SELECT count(*) FROM {scores} WHERE {quoted([ID], None)} NOT IN "
         f"(SELECT CAST({quoted([config.id_column], None)} AS VARCHAR) FROM {validated} WHERE "
         f"{quoted([config.id_column], None)} IS NOT NULL))",
         *(f"(SELECT count(*) FROM {validated} WHERE {quoted([c], None)} IS NULL)" for c in typed)])).fetchall()[0]
    doubles, dtypes = context_dtypes({c: types[c] for c in typed}, {c for c, n in zip(typed, counts[1:]) if n},
                                     bool(counts[0]))
    query = call_list_query(scores, validated, config.id_column, context, have, doubles)
    stamps = [c for c in context if types[c].startswith("TIMESTAMP")]
    timestamps = pd.DataFrame({c: conn.execute(f"SELECT {quoted([c], None)} FROM ({query}) ORDER BY "
                                               f"{finest(quoted([c], None))} LIMIT 1").df()[c] for c in stamps}) \
        if stamps else None
    batches = with_rank(b.astype(dtypes) if dtypes else b
                        for b in select_in_batches(conn, query, CALL_LIST_ROWS))
    files, top = write_call_list_files(batches, directory, run_id, config.call_list.top, timestamps)
    return files, top_of_call_list(top, config.call_list.top)


def finest(column: str) -> str:
    """SQL ordering a timestamp column's values finest precision first (nanoseconds ... whole days)."""
    ns = f"epoch_ns({column})"
    return (f"CASE WHEN {ns} % 1000 <> 0 THEN 0 WHEN {ns} % 1000000 <> 0 THEN 1 WHEN {ns} % 1000000000 <> 0 "
            f"THEN 2 WHEN {column} <> date_trunc('day', {column}) THEN 3 WHEN {column} IS NOT NULL THEN 4 ELSE 5 END")


def scores_page(conn, config: ProjectConfig, top: pd.DataFrame) -> dict:
    """The lead_scores page's figures, computed in DuckDB: contacted, mean probability, expected
    revenue, leads and probability range by grade; and the top leads as a table."""
    scores = LEAD_SCORES.of(config)
    revenue = "sum(expected_revenue) FILTER (WHERE NOT isnan(expected_revenue))" if config.revenue else "NULL"
    contacted, mean, revenue = conn.execute(
        f"SELECT count(*) FILTER (WHERE contact), avg(probability), {revenue} FROM {scores}").fetchall()[0]
    by_grade = conn.execute(f"SELECT grade, count(*) AS size, min(probability) AS min, max(probability) AS max "
                            f"FROM {scores} WHERE grade IS NOT NULL GROUP BY grade ORDER BY grade").df().round(4)
    return {"top": table_value(top), "contacted": int(contacted),
            "mean_probability": round(float(mean if mean is not None else np.nan), 4),
            **({"expected_revenue_total": round(float(revenue or 0.0), 2)} if config.revenue else {}),
            "by_grade": dg.MetadataValue.md(by_grade.to_markdown(index=False))}


def champion_scorer(conn, config: ProjectConfig, fs, served: dict | None, version, threshold: float,
                    mlflow_store: MlflowStore, features: StagedTable, revenue_model: StagedTable | None) -> Scorer:
    """The one scorer (lib/scoring/scorer.py) over the scoring version's parts: those its served model
    carries, or, for a version registered before serving models, its pipeline with cut points of
    its own scores on every lead and the training rows as the explainer's background."""
    revenue = served.get("revenue_model") if served and config.revenue else None
    if config.revenue and revenue is None:  # the revenue stage the version carries (what it serves), else this run's
        uri = conn.execute(f"SELECT model_uri FROM {revenue_model.sql}").fetchall()[0][0]
        revenue = mlflow_store.load_model(uri)
    if served:
        return Scorer.of(config, fs.columns, served["model"], threshold, served["cut_points"], served["background"],
                         revenue)
    model = load_version(config.registered_model_name, str(version.version), mlflow_store.client)
    p = [model.predict_proba(batch[fs.columns])[:, 1] for batch in feature_batches(conn, features, fs.columns) if len(batch)]
    background = conn.execute(f"SELECT {quoted(fs.columns, None)} FROM {features.sql} "
                              f"WHERE {SPLIT} = 'train'").df()
    return Scorer.of(config, fs.columns, model, threshold, decile_cut_points(np.concatenate(p) if p else []),
                     background, revenue)


def feature_batches(conn, features: StagedTable, columns: list[str], rows: int = BATCH_ROWS) -> Iterator[pd.DataFrame]:
    """The features table (id and `columns`) in batches of at most `rows` (the scorer takes each
    batch whole), in table order; at least one (maybe empty) frame."""
    for batch in select_in_batches(conn, f"SELECT {quoted([ID, *columns], None)} FROM {features.sql}", rows):
        # as FEATURES.read gives them: DuckDB's missing text is None, the encoders' missing value
        yield batch.assign(**{ID: batch[ID].astype(str)})


def scored_batches(scorer: Scorer, batches, stamp: dict, rows: int, written: list, workers: int = 1
                   ) -> Iterator[pd.DataFrame]:
    """Each batch's `lead_scores` rows: id, the scorer's answers (explained `rows` leads at a time,
    in `workers` processes), the threshold and which model scored them when; the first one is kept
    in `written`."""
    for scored in scorer.score_batches(batches, rows=rows, workers=workers):
        scored.insert(scored.columns.get_loc("contact") + 1, "threshold", stamp["threshold"])
        out = scored.assign(**{k: v for k, v in stamp.items() if k != "threshold"})
        if not written:
            written.append(out.iloc[:0])
        yield out


def context_columns(conn, config: ProjectConfig, validated_contacts: StagedTable) -> list[str]:
    """The lead id and the call list's context columns the validated table holds."""
    have = {r[0] for r in conn.execute(f"DESCRIBE {validated_contacts.sql}").fetchall()}
    return [config.id_column, *(c for c in config.call_list.columns if c in have and c != config.id_column)]


def quoted(columns, scorer: Scorer | None) -> str:
    """SQL column list; with a scorer, only the revenue columns it writes."""
    if scorer is not None:
        columns = [c for c in columns if c not in REVENUE_COLUMNS or scorer.revenue_model is not None]
    return ", ".join('"' + str(c).replace('"', '""') + '"' for c in columns)
