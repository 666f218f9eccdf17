import duckdb
import pandas as pd
import pytest

from leadscore_assets.lib.labels.label_rule import LabelRuleError, check_label_rule, label_select_sql


def test_rule_yields_positive_negative_and_unlabelled(linkedin_config):
    v = pd.DataFrame({
        "lead_id": ["a", "b", "c", "d"],
        "status": ["done", "done", "inprogress", "inprogress"],
        "last_state": ["linkedinreplied", "emailssent", "linkedininvitesent", "linkedininterested"],
    })
    conn = duckdb.connect()
    conn.register("v", v)
    out = conn.execute(label_select_sql(linkedin_config, "v") + " ORDER BY lead_id").df()
    assert out.label.tolist()[:2] == [1, 0]
    assert pd.isna(out.label[2])  # still open: never a negative
    assert out.label[3] == 1


def test_invalid_expression_names_the_project_and_side(linkedin_config):
    bad = linkedin_config.model_copy(update={"label": linkedin_config.label.model_copy(update={"negative": "status = = 'done'"})})
    conn = duckdb.connect()
    conn.register("v", pd.DataFrame({"lead_id": ["a"], "status": ["done"], "last_state": ["x"]}))
    with pytest.raises(LabelRuleError, match="project 'linkedin': label.negative: .* does not parse as SQL"):
        check_label_rule(conn, bad, "v")
