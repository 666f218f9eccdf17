"""One mapping from the names a source writes to the names leadscore uses.

A user writes a YAML with the export's own column names (`LeadID`, `Converted`, `_id`) or with
their normalised form (`lead_id`); both must mean the same column everywhere. The data's
columns and every name in the config pass through the same `ColumnNaming.canonical`, once:
snake_case (when `normalise.column_case` is `snake`), then the configured renames. SQL rules
are rewritten column by column with a parser, so a label rule reading `Converted` reads
`converted` and that column is excluded from the features however it was spelled.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from leadscore_assets.lib.project.sql_rules import rename_columns


def snake_case(name: str) -> str:
    """`lastStateAt` -> `last_state_at`, `_id` -> `id`, `Company Size` -> `company_size`, `LeadID` -> `lead_id`."""
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name.strip())
    return re.sub(r"[^0-9a-zA-Z]+", "_", name).strip("_").lower()


@dataclass(frozen=True)
class ColumnNaming:
    """`column_case` + `rename` of a project's `normalise:` block, as one function of a name."""

    case: str = "snake"
    rename: dict[str, str] = field(default_factory=dict)

    def _cased(self, name: str) -> str:
        return snake_case(name) if self.case == "snake" else name.strip()

    def canonical(self, name: str) -> str:
        cased = self._cased(name)
        renames = {self._cased(k): self._cased(v) for k, v in self.rename.items()}
        return renames.get(cased, cased)

    def canonical_sql(self, text: str, where: str, key: tuple[str, ...] = ()) -> str:
        """A row expression with every column it reads given its canonical name."""
        return rename_columns(text, where, self.canonical, key)

    def columns(self, names) -> dict[str, str]:
        """Source name -> canonical name for a table's columns, failing when two collide."""
        out: dict[str, str] = {}
        seen: dict[str, str] = {}
        for name in names:
            canon = self.canonical(name)
            if canon in seen:
                raise ValueError(
                    f"columns {seen[canon]!r} and {name!r} both normalise to {canon!r}; "
                    "rename one of them under `normalise.rename`"
                )
            seen[canon] = name
            out[name] = canon
        return out
