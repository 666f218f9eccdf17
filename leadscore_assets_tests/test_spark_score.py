"""The Spark scoring command line (leadscore_assets/spark_score.py) finds the file to score
without Spark: a project with a CSV or Parquet source scores that file; any other project scores
its published `raw_contacts` rows, without the lineage columns."""

import duckdb
import pandas as pd

from leadscore_assets.lib.validation import LINEAGE
from leadscore_assets.resources.warehouse import published_file
from leadscore_assets.spark_score import project_source


def test_a_multi_table_source_scores_its_published_raw_contacts(tmp_path):
    path = published_file(tmp_path / "warehouse", "email_crm")
    path.parent.mkdir(parents=True)
    with duckdb.connect(str(path)) as conn:
        conn.execute("CREATE SCHEMA email_crm")
        conn.execute(f"CREATE TABLE email_crm.raw_contacts AS SELECT 'lea_1' AS contact_id, 'x' AS note, "
                     f"{', '.join(f'1 AS {c}' for c in LINEAGE)}")
    out, delimiter = project_source("email_crm", tmp_path, tmp_path)
    assert delimiter == ","
    assert pd.read_parquet(out).to_dict(orient="records") == [{"contact_id": "lea_1", "note": "x"}]


def test_a_file_source_scores_the_file(tmp_path):
    out, _ = project_source("web_sessions", tmp_path, tmp_path)
    assert out.is_relative_to(tmp_path) and out.suffix == ".parquet"
