"""Time checks, run by the schedule (AWS) or the local timer: only what is due, read through
the ``due`` index, every change conditional — a tick that dies halfway is finished by the
next one, and two overlapping ticks do nothing twice."""
from __future__ import annotations

from datetime import timedelta

from chalicelib.services import outbox
from chalicelib.services import webhooks
from chalicelib.services.context import Context, current
from chalicelib.domain.errors import NotFound, Unavailable
from chalicelib.domain.lifecycle import DUE_ACTIVE, DUE_CLEANING, DUE_PROVISIONING
from chalicelib.domain.registration import ACTIVE, EXPIRING, FAILED, PENDING, PROVISIONING
from chalicelib.observability import logger
from chalicelib.store import lifecycle as store
from chalicelib.store import seats
from chalicelib.store import warm as warm_store

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


def top_up_warm_pools(context: Context) -> int:
    """Keep ``warm_pool`` free students of each workshop with a running server, never more than
    the free seats; a WARM order per student, each claimed first so no student is warmed twice."""
    now, stale = context.clock(), timedelta(minutes=context.settings.stuck_minutes)
    ordered = 0
    for workshop in warm_store.pool_workshops():
        free = warm_store.free_students(workshop.id)
        warming = [s for s in free if not s.warm and s.warming_since and s.warming_since > now - stale]
        need = min(int(workshop.warm_pool), int(workshop.seats_free)) - sum(1 for s in free if s.warm) - len(warming)
        for student in [s for s in free if not s.warm and s not in warming][:max(0, need)]:
            cycle = warm_store.mark_warming(student.id, now, stale)
            if cycle is None:
                continue
            try:
                context.mailer.send(outbox.order_email("WARM", cycle % 1000, workshop, student.id,
                                                       f"warm-{student.id}", context))
            except Unavailable as exc:  # the claim expires after `stale`, then the pool is topped up again
                logger.warning("warm order not sent", extra={"student": student.id, "error": exc.message})
                continue
            ordered += 1
    return ordered


def tick(context: Context | None = None) -> dict[str, int]:
    context = context or current()
    settings = context.settings
    retry = timedelta(minutes=settings.cleanup_retry_minutes)
    counts = dict.fromkeys(("read", "stuck", "reminders", "expired", "cleanup_retried", "promoted",
                            "outbox_retried", "warming", "webhooks"), 0)

    for reg in _due(DUE_PROVISIONING, context, counts):
        if reg.status in (PENDING, PROVISIONING) and store.begin_cleanup(
                reg, context.clock(), retry, FAILED, extra_outbox=("apology",)):
            counts["stuck"] += 1
            webhooks.emit("failed", store.get(reg.id), context)
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
    counts["warming"] = top_up_warm_pools(context)
    counts["webhooks"] = webhooks.deliver_due(context)
    if any(counts.values()):
        logger.info("time checks", extra=counts)
    return counts
