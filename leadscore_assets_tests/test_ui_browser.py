"""The Dagster UI in a real browser (Debian's chromium driven by Playwright): a materialised
project shows its lineage as one group, its champion's decision, and links out to MLflow.

One small LinkedIn project (1,500 demo contacts, dummy + logistic regression) is materialised
into a temporary Dagster instance and data directory; the real `dagster-webserver` then serves
the code location from workspace.yaml on a free loopback port with that instance, and the test
reads the pages as a user would. Screenshots of the lineage, the champion's and the evaluation
report's asset pages go to `$LEADSCORE_SCREENSHOTS` (else the test's tmp_path) for a person to
look at.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg
import pytest
from playwright.sync_api import expect, sync_playwright

from leadscore_assets.components.lead_scoring_project import project_definitions
from leadscore_assets.demo_data import linkedin
from leadscore_assets.resources import build_resources
from leadscore_assets.testing.runs import with_candidates
from leadscore_assets.testing.servers import free_port, graphql, stop_process_group

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
MLFLOW_UI = "http://127.0.0.1:5999"  # never started: the links only have to point there
PROJECT, LOCATION = "linkedin", "leadscore"
TIMEOUT_MS = 60_000


def _materialise(home: Path, data: Path, linkedin_config) -> None:
    """The project's job in-process on the instance the webserver will read (its metadata built
    with the same MLflow UI address the webserver is given)."""
    linkedin.write(data, rows=1500, seed=21)
    config = with_candidates(linkedin_config, ["dummy", "logistic_regression"])
    defs = dg.Definitions.merge(project_definitions(config),
                                dg.Definitions(resources=build_resources(data), executor=dg.in_process_executor))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        result = defs.resolve_job_def(f"{PROJECT}_pipeline").execute_in_process(instance=instance, raise_on_error=False)
    assert result.success, [str(e.event_specific_data)[:800] for e in result.all_events if e.is_failure]


@pytest.fixture(scope="module")
def ui(tmp_path_factory, linkedin_config):
    """Base URL of a webserver on a materialised instance; killed afterwards whatever happens."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium; .ci/run installs it)")
    base = tmp_path_factory.mktemp("ui")
    home, data = base / "home", base / "data"
    home.mkdir()
    (home / "dagster.yaml").write_text((ROOT / "deploy" / "local" / "dagster.yaml").read_text())
    env = {**os.environ, "DAGSTER_HOME": str(home), "LEADSCORE_DATA_DIR": str(data),
           "LEADSCORE_MLFLOW_UI_URL": MLFLOW_UI}
    mp = pytest.MonkeyPatch()
    mp.setenv("LEADSCORE_MLFLOW_UI_URL", MLFLOW_UI)
    try:
        _materialise(home, data, linkedin_config)
    finally:
        mp.undo()
    port = free_port()
    log = base / "webserver.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([str(BIN / "dagster-webserver"), "-w", str(ROOT / "workspace.yaml"), "-h", "127.0.0.1",
                                 "-p", str(port)], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.time() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5):
                    pass
                entries = graphql(port, "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }")
                if any(e["loadStatus"] == "LOADED" for e in entries["workspaceOrError"]["locationEntries"]):
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                pytest.fail(f"dagster-webserver did not serve the code location within 90 s:\n{log.read_text()[-3000:]}")
            time.sleep(1)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process_group(proc, timeout=30)  # the webserver and the code server it started


@pytest.fixture(scope="module")
def page(ui):
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1600, "height": 1000})
            context.set_default_timeout(TIMEOUT_MS)
            yield context.new_page()
        finally:
            browser.close()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    d = Path(os.environ["LEADSCORE_SCREENSHOTS"]) if os.getenv("LEADSCORE_SCREENSHOTS") else \
        tmp_path_factory.mktemp("screenshots")
    d.mkdir(parents=True, exist_ok=True)
    return d


def _open(page, url: str, ready) -> None:
    """Go to a page of the React app, wait for what shows it has rendered, and close the
    community dialog the UI shows on a new instance (it would cover the screenshots)."""
    page.goto(url)
    ready().first.wait_for(state="visible", timeout=TIMEOUT_MS)
    skip = page.get_by_role("button", name="Skip")
    try:
        skip.wait_for(state="visible", timeout=3_000)
        skip.click()
        skip.wait_for(state="hidden", timeout=10_000)
    except Exception:  # no dialog this time
        pass


def _screenshot(page, path: Path, height: int | None = None) -> Path:
    if height:  # the app scrolls inside its own panes: a taller window shows the whole page
        page.set_viewport_size({"width": 1600, "height": height})
        page.wait_for_timeout(1_000)
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size({"width": 1600, "height": 1000})
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000, f"{path} is not a real screenshot ({len(data)} bytes)"
    return path


def test_lineage_shows_the_project_as_its_own_group(ui, page, screenshots):
    _open(page, f"{ui}/asset-groups", lambda: page.get_by_text("Global asset lineage", exact=True))
    # every project is one group, named like the project, in the lineage and its group tree
    page.get_by_text(PROJECT, exact=True).first.wait_for(state="visible")
    for project in ("linkedin", "email_crm", "saas_crm", "web_sessions", "byo_example"):
        assert page.get_by_text(project, exact=True).count() >= 1, f"no group named {project} in the lineage"
    expect(page.get_by_text("fetching statuses")).to_have_count(0, timeout=TIMEOUT_MS)  # materialised counts shown
    _screenshot(page, screenshots / "lineage_all_projects.png")

    # the project's own lineage: its assets by name (the list tab), then the graph (a taller
    # window, so that more of it fits at a readable zoom)
    page.set_viewport_size({"width": 1600, "height": 4000})  # the list renders the rows in view only
    _open(page, f"{ui}/locations/{LOCATION}/asset-groups/{PROJECT}/list",
          lambda: page.get_by_text("Asset Group in", exact=False))
    for asset in ("raw_contacts", "validated_contacts", "champion_model", "lead_scores", "published"):
        page.get_by_text(f"{PROJECT} / {asset}", exact=True).first.wait_for(state="visible")
    page.set_viewport_size({"width": 1600, "height": 1400})
    _open(page, f"{ui}/locations/{LOCATION}/asset-groups/{PROJECT}/lineage",
          lambda: page.get_by_text("champion_model", exact=True))
    _screenshot(page, screenshots / f"lineage_{PROJECT}.png", height=1400)


def test_champion_page_shows_the_decision_and_links_to_mlflow(ui, page, screenshots):
    _open(page, f"{ui}/assets/{PROJECT}/champion_model", lambda: page.get_by_text("Metadata", exact=True))
    decision = page.locator("tr", has=page.get_by_text("decision", exact=True))
    decision.first.wait_for(state="visible")
    assert re.search(r"\b(promoted|rejected)\b", decision.first.inner_text()), decision.first.inner_text()
    reason = page.locator("tr", has=page.get_by_text("reason", exact=True))
    assert "no champion yet" in reason.first.inner_text()  # the first model of a fresh project

    links = page.locator(f'a[href^="{MLFLOW_UI}"]')
    links.first.wait_for(state="attached")
    hrefs = {links.nth(i).get_attribute("href") for i in range(links.count())}
    assert any("/#/models/leadscore-linkedin/versions/" in h for h in hrefs), hrefs
    # every link opens MLflow's classic ML view (its 3.17 UI reads the view from the link)
    assert any(re.search(r"/#/experiments/[^/]+/runs/\w+\?workflowType=machine_learning$", h) for h in hrefs), hrefs
    assert any(re.search(r"/#/experiments/[^/?]+\?workflowType=machine_learning$", h) for h in hrefs), hrefs
    _screenshot(page, screenshots / f"{PROJECT}_champion_model.png", height=1900)


def test_evaluation_page_opens_with_the_headline_and_links_each_plot_file(ui, page, screenshots):
    """What evaluation_report is opened for is its first rows; each plot is a link to its PNG."""
    _open(page, f"{ui}/assets/{PROJECT}/evaluation_report", lambda: page.get_by_text("Metadata", exact=True))
    page.locator("tr", has=page.get_by_text("test_roc_auc", exact=True)).first.wait_for(state="visible")
    keys = [text.split("\n", 1)[0].split("\t", 1)[0].strip() for text in page.locator("tr").all_inner_texts()]
    headline = ["chosen_model", "test_roc_auc", "test_pr_auc", "test_top20_capture", "threshold"]
    at = [keys.index(k) for k in headline]
    assert at == sorted(at) and at[-1] - at[0] == len(headline) - 1, keys  # together, in this order
    assert at[0] < keys.index("plots") < keys.index("model_card") < keys.index("roc_plot") < keys.index("lift_by_decile"), keys
    assert "plots_in_mlflow" not in keys
    auc = page.locator("tr", has=page.get_by_text("test_roc_auc", exact=True)).first.inner_text()
    assert re.search(r"\b0\.\d{2,4}\b", auc), auc
    for plot in ("roc", "precision_recall", "reliability", "shap_summary"):
        link = page.locator(f'a[href$="/artifactPath/evaluation/{plot}.png?workflowType=machine_learning"]')
        assert link.count() >= 1, plot  # the URL as text and its open-in-new-tab icon
        assert link.first.get_attribute("href").startswith(f"{MLFLOW_UI}/#/experiments/"), plot
    _screenshot(page, screenshots / f"{PROJECT}_evaluation_report.png", height=2400)
