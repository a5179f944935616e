"""``python -m chalicelib.catalog {check,sync} [workshops/]``: validate, then sync.

Settings (tables, endpoint, known locations) come from the environment like
everywhere else; ``make sync`` sets them for the local stack. With ``WOD_CONTENT_BUCKET``
set (AWS), the files of each workshop of this location (``WOD_LOCATION``) are mirrored to
that bucket too, where that location's backend reads them.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from chalicelib.adapters.content import content_for
from chalicelib.catalog.folders import load_catalog
from chalicelib.catalog.sync import deactivate_missing, sync_workshop
from chalicelib.domain.errors import WodError
from chalicelib.settings import get_settings
from chalicelib.store import models


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chalicelib.catalog", description=__doc__)
    parser.add_argument("command", choices=["check", "sync"])
    parser.add_argument("folder", nargs="?", default="workshops", type=Path)
    args = parser.parse_args(argv)
    settings = get_settings()
    workshops, problems = load_catalog(args.folder, known_locations=settings.locations.keys())
    for file, where, message in problems:
        print(f"{file}: {where}: {message}", file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s); nothing was synced.", file=sys.stderr)
        return 1
    print(f"{len(workshops)} workshop(s) valid: {', '.join(w.spec.id for w in workshops)}")
    if args.command == "check":
        return 0
    models.bind(settings)
    bucket = content_for(settings) if settings.content_bucket else None
    try:
        for workshop in workshops:
            if bucket and workshop.spec.location == settings.location:
                uploaded, deleted = bucket.upload(workshop.spec.id, workshop.folder, workshop.spec.badge)
                print(f"{workshop.spec.id}: {uploaded} file(s) in s3://{bucket.bucket}/{workshop.spec.id}/"
                      + (f", {deleted} removed" if deleted else ""))
            print(sync_workshop(workshop).line())
        for closed in deactivate_missing({w.spec.id for w in workshops}):
            print(f"{closed}: folder removed, workshop closed for registration")
    except WodError as exc:
        print(f"sync failed: {exc.message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
