"""The template that ``chalice package --merge-template`` merges into Chalice's own:
the platform's resources (``infra/template.py``), its operations (``infra/operations.py``: alarms,
WAF, mail) and the location's JupyterHub host (``infra/hub_host.py``), in one document.

``python -m infra.merge [--out dist/merge-template.json]``
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from infra import operations, template
from infra.hub_host import hub_host


def merge_template() -> dict:
    host = hub_host()  # the location's JupyterHub host (infra/hub_host.py)
    return {
        "Description": "Workshops-on-Demand, serverless: frontend and/or one backend location",
        "Parameters": {**template.parameters(), **operations.parameters(), **host["Parameters"]},
        "Conditions": {**template.conditions(), **operations.conditions(), **host["Conditions"]},
        "Rules": {**operations.rules(), **host["Rules"]},
        "Resources": {**template.platform_resources(), **operations.resources(), **host["Resources"],
                      **template.function_overrides()},
        "Outputs": {**template.outputs(), **operations.outputs(), **host["Outputs"]},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.merge", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=template.ROOT / "dist" / "merge-template.json")
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(merge_template(), indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
