"""The links MlflowStore writes open what they name, in MLflow's classic machine-learning view.

MLflow 3.17's UI picks its GenAI or machine-learning view in the browser, from the link's
`workflowType` query, so the slow tests read the pages from a real `mlflow server` on loopback in
Chromium; the store's experiments also carry the `mlflow.experimentKind` tag earlier UIs read.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from matplotlib.figure import Figure

from leadscore_assets.resources.mlflow_store import CLASSIC_ML_VIEW_QUERY, MlflowStore
from leadscore_assets.testing.servers import fetch_artifact, mlflow_server, png_width

CHROMIUM = Path("/usr/bin/chromium")
ML_VIEW = "?workflowType=machine_learning"


@pytest.fixture
def store(tmp_path) -> MlflowStore:
    return MlflowStore(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", artifact_location=str(tmp_path / "artifacts"),
                       ui_url="http://127.0.0.1:5999/")


def _run_with_a_picture(store: MlflowStore, project: str) -> tuple[str, str]:
    """A run of the project's experiment holding `evaluation/roc.png`: (run id, artifact path)."""
    client = store.client
    run_id = client.create_run(store.experiment_id(project)).info.run_id
    fig = Figure(figsize=(4, 3))
    fig.add_subplot().plot([0, 1], [0, 1])
    client.log_figure(run_id, fig, "evaluation/roc.png")
    client.set_terminated(run_id)
    return run_id, "evaluation/roc.png"


def test_experiments_carry_the_classic_ml_view_tag_also_when_created_before(store):
    experiment = store.client.get_experiment(store.experiment_id("linkedin"))
    assert experiment.name == "leadscore/linkedin"
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    # an experiment an earlier version created without the tag (or a user switched to GenAI) gets it back
    older = store.client.create_experiment("leadscore/email_crm", tags={"mlflow.experimentKind": "genai_development"})
    assert store.experiment_id("email_crm") == older
    assert store.client.get_experiment(older).tags["mlflow.experimentKind"] == "custom_model_development"


def test_every_link_opens_the_classic_ml_view_and_names_the_artifact_file(store):
    experiment = store.experiment_id("linkedin")
    assert CLASSIC_ML_VIEW_QUERY == ML_VIEW[1:]
    assert store.experiment_url("linkedin") == f"http://127.0.0.1:5999/#/experiments/{experiment}{ML_VIEW}"
    assert store.run_url("linkedin", "abc") == f"http://127.0.0.1:5999/#/experiments/{experiment}/runs/abc{ML_VIEW}"
    assert store.run_url("linkedin", "abc", "evaluation/shap summary.png") == (
        f"http://127.0.0.1:5999/#/experiments/{experiment}/runs/abc/artifactPath/evaluation/shap%20summary.png{ML_VIEW}")
    assert store.model_version_url("leadscore-linkedin", "3") == \
        f"http://127.0.0.1:5999/#/models/leadscore-linkedin/versions/3{ML_VIEW}"


@pytest.mark.slow
@pytest.mark.browser
def test_links_open_the_run_table_and_the_picture_in_a_real_mlflow_ui(store, tmp_path):
    """In Chromium against a real server: the experiment link lands on the run table of the
    classic view (the same link without the query lands on GenAI's trace overview: the query is
    what decides), and a picture's link previews that PNG, which the server serves as image/png."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium; .ci/run installs it)")
    from playwright.sync_api import sync_playwright

    run_id, path = _run_with_a_picture(store, "linkedin")
    with mlflow_server(store.tracking_uri, tmp_path / "mlflow-server.log") as base:
        status, kind, body = fetch_artifact(base, run_id, path)
        assert (status, kind) == (200, "image/png")
        width = png_width(body)
        assert fetch_artifact(base, run_id, "evaluation/missing.png")[0] == 404  # the check can fail
        linked = MlflowStore(tracking_uri=store.tracking_uri, artifact_location=store.artifact_location, ui_url=base)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"])
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                page.set_default_timeout(60_000)
                page.goto(linked.experiment_url("linkedin"))
                page.wait_for_url(lambda url: "/runs?" in url and "workflowType=machine_learning" in url)
                page.get_by_text("1 matching run").wait_for(state="visible")
                assert page.get_by_text("Token Usage").count() == 0

                page.goto(linked.experiment_url("linkedin").removesuffix(ML_VIEW))  # a fresh browser's default
                page.wait_for_url(lambda url: "workflowType=genai" in url)
                assert "/runs" not in page.url.split("#", 1)[1]

                page.goto(linked.run_url("linkedin", run_id, path))
                preview = page.locator("img[src^='blob:']").first
                preview.wait_for(state="visible")
                page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=preview.element_handle())
                assert preview.evaluate("img => img.naturalWidth") == width
                assert "/runs" in page.url and page.url.endswith(ML_VIEW)
            finally:
                browser.close()
