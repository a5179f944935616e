"""Where a workshop's files come from: its folder (local mode) or the content bucket (AWS).

Both give the same files: notebooks and data, not ``workshop.yaml``, the appliance, the
badge, hidden files or caches. ``python -m chalicelib.catalog sync`` mirrors each folder
to ``<bucket>/<workshop id>/`` when ``WOD_CONTENT_BUCKET`` is set.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from chalicelib.domain.errors import NotFound

EXCLUDED_TOP = {"workshop.yaml", "appliance"}
SKIPPED = {"__pycache__", ".ipynb_checkpoints"}


def delivered(rel: str, badge: str | None = None) -> bool:
    """Is this path (relative to the workshop folder) a file students get?"""
    parts = rel.split("/")
    if parts[0] in EXCLUDED_TOP or rel == badge:
        return False
    return not any(part in SKIPPED or part.startswith(".") for part in parts)


def folder_files(folder: Path, badge: str | None = None) -> list[tuple[str, Path]]:
    return [(path.relative_to(folder).as_posix(), path) for path in sorted(folder.rglob("*"))
            if path.is_file() and delivered(path.relative_to(folder).as_posix(), badge)]


class FolderContent:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def files(self, workshop_id: str, badge: str | None = None) -> list[tuple[str, bytes]]:
        """Every file a student gets, as ``(relative path, bytes)``."""
        folder = self.root / workshop_id
        if not folder.is_dir():
            raise NotFound(f"no content folder for {workshop_id} under {self.root}")
        return [(rel, path.read_bytes()) for rel, path in folder_files(folder, badge)]


class BucketContent:
    """The same files from S3: ``<bucket>/<workshop id>/<relative path>``."""

    def __init__(self, s3: Callable[[], Any], bucket: str):
        self._s3 = s3
        self.bucket = bucket

    def _keys(self, prefix: str) -> list[str]:
        keys = []
        for page in self._s3().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            keys += [item["Key"] for item in page.get("Contents", [])]
        return sorted(keys)

    def files(self, workshop_id: str, badge: str | None = None) -> list[tuple[str, bytes]]:
        prefix = f"{workshop_id}/"
        keys = [key for key in self._keys(prefix) if delivered(key[len(prefix):], badge)]
        if not keys:
            raise NotFound(f"no content for {workshop_id} in s3://{self.bucket}/{prefix}")
        s3 = self._s3()
        return [(key[len(prefix):], s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()) for key in keys]

    def upload(self, workshop_id: str, folder: Path, badge: str | None = None) -> tuple[int, int]:
        """Mirror a folder: put every delivered file, delete what the folder no longer has.
        Returns ``(uploaded, deleted)``."""
        prefix = f"{workshop_id}/"
        s3 = self._s3()
        wanted = {prefix + rel: path for rel, path in folder_files(folder, badge)}
        for key, path in wanted.items():
            s3.put_object(Bucket=self.bucket, Key=key, Body=path.read_bytes())
        stale = [key for key in self._keys(prefix) if key not in wanted]
        for start in range(0, len(stale), 1000):
            s3.delete_objects(Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in stale[start:start + 1000]]})
        return len(wanted), len(stale)


def content_for(settings) -> FolderContent | BucketContent:
    if settings.content_bucket:
        from chalicelib.adapters.aws import client_for

        return BucketContent(lambda: client_for("s3", settings), settings.content_bucket)
    return FolderContent(settings.workshops_dir)
