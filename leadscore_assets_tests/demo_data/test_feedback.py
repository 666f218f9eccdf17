"""Demo CRM outcome files: open leads only, outcomes from the truth model, parseable by the loader."""

import numpy as np
import pandas as pd
import pytest

from leadscore_assets.demo_data import feedback, linkedin
from leadscore_assets.demo_data.__main__ import main
from leadscore_assets.lib.labels.feedback_parsing import OUTCOME_LABELS_DEFAULT
from leadscore_assets.resources.feedback_inbox import file_sha256, read_feedback_file

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
    batch = read_feedback_file(path, file_sha256(path), known)
    assert batch.data_rows == 63
    assert len(batch.outcomes) == 60
    assert list(batch.unknown_leads.lead_id) == ["unknown_6_0000"]
    reasons = " | ".join(batch.quarantined.reason)
    assert "column 'outcome_at': is not a valid timestamp" in reasons
    assert "column 'outcome': is not a known outcome" in reasons
    assert "last tuesday" not in reasons and "maybe later" not in reasons  # the refused values are not repeated
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


# --------------------------------------------------------------------------------------------
# Scenarios with a known truth, in numbered batches
# --------------------------------------------------------------------------------------------


def _positive(rows: pd.DataFrame) -> pd.Series:
    return rows.set_index("lead_id").outcome.map(OUTCOME_LABELS_DEFAULT)


def test_batches_are_disjoint_deterministic_and_batch_one_is_the_plain_file(data_dir):
    batches = [feedback.generate(data_dir, n=150, seed=8, outcome_time=AS_OF, batch=b) for b in (1, 2, 3)]
    assert batches[0].equals(feedback.generate(data_dir, n=150, seed=8, outcome_time=AS_OF))
    assert batches[2].equals(feedback.generate(data_dir, n=150, seed=8, outcome_time=AS_OF, batch=3))
    ids = [set(b.lead_id) for b in batches]
    assert all(len(b) == 150 for b in batches)
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    # the same seed and batch choose the same leads in every scenario
    for scenario in ("shifted", "noisy"):
        assert list(feedback.generate(data_dir, n=150, seed=8, outcome_time=AS_OF, scenario=scenario,
                                      batch=2).lead_id) == list(batches[1].lead_id)
    # the last batch gets what is left, then nothing
    open_count = len(feedback.open_leads(data_dir))
    last = open_count // 150 + 1
    assert len(feedback.generate(data_dir, n=150, seed=8, outcome_time=AS_OF, batch=last)) == open_count % 150
    assert feedback.generate(data_dir, n=150, seed=8, outcome_time=AS_OF, batch=last + 1).empty
    with pytest.raises(ValueError, match="batch must be 1 or more"):
        feedback.generate(data_dir, batch=0)
    with pytest.raises(ValueError, match="unknown feedback scenario 'chaotic'"):
        feedback.generate(data_dir, scenario="chaotic")


def test_shifted_outcomes_follow_the_shifted_truth(data_dir):
    faithful = feedback.true_probabilities(data_dir)
    shifted = feedback.true_probabilities(data_dir, scenario="shifted")
    assert list(faithful.lead_id) == list(shifted.lead_id) and not faithful.shifted.any()
    assert 0.25 < shifted.shifted.mean() < 0.5  # the Enterprise ABM campaign and the health-care industry
    p0, p1 = faithful.true_probability.to_numpy(), shifted.true_probability.to_numpy()
    ratio = (p1 / (1 - p1)) / (p0 / (1 - p0))  # odds multiplied once per shifted segment a lead is in
    assert np.allclose(ratio[~shifted.shifted], 1.0)
    k = feedback.SHIFT_ODDS_RATIO
    assert np.all(np.isclose(ratio[shifted.shifted], k) | np.isclose(ratio[shifted.shifted], k * k))

    rows = feedback.generate(data_dir, n=10_000, seed=2, outcome_time=AS_OF, scenario="shifted")  # every open lead
    positive = _positive(rows)
    truth = shifted.set_index("lead_id").loc[positive.index]
    assert abs(positive.mean() - truth.true_probability.mean()) < 0.05
    # the weak segments now engage far more often than the rest, unlike in the export's own world
    assert positive[truth.shifted.to_numpy()].mean() > positive[~truth.shifted.to_numpy()].mean() + 0.3

    path = feedback.write_feedback(data_dir, n=40, seed=2, outcome_time=AS_OF, scenario="shifted", batch=1)
    assert path.name == "crm_outcomes_shifted_seed2_file1.csv"
    written = pd.read_csv(data_dir / "truth" / "linkedin_shifted.csv", dtype={"_id": str})
    assert list(written.columns) == ["_id", "true_probability", "shifted"]
    assert np.allclose(written.true_probability, shifted.true_probability)


def test_noisy_outcomes_are_mostly_coin_flips_at_the_base_rate(data_dir):
    truth = feedback.true_probabilities(data_dir).set_index("lead_id").true_probability
    spreads = {}
    for scenario in ("faithful", "noisy"):
        positive = _positive(feedback.generate(data_dir, n=10_000, seed=3, outcome_time=AS_OF, scenario=scenario))
        p = truth.loc[positive.index]
        assert abs(positive.mean() - p.mean()) < 0.05  # same base rate
        spreads[scenario] = positive[p >= p.median()].mean() - positive[p < p.median()].mean()
    # what is left of the truth's signal: about 1 - NOISE_SHARE of it
    assert spreads["noisy"] < spreads["faithful"] * (1 - feedback.NOISE_SHARE) + 0.06
    assert feedback.file_name(3, "noisy", 2) == "crm_outcomes_noisy_seed3_file2.csv"
    assert feedback.file_name(3) == "crm_outcomes_seed3.csv"


def test_cli_writes_numbered_scenario_files(tmp_path, capsys):
    main(["linkedin", "--rows", "600", "--seed", "9", "--data-dir", str(tmp_path)])
    for batch in ("1", "2"):
        main(["feedback", "--scenario", "shifted", "--batch", batch, "--rows", "40", "--seed", "9",
              "--data-dir", str(tmp_path)])
    folder = tmp_path / "feedback" / "linkedin"
    out = capsys.readouterr().out
    first, second = (folder / f"crm_outcomes_shifted_seed9_file{b}.csv" for b in (1, 2))
    assert f"feedback: wrote {second}" in out
    assert not set(pd.read_csv(first).lead_id) & set(pd.read_csv(second).lead_id)
    assert (tmp_path / "truth" / "linkedin_shifted.csv").exists()
    with pytest.raises(SystemExit):
        main(["linkedin", "--scenario", "noisy", "--data-dir", str(tmp_path)])
    assert "apply to the feedback source only" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["feedback", "--batch", "0", "--data-dir", str(tmp_path)])
