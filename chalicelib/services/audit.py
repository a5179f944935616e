"""Who did what, to what, when, and whether it was done, refused or failed: every organiser action.

The log holds no personal data: an entry names registrations, students, workshops and hooks by
their ids, never a participant's email or name, nor the text an organiser searched for.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from chalicelib.domain.errors import InvalidInput, WodError
from chalicelib.domain.organiser import whole_number
from chalicelib.observability import logger
from chalicelib.services.context import Context

ENTRY_ID = re.compile(r"[0-9]{8}T[0-9]{12}-[0-9a-f]{8}")
PAGE_MAX = 500
TARGET_MAX = 200
FIELDS_MAX = 20


class Detail(dict):
    """What an audited block adds to its entry; ``target`` may be named once it is known
    (a new webhook's URL, say, once it is valid)."""

    def __init__(self, target: str, detail: dict[str, Any]):
        super().__init__(detail)
        self.target = target


def record(ctx: Context, actor: str, action: str, target: str, outcome: str, detail: dict[str, Any]) -> None:
    try:
        ctx.stores.organiser.add_audit(actor, action, (target or "-")[:TARGET_MAX], outcome, dict(detail),
                                       ctx.clock())
    except Exception:  # the action itself happened (or failed): the log line keeps the record
        logger.exception("audit entry not written", extra={"actor": actor, "action": action, "target": target,
                                                          "outcome": outcome, "detail": dict(detail)})


def refusal(exc: WodError) -> dict[str, Any]:
    """What a refusal adds to the entry: our own message and, for invalid input, which fields
    were wrong and why (our wording, never the value that was sent)."""
    said: dict[str, Any] = {"message": exc.message}
    if isinstance(exc, InvalidInput):
        said["fields"] = {str(name)[:64]: str(problem)[:300]
                          for name, problem in list(exc.fields.items())[:FIELDS_MAX]}
    return said


@contextmanager
def audited(ctx: Context, actor: str, action: str, target: str, **detail: Any) -> Iterator[Detail]:
    """Run an organiser action, its input checks included; the block may add to the yielded
    detail. A refusal (any :class:`WodError`, invalid input too) is recorded as ``refused``, an
    unexpected failure as ``error`` (then raised on)."""
    details = Detail(target, detail)
    try:
        yield details
    except WodError as exc:
        record(ctx, actor, action, details.target, "refused", details | refusal(exc))
        raise
    except Exception as exc:
        record(ctx, actor, action, details.target, "error", details | {"error": type(exc).__name__})
        raise
    record(ctx, actor, action, details.target, "done", details)


def entries(ctx: Context, limit: Any = None, before: Any = None) -> list[dict[str, Any]]:
    """Newest first; ``before`` is the id of the last entry of the previous page."""
    raw = limit or "100"
    wanted = whole_number(raw, 1, PAGE_MAX) if isinstance(raw, str) else None
    if wanted is None:
        raise InvalidInput({"limit": f"A number from 1 to {PAGE_MAX}."})
    if before is not None and (not isinstance(before, str) or not ENTRY_ID.fullmatch(before)):
        raise InvalidInput({"before": "The id of an audit entry."})
    return ctx.stores.organiser.audit(wanted, before)
