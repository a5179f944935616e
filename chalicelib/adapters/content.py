"""Where a workshop's files come from: its folder (local mode) — S3 on AWS."""
from __future__ import annotations

from pathlib import Path

from chalicelib.domain.errors import NotFound

EXCLUDED_TOP = {"workshop.yaml", "appliance"}
SKIPPED = {"__pycache__", ".ipynb_checkpoints"}


class FolderContent:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def files(self, workshop_id: str, badge: str | None = None) -> list[tuple[str, bytes]]:
        """Every file a student gets: notebooks and data, not the metadata or the appliance."""
        folder = self.root / workshop_id
        if not folder.is_dir():
            raise NotFound(f"no content folder for {workshop_id} under {self.root}")
        found = []
        for path in sorted(folder.rglob("*")):
            rel = path.relative_to(folder)
            if not path.is_file() or rel.parts[0] in EXCLUDED_TOP or rel.as_posix() == badge:
                continue
            if any(part in SKIPPED or part.startswith(".") for part in rel.parts):
                continue
            found.append((rel.as_posix(), path.read_bytes()))
        return found
