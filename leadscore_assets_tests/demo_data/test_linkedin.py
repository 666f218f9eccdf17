from leadscore_assets.demo_data import linkedin


def test_export_is_messy_and_truth_is_separate(tmp_path):
    path = linkedin.write(tmp_path, rows=1000, seed=1)
    export = path.read_text()
    truth_path = tmp_path / "truth" / "linkedin.csv"
    assert truth_path.exists() and "true_probability" not in export
    df, truth = linkedin.generate(rows=1000, seed=1)
    assert df["_id"].duplicated().sum() == 10  # 1% duplicated rows
    assert (~df.email.str.contains("@")).sum() > 0  # invalid emails
    assert df.jobTitle.str.startswith(" ").any() and df.industry.isna().any()
    assert truth.true_probability.between(0, 1).all() and len(truth) == 1000


def test_generation_is_deterministic():
    a, _ = linkedin.generate(rows=200, seed=5)
    b, _ = linkedin.generate(rows=200, seed=5)
    assert a.equals(b)
