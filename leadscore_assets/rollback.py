"""Roll a project's published warehouse back to its last good copy, with the champion alias and
the call list brought back in line:

    python -m leadscore_assets.rollback <project> [--data-dir DIR] [--warehouse-dir DIR]

`--data-dir` defaults to $LEADSCORE_DATA_DIR (else `data/`), as `dagster dev` uses it; the
warehouse is `<data dir>/warehouse` and MLflow the SQLite store under `<data dir>/mlflow` unless
`--warehouse-dir` / `--tracking-uri` say otherwise. The logic is `resources.warehouse.rollback`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from leadscore_assets.resources.publication import CorruptWarehouseError
from leadscore_assets.resources.storage import default_data_dir
from leadscore_assets.resources.warehouse import ProjectBusyError, rollback


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m leadscore_assets.rollback", description=__doc__.split("\n\n")[0])
    parser.add_argument("project")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--warehouse-dir", type=Path, default=None)
    parser.add_argument("--tracking-uri", default=None)
    args = parser.parse_args(argv)
    data_dir = (args.data_dir or default_data_dir()).resolve()
    tracking_uri = args.tracking_uri or f"sqlite:///{data_dir / 'mlflow' / 'mlflow.db'}"
    try:
        done = rollback(args.warehouse_dir or data_dir / "warehouse", args.project, tracking_uri=tracking_uri,
                        data_dir=data_dir)
    except (CorruptWarehouseError, ProjectBusyError) as err:
        print(f"rollback refused: {err}", file=sys.stderr)
        return 1
    print(f"rolled back: {done['published']} is the last good copy again; the replaced file is kept as "
          f"{done['rolled_back']}")
    for line in done["repaired"] or ["champion alias and call list were already in line"]:
        print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
