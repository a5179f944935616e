"""``python -m chalicelib.catalog {check,sync} [workshops/]``: validate, then sync.

``check`` also runs each notebook that has exercise checks, reference solutions in place, in a
real Jupyter kernel (``catalog/reference.py``; ``--no-run`` skips it, ``--kernel-python`` names
the Python to run it with: by default the participants' servers' ``.venv-hub``;
``--cell-timeout`` bounds each cell, 60 s).

Settings (tables, endpoint, known locations) come from the environment like
everywhere else; ``make sync`` sets them for the local stack. With ``WOD_CONTENT_BUCKET``
set (AWS), the files of each workshop of this location (``WOD_LOCATION``) are mirrored to
that bucket too, where that location's backend reads them.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from chalicelib.adapters.workshop_folders import load_catalog
from chalicelib.domain.errors import WodError
from chalicelib.services import catalog
from chalicelib.services.bootstrap import build
from chalicelib.settings import get_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chalicelib.catalog", description=__doc__)
    parser.add_argument("command", choices=["check", "sync"])
    parser.add_argument("folder", nargs="?", default="workshops", type=Path)
    parser.add_argument("--no-run", action="store_true", help="check: do not run the reference solutions")
    parser.add_argument("--kernel-python", help="check: the Python that runs them (ipykernel installed)")
    parser.add_argument("--cell-timeout", type=int, default=60, help="check: seconds a cell may run (default 60)")
    args = parser.parse_args(argv)
    settings = get_settings()
    workshops, problems = load_catalog(args.folder, known_locations=settings.locations.keys())
    if settings.content_bucket and not settings.ecs_cluster:  # on AWS, appliances run as ECS tasks
        problems += [(f"{w.folder.name}/workshop.yaml", "appliance",
                      "this workshop needs an appliance per student, which on AWS runs in an ECS cluster: set the "
                      "stack's EcsCluster parameter (WOD_ECS_CLUSTER), or leave this workshop out")
                     for w in workshops if w.spec.appliance and w.spec.location == settings.location]
    if args.command == "check" and not args.no_run and not problems:
        from chalicelib.catalog.reference import run_checks

        problems += run_checks(workshops, args.folder, python=args.kernel_python, cell_timeout=args.cell_timeout)
    for file, where, message in problems:
        print(f"{file}: {where}: {message}", file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s); nothing was synced.", file=sys.stderr)
        return 1
    print(f"{len(workshops)} workshop(s) valid: {', '.join(w.spec.id for w in workshops)}")
    if args.command == "check":
        return 0
    try:
        for line in catalog.sync(build(settings), workshops):
            print(line)
    except WodError as exc:
        print(f"sync failed: {exc.message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
