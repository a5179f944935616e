"""Time checks, run by the schedule (AWS) or the local timer: only what is due, read through
the ``due`` index, every change conditional — a tick that dies halfway is finished by the
next one, and two overlapping ticks do nothing twice."""
from __future__ import annotations

from datetime import timedelta

from chalicelib import outbox
from chalicelib.context import Context, current
from chalicelib.domain.errors import NotFound
from chalicelib.domain.lifecycle import DUE_ACTIVE, DUE_CLEANING, DUE_PROVISIONING
from chalicelib.domain.registration import ACTIVE, EXPIRING, FAILED, PENDING, PROVISIONING
from chalicelib.observability import logger
from chalicelib.store import lifecycle as store
from chalicelib.store import seats

PROMOTED_OUTBOX = ["promoted", "order:CREATE"]


def _due(state: str, context: Context, counts: dict[str, int]):
    now = context.clock()
    for registration_id in store.due(state, now):
        counts["read"] += 1
        try:
            reg = store.get(registration_id)
        except NotFound:
            continue
        if reg.due_state == state and reg.due_at and reg.due_at <= now:
            yield reg


def promote_waitlist(context: Context, workshop_id: str) -> int:
    """Fill every free seat of a workshop from its waitlist, oldest first."""
    promoted = 0
    stuck_after = timedelta(minutes=context.settings.stuck_minutes)
    while reg := seats.promote_next(workshop_id, context.clock(), stuck_after, PROMOTED_OUTBOX):
        outbox.deliver(reg, context)
        logger.info("promoted from the waitlist", extra={"registration": reg.id, "workshop": workshop_id,
                                                          "student": reg.student_id})
        promoted += 1
    return promoted


def tick(context: Context | None = None) -> dict[str, int]:
    context = context or current()
    settings = context.settings
    retry = timedelta(minutes=settings.cleanup_retry_minutes)
    counts = dict.fromkeys(("read", "stuck", "reminders", "expired", "cleanup_retried", "promoted",
                            "outbox_retried"), 0)

    for reg in _due(DUE_PROVISIONING, context, counts):
        if reg.status in (PENDING, PROVISIONING) and store.begin_cleanup(
                reg, context.clock(), retry, FAILED, extra_outbox=("apology",)):
            counts["stuck"] += 1
    for reg in _due(DUE_ACTIVE, context, counts):
        if reg.status != ACTIVE:
            continue
        if context.clock() >= reg.ends_at:
            counts["expired"] += store.begin_cleanup(reg, context.clock(), retry, EXPIRING)
        elif not reg.reminder_sent:
            counts["reminders"] += store.mark_reminded(reg, context.clock())
    for reg in _due(DUE_CLEANING, context, counts):
        counts["cleanup_retried"] += store.retry_cleanup(reg, context.clock(), retry)
    for workshop_id in seats.workshops_with_waitlist():
        counts["promoted"] += promote_waitlist(context, workshop_id)
    counts["outbox_retried"] = outbox.deliver_due(context)
    if any(counts.values()):
        logger.info("time checks", extra=counts)
    return counts
