"""Who did what, to what, when, and whether it was done or refused: every organiser action."""
from __future__ import annotations

import re
from contextlib import contextmanager
from typing import Any, Iterator

from chalicelib.context import current
from chalicelib.domain.errors import InvalidInput, Unavailable, WodError
from chalicelib.observability import logger
from chalicelib.store import admin as store

ENTRY_ID = re.compile(r"^\d{8}T\d{12}-[0-9a-f]{8}$")
PAGE_MAX = 500


def record(actor: str, action: str, target: str, outcome: str, detail: dict[str, Any]) -> None:
    try:
        store.add_audit(actor, action, target, outcome, detail, current().clock())
    except Unavailable:  # the action itself happened: the log line keeps the record
        logger.exception("audit entry not written", extra={"actor": actor, "action": action, "target": target,
                                                          "outcome": outcome, "detail": detail})


@contextmanager
def audited(actor: str, action: str, target: str, **detail: Any) -> Iterator[dict[str, Any]]:
    """Run an organiser action; the block may add to the yielded detail. A refusal is recorded too."""
    details = dict(detail)
    try:
        yield details
    except WodError as exc:
        record(actor, action, target, "refused", details | {"message": exc.message})
        raise
    record(actor, action, target, "done", details)


def entries(limit: Any = None, before: Any = None) -> list[dict[str, Any]]:
    """Newest first; ``before`` is the id of the last entry of the previous page."""
    current()
    limit = limit or "100"
    if not isinstance(limit, str) or not limit.isdigit() or not 1 <= int(limit) <= PAGE_MAX:
        raise InvalidInput({"limit": f"A number from 1 to {PAGE_MAX}."})
    if before is not None and (not isinstance(before, str) or not ENTRY_ID.match(before)):
        raise InvalidInput({"before": "The id of an audit entry."})
    return store.audit(int(limit), before)
