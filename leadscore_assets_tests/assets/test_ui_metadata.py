"""What the UI shows after a real run: one MLflow parent run per Dagster run, links that open,
pictures, and a call list a salesperson can use (issue: the UI its users open every day)."""

from pathlib import Path

import duckdb
import pandas as pd
import pytest
from mlflow import MlflowClient

from leadscore_assets.testing.runs import warehouse_file

PERSONAL = {"email", "first_name", "last_name", "phone", "picture", "linkedin_url"}


@pytest.fixture(scope="module")
def run(linkedin_run):
    return linkedin_run


@pytest.fixture(scope="module")
def client(run):
    _, data_dir = run
    uri = f"sqlite:///{data_dir.resolve() / 'mlflow' / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def metadata(result, name: str) -> dict:
    [event] = [e for e in result.get_asset_materialization_events()
               if e.asset_key.path == ["linkedin", name]]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def test_each_dagster_run_is_one_mlflow_parent_run_with_its_steps_nested(run, client):
    result, _ = run
    experiment = client.get_experiment_by_name("leadscore/linkedin")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"  # classic ML view
    runs = client.search_runs([experiment.experiment_id], filter_string=f"tags.`dagster.run_id` = '{result.run_id}'")
    [parent] = [r for r in runs if r.data.tags.get("leadscore.role") == "dagster_run"]
    assert parent.data.tags["dagster_run_id"] == result.run_id  # dagster-mlflow's tag
    assert parent.data.tags["dagster.run_url"].endswith(f"/runs/{result.run_id}")
    assert parent.info.status == "FINISHED"  # ended by `published`
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    names = {r.info.run_name for r in children}
    chosen = metadata(result, "evaluation_report")["chosen_model"]
    assert {"dummy", "logistic_regression", f"evaluation: {chosen}", "drift", "data profile"} <= names
    assert not any("challenger" in n for n in names)  # runs are named by candidate and role
    roles = {r.data.tags["leadscore.role"] for r in children}
    assert {"candidate", "evaluation", "drift", "data_profile"} <= roles
    [lightgbm] = [r for r in children if r.info.run_name == "lightgbm"]
    trials = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == lightgbm.info.run_id]
    assert len(trials) == 3 and all(r.info.run_name.startswith("lightgbm trial ") for r in trials), \
        [(r.info.run_name, r.data.tags.get("mlflow.parentRunId")) for r in runs]


def test_links_open_mlflow_and_evidently_reports(run, client):
    result, _ = run
    champion = metadata(result, "champion_model")
    assert champion["mlflow_model_version"].startswith("http://127.0.0.1:5000/#/models/leadscore-linkedin/versions/")
    assert "/#/experiments/" in champion["mlflow_run"]
    for link in (champion["mlflow_model_version"], champion["mlflow_run"], champion["mlflow_experiment"]):
        assert link.endswith("?workflowType=machine_learning"), link  # MLflow's classic ML view
    drift = metadata(result, "drift_reports")
    run_id = drift["mlflow_run"].rsplit("/runs/", 1)[1].removesuffix("?workflowType=machine_learning")
    logged = {a.path for a in client.list_artifacts(run_id, "drift")}
    assert drift["features_report"].endswith("/artifactPath/drift/feature_drift.html?workflowType=machine_learning")
    assert "drift/feature_drift.html" in logged and "drift/score_drift.html" in logged
    evaluation = metadata(result, "evaluation_report")
    eval_run = evaluation["mlflow_run"].rsplit("/runs/", 1)[1].removesuffix("?workflowType=machine_learning")
    assert "evaluation/model_card.md" in {a.path for a in client.list_artifacts(eval_run, "evaluation")}
    assert evaluation["test_roc_auc"] == round(evaluation["test_roc_auc"], 4)  # figures rounded


def test_data_profile_has_pictures_in_mlflow(run, client):
    result, _ = run
    profile = metadata(result, "data_profile")
    assert "data:image/png;base64," in profile["pictures"]
    run_id = profile["pictures_in_mlflow"].split("/runs/", 1)[1].split("/", 1)[0]
    pictures = {a.path for a in client.list_artifacts(run_id, "profile")}
    assert {"profile/numeric_distributions.png", "profile/label_rate_by_category.png"} <= pictures


def test_call_list_has_context_and_every_reason_and_is_published_as_files(run):
    result, data_dir = run
    scores = metadata(result, "lead_scores")
    assert list(scores)[0] == "top_25_leads"  # first on the asset page, shown as a table
    top = scores["top_25_leads"]
    header = [c.name for c in top.schema.columns]
    for column in ("company_name", "job_title", "grade", "probability", "reason_1_up", "reason_3_down"):
        assert column in header, column
    assert not any(p in header for p in PERSONAL)
    assert len(top.records) == 25
    probabilities = [r.data["probability"] for r in top.records]
    assert probabilities == sorted(probabilities, reverse=True)
    for kind in ("csv", "parquet"):  # every path on the page exists once the run published
        assert Path(scores[f"call_list_{kind}"]).exists(), scores[f"call_list_{kind}"]
    calls = pd.read_csv(data_dir / "reports" / "linkedin" / "call_list" / "call_list.csv")
    parquet = pd.read_parquet(data_dir / "reports" / "linkedin" / "call_list" / "call_list.parquet")
    with duckdb.connect(str(warehouse_file(data_dir, "linkedin")), read_only=True) as conn:
        n_scores = conn.execute("SELECT count(*) FROM linkedin.lead_scores").fetchall()[0][0]
    assert len(calls) == len(parquet) == n_scores
    assert calls["rank"].tolist() == list(range(1, n_scores + 1))
    assert calls.probability.is_monotonic_decreasing
    assert not PERSONAL & set(calls.columns)
    assert calls.company_name.notna().mean() > 0.5
    assert not list((data_dir / "reports" / "linkedin" / "call_list").glob(f"{result.run_id}.*"))  # swapped in


HEADLINE = ["chosen_model", "test_roc_auc", "test_pr_auc", "test_top20_capture", "threshold"]
PLOTS = ("roc", "precision_recall", "calibration", "lift", "confusion_matrix", "feature_importance", "reliability",
         "shap_summary")


def _plot_links(evaluation: dict) -> dict[str, tuple[str, str]]:
    """Each plot link on evaluation_report as (run id, artifact path), read back from its URL."""
    out = {}
    for name in PLOTS:
        url = evaluation[f"{name}_plot"]
        route = url.split("/#/", 1)[1].removesuffix("?workflowType=machine_learning")
        run_id, path = route.split("/runs/", 1)[1].split("/artifactPath/", 1)
        out[name] = run_id, path
    return out


def test_evaluation_report_leads_with_its_headline_and_links_each_plot_file(run, client):
    result, _ = run
    evaluation = metadata(result, "evaluation_report")
    keys = list(evaluation)
    assert keys[:5] == HEADLINE, keys
    assert isinstance(evaluation["chosen_model"], str) and 0.5 < evaluation["test_roc_auc"] <= 1
    # all plots and the model card one "Show Markdown" click away, near the top, not at the bottom
    assert keys.index("plots") < 8 and keys.index("model_card") < 9, keys
    card = evaluation["model_card"]
    assert card.index("## At a glance") < card.index("## Data")  # the card opens with what it is for
    assert evaluation["plots"].count("data:image/png;base64,") == len(PLOTS)
    assert "plots_in_mlflow" not in evaluation  # the folder link ("Select a file to preview") is gone
    assert not any(isinstance(v, str) and v.endswith("/artifactPath/evaluation") for v in evaluation.values())
    # each plot's link names a PNG file the evaluation run logged, and the model card's its file
    [eval_run] = {run_id for run_id, _ in _plot_links(evaluation).values()}
    logged = {a.path: a for a in client.list_artifacts(eval_run, "evaluation")}
    for name, (_, path) in _plot_links(evaluation).items():
        assert path == f"evaluation/{name}.png" and path in logged and logged[path].file_size > 1000, (name, path)
    assert evaluation["model_card_in_mlflow"].split("/artifactPath/", 1)[1].startswith("evaluation/model_card.md")
    assert Path(evaluation["report_dir"]).is_dir()
    lift = evaluation["lift_by_decile"]  # a table on the page, not markdown behind a click
    assert len(lift.records) == 10 and "decile" in [c.name for c in lift.schema.columns]


@pytest.mark.slow
def test_every_plot_link_is_served_as_a_png_by_a_real_mlflow_server(run, tmp_path):
    """The run's own MLflow store behind a real `mlflow server` on loopback: every picture the
    evaluation_report page links to comes back as image/png (what the artifact view previews)."""
    from leadscore_assets.testing.servers import fetch_artifact, mlflow_server, png_width

    result, data_dir = run
    links = _plot_links(metadata(result, "evaluation_report"))
    with mlflow_server(f"sqlite:///{data_dir.resolve() / 'mlflow' / 'mlflow.db'}", tmp_path / "mlflow.log") as base:
        for name, (run_id, path) in links.items():
            status, kind, body = fetch_artifact(base, run_id, path)
            assert (status, kind) == (200, "image/png"), (name, status, kind)
            assert png_width(body) > 100, name
