"""The one commit step of a registration's life: the domain decides what an event changes
(:func:`chalicelib.domain.lifecycle.decide`), the store applies it in one conditional transaction
(:meth:`chalicelib.store.registrations.Registrations.apply`), and then, always here, what the change
owes is delivered and a seat that came back goes to the waitlist. No other service delivers a
change's outbox or promotes the waitlist."""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from chalicelib.domain.errors import WodError
from chalicelib.domain.lifecycle import Rules, decide
from chalicelib.domain.registration import Applicant
from chalicelib.domain.values import Registration, Workshop
from chalicelib.observability import logger
from chalicelib.services import outbox
from chalicelib.services.context import Context
from chalicelib.store.limits import Charge


def rules(ctx: Context) -> Rules:
    settings = ctx.settings
    return Rules(stuck_after=timedelta(minutes=settings.stuck_minutes),
                 reminder=timedelta(minutes=settings.reminder_minutes),
                 cleanup_retry=timedelta(minutes=settings.cleanup_retry_minutes),
                 badge_levels=settings.badge_levels,
                 schedule_lead=timedelta(minutes=settings.schedule_lead_minutes))


def commit(ctx: Context, reg: Registration, event: str, **details: Any) -> Registration | None:
    """Make ``event`` happen to ``reg`` (as read): the registration as written, or None when the
    event does not apply to it or someone changed it first (nothing was written, nothing is owed)."""
    now = ctx.clock()
    change = decide(reg, event, now, rules(ctx), **details)
    if change is None:
        return None
    done = ctx.stores.registrations.apply(reg, change, now)
    if done is None:
        return None
    try:  # the change is written: what follows is retried by the outbox and the time checks if it fails now
        if change.delivers:
            outbox.owed(ctx, done)
        if change.refill:
            refill(ctx, done.workshop_id)
    except WodError as exc:
        logger.warning("a change was written; its delivery or the waitlist waits for the next try",
                       extra={"registration": done.id, "event": event, "error": exc.message})
    return done


def claim(ctx: Context, applicant: Applicant, workshop_id: str, registration_id: str, workshop: Workshop,
          confirm_by: datetime | None, charges: Sequence[Charge]) -> tuple[Registration, Workshop, int | None]:
    """A new registration (``register``): a seat or a waitlist place claimed, what it owes delivered.
    Returns it, the workshop as the claim read it, and its waitlist position (counted once, for
    the answer and the email). The store's refusals (``EmailTaken``, ``LimitReached``) pass through."""
    now = ctx.clock()
    reg, found = ctx.stores.registrations.claim(applicant, workshop_id, registration_id, now, rules(ctx), workshop,
                                                confirm_by, charges)
    position = ctx.stores.registrations.waitlist_position(reg)
    outbox.owed(ctx, reg, found, position=position)
    return reg, found, position


def refill(ctx: Context, workshop_id: str) -> int:
    """Fill every free seat of a workshop from its waitlist, oldest first (``promote``); how many.
    Run after any change that gives a seat back, and by the time checks and a capacity change."""
    promoted = 0
    while reg := ctx.stores.registrations.promote_next(workshop_id, ctx.clock(), rules(ctx)):
        outbox.owed(ctx, reg)
        logger.info("promoted from the waitlist", extra={"registration": reg.id, "workshop": workshop_id,
                                                          "student": reg.student_id})
        promoted += 1
    return promoted
