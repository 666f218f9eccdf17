"""Pure logic, grouped by pipeline stage (each group's docstring says what it owns): project,
sources, validation, labels, features, modelling, evaluation, scoring, monitoring. Nothing here
imports Dagster.

Modules moved into the groups keep answering to their old names (`leadscore_assets.lib.blend`,
...): models registered before the move are pickles naming the classes by those paths.
"""

import importlib
import importlib.abc
import importlib.util
import sys

MOVED = {
    "blend": "modelling.blend",
    "calibration": "modelling.calibration",
    "call_list": "scoring.call_list",
    "challenger_evaluation": "evaluation.challenger",
    "column_names": "project.column_names",
    "column_typing": "sources.column_typing",
    "config": "project.config",
    "csv_text": "sources.csv_text",
    "data_paths": "project.data_paths",
    "drift": "monitoring.drift",
    "effectiveness": "monitoring.effectiveness",
    "evaluation": "evaluation.metrics",
    "explain": "scoring.explain",
    "features": "features.frame",
    "feedback_parsing": "labels.feedback_parsing",
    "feedback_resolution": "labels.feedback_resolution",
    "labels": "labels.label_rule",
    "leakage": "features.leakage",
    "model_card": "evaluation.model_card",
    "model_families": "modelling.families",
    "personal_data": "validation.personal_data",
    "profiling": "features.profiling",
    "promotion": "evaluation.promotion",
    "refusals": "scoring.refusals",
    "registry": "scoring.registry",
    "revenue": "modelling.revenue",
    "scoring": "scoring.scorer",
    "serving": "scoring.serving",
    "spreadsheet": "scoring.spreadsheet",
    "sql_rules": "project.sql_rules",
    "targets": "evaluation.targets",
    "thresholds": "modelling.thresholds",
    "training": "modelling.training",
    "tree_shap": "scoring.tree_shap",
    "tuning": "modelling.tuning",
}


class _OldNames(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """`leadscore_assets.lib.<old>` as a module holding the names of the module it moved to."""

    def find_spec(self, name, path=None, target=None):
        old = name.removeprefix(__name__ + ".")
        if old in MOVED or old.split(".")[0] in MOVED and "." in old:
            return importlib.util.spec_from_loader(name, self)
        return None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        old = module.__name__.removeprefix(__name__ + ".")
        head, _, rest = old.partition(".")
        target = importlib.import_module(f"{__name__}.{MOVED[head]}" + (f".{rest}" if rest else ""))
        module.__dict__.update({k: v for k, v in vars(target).items() if not k.startswith("__")})
        if hasattr(target, "__path__"):  # a package: its submodules through this finder too (one module object each)
            module.__path__ = []


sys.meta_path.append(_OldNames())
