"""Syncing the workshop folders into the stack: workshops and their students are created,
updated and closed (never deleted) in transactions that keep the free-seat counter exact; with a
content bucket (AWS), this location's workshop files are mirrored there for its backend."""
from __future__ import annotations

from collections.abc import Iterator

from chalicelib.adapters.content import BucketContent
from chalicelib.adapters.workshop_folders import Workshop
from chalicelib.services.context import Context
from chalicelib.store.catalog import SyncReport


def sync_workshop(ctx: Context, workshop: Workshop) -> SyncReport:
    return ctx.stores.catalog.sync_workshop(workshop)


def sync(ctx: Context, workshops: list[Workshop]) -> Iterator[str]:
    """Sync every workshop, then close those whose folder is gone; yields a line per change."""
    bucket = ctx.content if ctx.settings.content_bucket else None
    for workshop in workshops:
        if isinstance(bucket, BucketContent) and workshop.spec.location == ctx.settings.location:
            uploaded, deleted = bucket.upload(workshop.spec.id, workshop.folder, workshop.spec.badge)
            yield (f"{workshop.spec.id}: {uploaded} file(s) in s3://{bucket.bucket}/{workshop.spec.id}/"
                   + (f", {deleted} removed" if deleted else ""))
        yield sync_workshop(ctx, workshop).line()
    for closed in ctx.stores.catalog.deactivate_missing({w.spec.id for w in workshops}):
        yield f"{closed}: folder removed, workshop closed for registration"
