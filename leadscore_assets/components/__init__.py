from leadscore_assets.components.lead_scoring_project import LeadScoringProject

__all__ = ["LeadScoringProject"]
