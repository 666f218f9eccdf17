"""The component the Dagster way: loaded from the project's defs folder by Dagster's component
tree, and scaffolded into a sandbox defs folder as a user adds a source."""

from pathlib import Path

import dagster as dg
import pytest
from dagster.components.testing import create_defs_folder_sandbox

from leadscore_assets.components import LeadScoringProject
from leadscore_assets.resources import build_resources

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ("linkedin", "email_crm", "saas_crm", "web_sessions", "byo_example")


@pytest.mark.parametrize("project", SHIPPED)
def test_every_shipped_project_loads_through_the_component_tree(project, tmp_path):
    tree = dg.ComponentTree.for_project(PROJECT_ROOT)
    component = tree.load_component(project)
    defs = dg.Definitions.merge(tree.build_defs_at_path(project), dg.Definitions(resources=build_resources(tmp_path)))
    assert isinstance(component, LeadScoringProject) and component.name == project
    keys = defs.resolve_asset_graph().get_all_asset_keys()
    assert {k.path[0] for k in keys} == {project}
    assert {dg.AssetKey([project, n]) for n in ("raw_contacts", "features", "champion_model", "lead_scores",
                                                "published")} <= keys
    assert defs.resolve_job_def(f"{project}_pipeline").name == f"{project}_pipeline"


NEW_SOURCE = {
    "type": "leadscore_assets.components.LeadScoringProject",
    "attributes": {
        "name": "webinar_leads",
        "source": {"kind": "csv", "path": "webinar/registrants.csv"},
        "id_column": "RegistrantID",                     # the export's own spelling
        "personal_data": ["EmailAddress"],
        "label": {"positive": "Outcome = 'Won'", "negative": "Outcome = 'Lost'"},
        "call_list": {"columns": ["CompanyName"]},
    },
}


def test_a_new_source_is_one_yaml_scaffolded_into_the_defs_folder(tmp_path):
    with create_defs_folder_sandbox() as sandbox:
        path = sandbox.scaffold_component(LeadScoringProject, defs_path="webinar_leads", defs_yaml_contents=NEW_SOURCE)
        with sandbox.build_component_tree() as tree:
            component = tree.load_component(path)
            # with the code location's resources, as definitions.py merges them
            defs = dg.Definitions.merge(tree.build_defs(path), dg.Definitions(resources=build_resources(tmp_path)))
            dg.Definitions.validate_loadable(defs)
            assert component.id_column == "registrant_id" and component.personal_data == ["email_address"]
            assert component.call_list.columns == ["company_name"]
            graph = defs.resolve_asset_graph()
            assert {graph.get(k).group_name for k in graph.get_all_asset_keys()} == {"webinar_leads"}
            assert defs.resolve_job_def("webinar_leads_pipeline") is not None


def test_a_broken_yaml_names_its_file_line_and_key():
    broken = {**NEW_SOURCE, "attributes": {**NEW_SOURCE["attributes"],
                                           "call_list": {"columns": ["EmailAddress"]}}}
    with create_defs_folder_sandbox() as sandbox:
        path = sandbox.scaffold_component(LeadScoringProject, defs_path="webinar_leads", defs_yaml_contents=broken)
        with pytest.raises(Exception) as err:
            with sandbox.build_component_tree() as tree:
                tree.load_component(path)
    text = str(err.value) + "".join(str(c) for c in (err.value.__cause__, err.value.__context__) if c)
    assert "defs.yaml line" in text and "call_list.columns names personal data" in text, text
