"""Demo CRM outcome files: open leads only, outcomes from the truth model, parseable by the loader."""

import pandas as pd
import pytest

from leadscore_assets.demo_data import feedback, linkedin
from leadscore_assets.demo_data.__main__ import main
from leadscore_assets.lib.feedback import OUTCOME_LABELS_DEFAULT, file_sha256, parse_feedback_file

AS_OF = "2026-09-01T00:00:00Z"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("feedback_demo")
    linkedin.write(d, rows=4000, seed=5)
    return d


def _export(data_dir) -> pd.DataFrame:
    export = pd.read_csv(data_dir / "linkedin" / "lemlist_export.csv", dtype=str).drop_duplicates("_id")
    return export.set_index("_id")


def test_outcomes_are_for_open_leads_after_their_creation(data_dir):
    path = feedback.write_feedback(data_dir, n=200, seed=1, outcome_time=AS_OF)
    assert path == data_dir / "feedback" / "linkedin" / "crm_outcomes_seed1.csv"
    assert not list(path.parent.glob("*.part"))  # written under a temporary name, then renamed
    rows = pd.read_csv(path, dtype=str)
    assert list(rows.columns) == ["lead_id", "outcome", "outcome_at"]
    assert len(rows) == 200 and rows.lead_id.is_unique
    export = _export(data_dir).loc[rows.lead_id]
    assert (export.status.str.strip().str.lower() != "done").all()  # unlabelled by the rule
    assert set(rows.outcome) <= set(OUTCOME_LABELS_DEFAULT)
    at = pd.to_datetime(rows.outcome_at, utc=True)
    assert (at > pd.to_datetime(export.createdAt.to_numpy(), utc=True)).all()
    assert (at <= pd.Timestamp(AS_OF)).all()


def test_new_labels_follow_the_truth_model(data_dir):
    rows = feedback.generate(data_dir, n=10_000, seed=2, outcome_time=AS_OF)  # every open lead
    truth = pd.read_csv(data_dir / "truth" / "linkedin.csv").set_index("_id").true_probability
    positive = rows.outcome.map(OUTCOME_LABELS_DEFAULT).to_numpy()
    p = truth.loc[rows.lead_id].to_numpy()
    assert len(rows) > 800
    assert abs(positive.mean() - p.mean()) < 0.05
    # leads the model deems likely engage more often than unlikely ones
    assert positive[p >= pd.Series(p).median()].mean() > positive[p < pd.Series(p).median()].mean() + 0.05


def test_deterministic_per_seed_and_excludes_reported_leads(data_dir):
    a = feedback.generate(data_dir, n=50, seed=3, outcome_time=AS_OF)
    assert a.equals(feedback.generate(data_dir, n=50, seed=3, outcome_time=AS_OF))
    assert not a.equals(feedback.generate(data_dir, n=50, seed=4, outcome_time=AS_OF))
    b = feedback.generate(data_dir, n=50, seed=3, outcome_time=AS_OF, exclude=a.lead_id)
    assert not set(a.lead_id) & set(b.lead_id)
    early = feedback.generate(data_dir, n=10_000, seed=3, outcome_time="2026-02-01")
    assert (pd.to_datetime(early.outcome_at) <= pd.Timestamp("2026-02-01", tz="UTC")).all()
    assert len(early) < len(feedback.generate(data_dir, n=10_000, seed=3, outcome_time=AS_OF))


def test_bad_rows_end_up_quarantined_or_unknown(data_dir):
    path = feedback.write_feedback(data_dir, n=60, seed=6, outcome_time=AS_OF, bad_rows=3, name="messy.csv")
    known = set(_export(data_dir).index)
    batch = parse_feedback_file(path, file_sha256(path), known)
    assert batch.data_rows == 63
    assert len(batch.outcomes) == 60
    assert list(batch.unknown_leads.lead_id) == ["unknown_6_0000"]
    reasons = " | ".join(batch.quarantined.reason)
    assert "'last tuesday' is not a valid timestamp" in reasons
    assert "'maybe later' is not a known outcome" in reasons
    assert len(batch.quarantined) == 2


def test_unknown_project_and_missing_export_are_explained(tmp_path, data_dir):
    with pytest.raises(ValueError, match="no demo feedback for project 'saas_crm'"):
        feedback.generate(data_dir, project="saas_crm")
    with pytest.raises(FileNotFoundError, match="write the demo export first"):
        feedback.generate(tmp_path)


def test_cli_writes_outcomes_after_the_linkedin_export(tmp_path, capsys):
    main(["linkedin", "--rows", "400", "--seed", "9", "--data-dir", str(tmp_path)])
    main(["feedback", "--rows", "30", "--seed", "9", "--data-dir", str(tmp_path)])
    path = tmp_path / "feedback" / "linkedin" / "crm_outcomes_seed9.csv"
    assert f"feedback: wrote {path}" in capsys.readouterr().out
    assert len(pd.read_csv(path)) == 30
