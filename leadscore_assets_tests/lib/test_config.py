import pytest
import yaml
from pydantic import ValidationError

from leadscore_assets.lib.config import ProjectConfig
from leadscore_assets_tests.conftest import DEFS_DIR


def _attrs():
    return yaml.safe_load((DEFS_DIR / "linkedin" / "defs.yaml").read_text())["attributes"]


def test_linkedin_features_exclude_personal_and_post_outcome_columns(linkedin_config):
    cols = linkedin_config.feature_columns()
    assert not set(cols) & {*linkedin_config.personal_data, "status", "last_state", "last_state_at", "lead_id"}
    assert "job_title" in cols


def test_unknown_key_is_rejected():
    attrs = _attrs() | {"lable": {}}
    with pytest.raises(ValidationError, match="lable"):
        ProjectConfig.model_validate(attrs)


def test_unknown_column_names_are_reported():
    attrs = _attrs()
    attrs["features"]["exclude"].append("last_statee")
    with pytest.raises(ValidationError, match="features.exclude names unknown column 'last_statee'"):
        ProjectConfig.model_validate(attrs)


def test_dummy_baseline_is_required():
    attrs = _attrs()
    attrs["models"]["candidates"] = ["xgboost"]
    with pytest.raises(ValidationError, match="dummy"):
        ProjectConfig.model_validate(attrs)
