import pytest
import yaml
from pydantic import ValidationError

from leadscore_assets.lib.project.config import ProjectConfig
from leadscore_assets.testing.runs import DEFS_DIR


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


def _as_exported(**over):
    """A YAML written with an export's own column names (camelCase, capitals), as a user would."""
    return {
        "name": "crm_leads", "source": {"kind": "csv", "path": "leads.csv"}, "id_column": "LeadID",
        "personal_data": ["EmailAddress"], "label": {"positive": "Converted = 'Yes'", "negative": "Converted = 'No'"},
        "features": {"exclude": ["lastActivityAt"], "dates": {"CreatedAt": ["weekday"]}},
        "split": {"time_column": "CreatedAt"},
    } | over


def test_names_as_exported_resolve_to_the_normalised_columns():
    config = ProjectConfig.model_validate(_as_exported())
    assert config.id_column == "lead_id"
    assert config.personal_data == ["email_address"]
    assert config.features.exclude == ["last_activity_at"] and list(config.features.dates) == ["created_at"]
    assert config.split.time_column == "created_at"
    assert config.label.positive == "converted = 'Yes'"  # values untouched, names normalised


def test_a_camel_case_lemlist_yaml_resolves_like_the_snake_case_one(linkedin_config):
    attrs = _attrs()
    attrs["id_column"] = "_id"  # LemList's own name; `rename: {id: lead_id}` applies to it too
    attrs["personal_data"] = ["email", "firstName", "lastName", "phone", "picture", "linkedinUrl"]
    attrs["columns"] = {("lastStateAt" if c == "last_state_at" else c): spec for c, spec in attrs["columns"].items()}
    attrs["features"]["exclude"] = ["status", "lastState", "lastStateAt", "stepsCompleted", "companyName"]
    attrs["label"]["positive"] = "lastState IN ('linkedinreplied', 'linkedininterested')"
    config = ProjectConfig.model_validate(attrs)
    assert config.feature_columns() == linkedin_config.feature_columns()
    assert config.label_columns() == linkedin_config.label_columns()


@pytest.mark.parametrize("spelling", ["Converted", "CONVERTED", "converted", '"Converted"'])
def test_the_label_column_is_never_a_feature_however_it_is_spelled(spelling):
    columns = {"lead_id": {"nullable": False, "unique": True}, "converted": {}, "industry": {}}
    config = ProjectConfig.model_validate(_as_exported(
        id_column="lead_id", personal_data=[], features={}, split={}, columns=columns,
        label={"positive": f"{spelling} = 'Yes'", "negative": f"{spelling} = 'No'"},
    ))
    assert config.feature_columns() == ["industry"]


def test_an_unknown_column_is_named_as_written_and_normalised():
    with pytest.raises(ValidationError, match=r"id_column 'LeadId2' \(normalised: 'lead_id2'\) is not a column"):
        ProjectConfig.model_validate(_as_exported(id_column="LeadId2", columns={"lead_id": {}, "converted": {}}))


@pytest.mark.parametrize("key, value, message", [
    ("label", {"positive": "x = 1; DROP TABLE crm_leads.lead_scores; SELECT true", "negative": "x = 0"},
     "label.positive.*3 statements"),
    ("label", {"positive": "(SELECT count(*) FROM crm_leads.lead_scores) > 0", "negative": "x = 0"},
     "label.positive.*not a query"),
    ("label", {"positive": "x = = 1", "negative": "x = 0"}, "label.positive.*does not parse"),
    ("validation", {"row_rules": [{"name": "wipe", "expression": "DELETE FROM t"}]}, "row rule 'wipe'"),
    ("source", {"tables": {"a": {"path": "a.csv"}}, "query": "DROP TABLE a"}, "source.query"),
])
def test_configuration_cannot_execute_statements(key, value, message):
    with pytest.raises(ValidationError, match=message):
        ProjectConfig.model_validate(_as_exported(**{key: value}))


def test_a_statement_in_a_yaml_file_is_refused_naming_file_line_and_key(tmp_path):
    from leadscore_assets.lib.project.config import ProjectConfigError, load_project_config

    text = (DEFS_DIR / "linkedin" / "defs.yaml").read_text().replace(
        "positive: \"last_state IN ('linkedinreplied', 'linkedininterested')\"",
        "positive: \"true; DROP TABLE linkedin.lead_scores; SELECT true\"")
    path = tmp_path / "defs.yaml"
    path.write_text(text)
    line = next(i for i, row in enumerate(text.splitlines(), 1) if "DROP TABLE" in row)
    with pytest.raises(ProjectConfigError, match=rf"defs.yaml line {line}: label.positive: .* holds 3 statements"):
        load_project_config(path)


# --- every path stays inside the data folder; a source query reads only its declared tables -----


_TWO_TABLES = {"companies": {"path": "saas/companies.csv"}, "events": {"path": "saas/events.csv"}}
_JOINED = "SELECT c._row_number, c._source_file, c.lead_id, c.converted FROM companies c"


@pytest.mark.parametrize("over, message", [
    ({"source": {"path": "../x.csv"}}, r"source.path '../x.csv' climbs out of the data folder"),
    ({"source": {"path": "exports/../../x.csv"}}, r"source.path 'exports/../../x.csv' climbs out"),
    ({"source": {"path": "/etc/passwd"}}, r"source.path '/etc/passwd' is an absolute path"),
    ({"source": {"path": "C:\\exports\\x.csv"}}, r"source.path .* is an absolute path"),
    ({"source": {"tables": {**_TWO_TABLES, "events": {"path": "/tmp/events.csv"}}, "query": _JOINED}},
     r"source.tables.events.path '/tmp/events.csv' is an absolute path"),
    ({"feedback": {"folder": "../../../etc"}}, r"feedback.folder '../../../etc' climbs out of the data folder"),
    ({"feedback": {"folder": "/var/crm"}}, r"feedback.folder '/var/crm' is an absolute path"),
])
def test_a_path_leaving_the_data_folder_is_refused(over, message):
    with pytest.raises(ValidationError, match=message):
        ProjectConfig.model_validate(_as_exported(**over))


def test_a_path_that_stays_inside_is_accepted():
    config = ProjectConfig.model_validate(_as_exported(source={"path": "exports/old/../leads.csv"},
                                                       feedback={"folder": "feedback/crm"}))
    assert config.source.path == "exports/old/../leads.csv" and config.feedback.folder == "feedback/crm"


@pytest.mark.parametrize("query, shown", [
    ("SELECT * FROM read_csv('/etc/passwd')", "read_csv('/etc/passwd')"),
    ("SELECT c.* FROM companies c JOIN read_parquet('/data/other.parquet') o USING (lead_id)",
     "read_parquet('/data/other.parquet')"),
    ("SELECT * FROM read_json_auto('s3://bucket/x.json')", "read_json_auto('s3://bucket/x.json')"),
    ("SELECT * FROM companies WHERE lead_id IN (SELECT file FROM glob('/home/*'))", "glob('/home/*')"),
    ("SELECT * FROM 'other.csv'", "'other.csv' (a file name)"),
    ("SELECT * FROM companies JOIN invoices USING (lead_id)", "'invoices' (not a declared table)"),
    ("SELECT * FROM main.companies", "main.companies (a qualified name)"),
])
def test_a_source_query_reads_only_the_declared_tables(query, shown):
    with pytest.raises(ValidationError) as err:
        ProjectConfig.model_validate(_as_exported(source={"tables": _TWO_TABLES, "query": query}))
    assert f"source.query reads {shown}; a query may read only the declared tables: companies, events" in str(err.value)


def test_a_query_over_declared_tables_and_its_own_ctes_is_accepted():
    query = ("WITH usage AS (SELECT lead_id, count(*) AS n FROM events GROUP BY lead_id) "
             "SELECT c._row_number, c._source_file, c.lead_id, u.n FROM Companies c LEFT JOIN usage u USING (lead_id)")
    config = ProjectConfig.model_validate(_as_exported(source={"tables": _TWO_TABLES, "query": query}))
    assert config.source.query == query


def test_a_path_out_of_the_data_folder_in_a_yaml_file_names_file_line_and_key(tmp_path):
    from leadscore_assets.lib.project.config import ProjectConfigError, load_project_config

    text = (DEFS_DIR / "saas_crm" / "defs.yaml").read_text().replace("path: saas_crm/usage_events.csv",
                                                                       "path: ../../etc/usage_events.csv")
    path = tmp_path / "defs.yaml"
    path.write_text(text)
    line = next(i for i, row in enumerate(text.splitlines(), 1) if "../../etc" in row)
    with pytest.raises(ProjectConfigError, match=rf"defs.yaml line {line}: source.tables.usage.path "
                                                 r"'../../etc/usage_events.csv' climbs out of the data folder"):
        load_project_config(path)


def test_a_file_reading_query_in_a_yaml_file_names_file_line_and_key(tmp_path):
    from leadscore_assets.lib.project.config import ProjectConfigError, load_project_config

    text = (DEFS_DIR / "saas_crm" / "defs.yaml").read_text().replace("FROM companies c", "FROM read_csv('/etc/passwd') c")
    assert "read_csv('/etc/passwd')" in text
    path = tmp_path / "defs.yaml"
    path.write_text(text)
    line = next(i for i, row in enumerate(text.splitlines(), 1) if row.strip().startswith("query:"))
    with pytest.raises(ProjectConfigError, match=rf"defs.yaml line {line}: source.query reads read_csv\('/etc/passwd'\)"):
        load_project_config(path)


@pytest.mark.parametrize("project", sorted(p.name for p in DEFS_DIR.iterdir() if (p / "defs.yaml").exists()))
def test_shipped_projects_keep_their_paths_inside_and_queries_on_declared_tables(project):
    from leadscore_assets.lib.project.config import load_project_config

    config = load_project_config(DEFS_DIR / project / "defs.yaml")
    assert all(not spec.path.startswith(("/", "..")) for spec in config.source.table_specs().values())


def test_not_reasons_takes_columns_as_exported_and_refuses_unknown_ones():
    """`features.not_reasons`: columns describing the export rather than the lead (never a reason)."""
    attrs = _attrs()
    attrs["features"]["not_reasons"] = ["createdAt", "campaign_name"]
    assert ProjectConfig.model_validate(attrs).features.not_reasons == ["created_at", "campaign_name"]
    attrs["features"]["not_reasons"] = ["createdAtt"]
    with pytest.raises(ValidationError, match=r"features.not_reasons names unknown column 'createdAtt' \(normalised: 'created_att'\)"):
        ProjectConfig.model_validate(attrs)
    assert ProjectConfig.model_validate(_attrs()).features.not_reasons == []  # by default every feature may be a reason


def test_a_project_named_like_a_duckdb_keyword_is_refused_with_another_name_to_use():
    with pytest.raises(ValidationError, match=r"name 'default' is a word DuckDB keeps for itself.*e\.g\. 'default_leads'"):
        ProjectConfig.model_validate(_attrs() | {"name": "default"})
    assert ProjectConfig.model_validate(_attrs() | {"name": "default_leads"}).name == "default_leads"


def test_only_names_duckdb_cannot_hold_as_a_schema_are_refused():
    for name in ("default", "order", "group", "select", "join", "like", "temp", "system"):
        with pytest.raises(ValidationError, match=f"name '{name}' is a word DuckDB keeps for itself"):
            ProjectConfig.model_validate(_attrs() | {"name": name})
    for name in ("call", "data", "user", "struct", "main", "leads"):  # keywords DuckDB takes bare
        assert ProjectConfig.model_validate(_attrs() | {"name": name}).name == name
