"""The call list's files: a run writes `<run id>.csv/.parquet`, publishing renames them to
`call_list.*` and drops older runs' copies (lib/scoring/call_list.py only writes into streams)."""

import io

import pandas as pd

from leadscore_assets.lib.scoring.call_list import write_call_list
from leadscore_assets.resources.call_list_files import publish_call_list, published_call_list, write_call_list_files


def _calls(n: int) -> pd.DataFrame:
    return pd.DataFrame({"rank": range(1, n + 1), "lead_id": [f"L{i}" for i in range(n)],
                         "company_name": ["=1+1", "Acme", None, "-5"][:n], "probability": [0.9, 0.5, 0.25, 0.1][:n]})


def test_the_files_hold_the_bytes_lib_writes_and_publishing_swaps_them_in(tmp_path):
    calls = _calls(4)
    csv_out, parquet_out = io.StringIO(newline=""), io.BytesIO()
    write_call_list(calls, csv_out, parquet_out)
    (tmp_path / "older-run.csv").write_text("old")
    files, head = write_call_list_files([calls.iloc[:2], calls.iloc[2:]], tmp_path, "run-1", top=3)
    assert files == {"csv": tmp_path / "run-1.csv", "parquet": tmp_path / "run-1.parquet"}
    assert files["csv"].read_bytes() == csv_out.getvalue().encode("utf-8")
    parquet = pd.read_parquet(io.BytesIO(parquet_out.getvalue()))  # one row group there, two here: same rows
    pd.testing.assert_frame_equal(pd.read_parquet(files["parquet"]), parquet)
    pd.testing.assert_frame_equal(head, calls.head(3))

    published = publish_call_list(tmp_path, "run-1")
    assert published == published_call_list(files) == {"csv": tmp_path / "call_list.csv",
                                                       "parquet": tmp_path / "call_list.parquet"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["call_list.csv", "call_list.parquet"]
    assert published["csv"].read_bytes() == csv_out.getvalue().encode("utf-8")
    assert publish_call_list(tmp_path, "run-2") == {}  # a run that wrote none leaves the list as it was
    assert published["csv"].exists()
