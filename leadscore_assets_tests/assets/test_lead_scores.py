"""lead_scores, written batch by batch, is what the one scorer gives every lead at once, ranked."""

import duckdb
import mlflow
import numpy as np
import pandas as pd

from leadscore_assets.assets import scoring as scoring_asset
from leadscore_assets.assets.inputs import StagedTable
from leadscore_assets.assets.common import load_feature_set
from leadscore_assets.assets.tables import FEATURES, LEAD_SCORES, SCORE_HISTORY
from leadscore_assets.lib.features.frame import ID
from leadscore_assets.lib.scoring.registry import current_champion, load_serving_parts
from leadscore_assets.lib.scoring.scorer import Scorer
from leadscore_assets.resources import build_resources
from leadscore_assets.testing.runs import warehouse_file


def champion_of(linkedin_run, config):
    """(data dir, champion version, its serving parts) of the session's linkedin run."""
    _, data_dir = linkedin_run
    uri = f"sqlite:///{data_dir / 'mlflow' / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    name = config.registered_model_name
    version = current_champion(client, name)
    return data_dir, version, load_serving_parts(name, str(version.version), client)


def test_batched_lead_scores_are_the_scorers_answers_for_all_leads_ranked(linkedin_run, linkedin_config):
    data_dir, version, parts = champion_of(linkedin_run, linkedin_config)
    with duckdb.connect(str(warehouse_file(data_dir, "linkedin")), read_only=True) as conn:
        stored = LEAD_SCORES.read(conn, linkedin_config)
        history = SCORE_HISTORY.read(conn, linkedin_config)
        frame = FEATURES.read(conn, linkedin_config)
        fs = load_feature_set(conn, linkedin_config)
        # the asset's reader gives the features table as FEATURES.read does, in batches (of 2,048: one vector)
        features = StagedTable("linkedin", FEATURES.name, warehouse=None)  # read through `conn` by its name
        batches = list(scoring_asset.feature_batches(conn, features, fs.columns, rows=700))
    assert len(batches) > 1
    pd.testing.assert_frame_equal(pd.concat(batches, ignore_index=True), frame[[ID, *fs.columns]].astype({ID: str}))
    scorer = Scorer.of(linkedin_config, fs.columns, parts["model"], float(version.tags["leadscore.threshold"]),
                       parts["cut_points"], parts["background"])
    whole = scorer.score(frame).assign(**{ID: frame[ID].astype(str)})
    expected = whole.sort_values("probability", ascending=False, kind="stable").reset_index(drop=True)
    assert stored[ID].tolist() == expected[ID].tolist()  # ranked, ties in the features' order
    np.testing.assert_array_equal(stored.probability, expected.probability)
    for column in ["decile", "grade", "contact", *scorer.columns[4:]]:
        assert stored[column].fillna("-").tolist() == expected[column].fillna("-").tolist(), column
    assert list(stored.columns) == [ID, "probability", "decile", "grade", "contact", "threshold", *scorer.columns[4:],
                                    "model_name", "model_version", "scored_at"]
    # the first run's history holds every lead's score, as ranked
    assert sorted(history[ID]) == sorted(stored[ID]) and (history.model_version == str(version.version)).all()


def test_a_version_without_serving_parts_is_scored_by_the_same_scorer_with_parts_of_its_own(linkedin_run,
                                                                                              linkedin_config):
    """The fallback for versions registered before serving models: the pipeline, cut points of its
    scores on every lead and the training rows as background give what the served parts give."""
    data_dir, version, parts = champion_of(linkedin_run, linkedin_config)
    with duckdb.connect(str(warehouse_file(data_dir, "linkedin")), read_only=True) as conn:
        fs = load_feature_set(conn, linkedin_config)
        frame = FEATURES.read(conn, linkedin_config)
        features = StagedTable("linkedin", FEATURES.name, warehouse=None)  # read through `conn` by its name
        store = build_resources(data_dir)["mlflow_store"]  # the old version's pipeline is loaded through its client
        old = scoring_asset.champion_scorer(conn, linkedin_config, fs, None, version, 0.4, store, features, None)
        new = scoring_asset.champion_scorer(conn, linkedin_config, fs, parts, version, 0.4, store, features, None)
    np.testing.assert_allclose(old.cut_points, new.cut_points, rtol=0, atol=1e-12)
    pd.testing.assert_frame_equal(old.score(frame), new.score(frame))


def test_many_leads_are_scored_in_worker_processes_to_the_same_rows(linkedin_run, linkedin_config):
    """What lead_scores writes when it spreads the champion's pieces over two processes (from
    PARALLEL_FROM_LEADS leads): the rows it writes in one, in the same order."""
    data_dir, version, parts = champion_of(linkedin_run, linkedin_config)
    with duckdb.connect(str(warehouse_file(data_dir, "linkedin")), read_only=True) as conn:
        fs = load_feature_set(conn, linkedin_config)
        features = StagedTable("linkedin", FEATURES.name, warehouse=None)  # read through `conn` by its name
        batches = list(scoring_asset.feature_batches(conn, features, fs.columns, rows=700))
    scorer = Scorer.of(linkedin_config, fs.columns, parts["model"], float(version.tags["leadscore.threshold"]),
                       parts["cut_points"], parts["background"])
    stamp = {"threshold": 0.4, "model_name": "m", "model_version": "1", "scored_at": pd.Timestamp("2026-01-01")}
    one, two = ([], []), ([], [])
    for workers, (written, out) in zip((1, 2), (one, two)):
        out.extend(scoring_asset.scored_batches(scorer, iter(batches), stamp, 300, written, workers=workers))
    assert len(two[1]) == len(one[1]) > 2
    pd.testing.assert_frame_equal(pd.concat(two[1]), pd.concat(one[1]))
    pd.testing.assert_frame_equal(two[0][0], one[0][0])
