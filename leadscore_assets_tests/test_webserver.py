"""The real webserver loads the code location and shows what an analyst opens the UI for."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from leadscore_assets.testing.servers import free_port, graphql

pytestmark = pytest.mark.slow  # a real dagster-webserver process: `pytest -m slow`

ROOT = Path(__file__).resolve().parents[1]
QUERY = """{
  assetNodes { assetKey { path } groupName hasAssetChecks }
  repositoriesOrError { ... on RepositoryConnection { nodes { sensors { name sensorState { status } }
                                                               schedules { name scheduleState { status } } } } }
}"""


@pytest.fixture(scope="module")
def webserver(tmp_path_factory):
    home = tmp_path_factory.mktemp("dagster_home")
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "LEADSCORE_DATA_DIR": str(tmp_path_factory.mktemp("data"))}
    exe = Path(sys.executable).with_name("dagster-webserver")
    proc = subprocess.Popen([str(exe), "-w", str(ROOT / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    try:
        while True:
            try:
                if graphql(port, "{ version }"):
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                pytest.fail("dagster-webserver did not come up within 120 s")
            time.sleep(1)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_ui_shows_every_project_lineage_with_checks_sensor_and_schedule(webserver):
    data = graphql(webserver, QUERY)
    nodes = {tuple(n["assetKey"]["path"]): n for n in data["assetNodes"]}
    for project in ("linkedin", "email_crm", "saas_crm", "web_sessions", "byo_example"):
        assert nodes[(project, "raw_contacts")]["groupName"] == project
        assert nodes[(project, "lead_scores")]["groupName"] == project
        assert nodes[(project, "validated_contacts")]["hasAssetChecks"]
    repo = data["repositoriesOrError"]["nodes"][0]
    sensors = {s["name"]: s["sensorState"]["status"] for s in repo["sensors"]}
    schedules = {s["name"]: s["scheduleState"]["status"] for s in repo["schedules"]}
    assert sensors["linkedin_feedback_sensor"] == "RUNNING"
    assert schedules["linkedin_nightly_retrain"] == "STOPPED"
