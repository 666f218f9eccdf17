"""The model card opens with what a reader comes for: the model and its headline test figures."""

from leadscore_assets.lib.evaluation.model_card import model_card


def _card(**over) -> str:
    args = dict(
        project="linkedin", description="LemList export.", candidate="lightgbm", version_hint="run 1a2b3c4d",
        label_rule={"positive": "replied", "negative": "done"}, data_window={"column": "created_at", "start": "a", "end": "b"},
        rows={"train": 600, "test": 200}, features=["job_title", "company_size"], excluded=["email"],
        metrics={"roc_auc": 0.7312, "pr_auc": 0.4121, "brier": 0.18, "log_loss": 0.5, "top10_capture": 0.2,
                 "top20_capture": 0.3876},
        intervals={"roc_auc": (0.69, 0.77)}, calibration={"method": "sigmoid", "reason": "lower Brier",
                                                          "test_brier_before": 0.2, "test_brier_after": 0.18},
        threshold={"policy": "capacity", "threshold": 0.3141, "precision": 0.5, "recall": 0.4, "contacted_share": 0.2},
        limitations=["Demo-scale data."])
    return model_card(**(args | over))


def test_the_card_opens_with_the_model_and_its_headline_figures():
    card = _card()
    glance = card.split("## At a glance\n", 1)[1].split("\n## ", 1)[0]
    assert glance.splitlines() == [
        "- Model: **lightgbm**",
        "- Test ROC-AUC: 0.7312 (95% CI 0.6900 - 0.7700)",
        "- Test PR-AUC: 0.4121",
        "- Share of the test positives in the top 20% of scores: 0.3876",
        "- Contact a lead when its score is at least 0.3141 (capacity policy)",
    ]
    assert card.index("## At a glance") < card.index("## Model") < card.index("## Data") < card.index("## Known limitations")


def test_a_metric_not_measured_reads_n_a():
    assert "- Test PR-AUC: n/a" in _card(metrics={"roc_auc": 0.7})
