"""score_all_sources under the multiprocess executor, for real: two projects' steps run at the
same time, one project's steps never do, and both publish (benchmarks/parallel_projects.py)."""

import sys
from pathlib import Path

import duckdb
import pytest

from leadscore_assets.demo_data import linkedin, saas_crm

pytestmark = pytest.mark.slow  # a real multiprocess run: `pytest -m slow`

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_projects_run_side_by_side_and_each_projects_steps_in_turn(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # the step processes load the job from there too
    monkeypatch.setenv("LEADSCORE_BENCH_PROJECTS", "linkedin,saas_crm")
    monkeypatch.setenv("LEADSCORE_BENCH_CANDIDATES", "dummy,logistic_regression")
    for set_by_run in ("LEADSCORE_DATA_DIR", "LEADSCORE_BENCH_TRIALS", "DAGSTER_HOME"):
        monkeypatch.setenv(set_by_run, "")  # restored after the test
    sys.modules.pop("parallel_projects", None)
    import parallel_projects

    data_dir = tmp_path / "data"
    linkedin.write(data_dir, rows=1500, seed=3)
    saas_crm.write(data_dir, rows=1200, seed=3)
    seconds, _cpu, spans = parallel_projects.run("multiprocess", data_dir, tmp_path / "dagster_home", trials=0)
    together, same_project = parallel_projects.overlap(spans)
    assert same_project == 0  # a project's DuckDB file never had two steps at once
    assert together > 0  # and the two projects did run side by side
    assert {p for p, _, _ in spans} == {"linkedin", "saas_crm"}
    for project in ("linkedin", "saas_crm"):
        with duckdb.connect(str(data_dir / "warehouse" / project / "warehouse.duckdb"), read_only=True) as conn:
            assert conn.execute(f"SELECT count(*) FROM {project}.lead_scores").fetchall()[0][0] > 500
        lease = (data_dir / "warehouse" / project / "run.lock").read_text()
        assert lease == ""  # published ended the run's lease
