"""Every way a seat comes back: a registration that fails (with an apology), one that finishes
(with its thank-you and badges), and the waitlist that takes the freed seats. Each is one
conditional transaction in the store that also writes what it owes, then one delivery."""
from __future__ import annotations

from datetime import timedelta

from chalicelib.domain.errors import InvalidInput, NotFound
from chalicelib.domain.lifecycle import badge_level
from chalicelib.domain.outbox import Entry, level, mail, order, webhook
from chalicelib.domain.registration import ACTIVE, FAILED
from chalicelib.domain.values import Registration
from chalicelib.observability import logger
from chalicelib.services import outbox
from chalicelib.services.context import Context

FAILED_OUTBOX = [mail("apology"), webhook("failed")]
PROMOTED_OUTBOX = [mail("promoted"), order("CREATE")]


def fail(ctx: Context, reg: Registration, reason: str = "", *, compensated: bool = False,
         order_action: str = "CLEANUP") -> Registration | None:
    """The one failure sequence: the registration fails, the participant gets an apology, the
    ``failed`` webhook fires, and the seat comes back.

    ``compensated``: the backend already undid its work (a ``failed`` callback), so the seat is
    released at once; otherwise (stuck provisioning, a failure after activation, a purge) the
    environment is torn down first by a CLEANUP (or PURGE) order and the seat comes back with
    its report. None when the registration had already moved on (a repeat changes nothing).
    """
    if compensated and reg.status != ACTIVE:
        failed = ctx.stores.provisioning.release(reg.id, reason, ctx.clock(), FAILED_OUTBOX)
    else:
        retry = timedelta(minutes=ctx.settings.cleanup_retry_minutes)
        begun = ctx.stores.lifecycle.begin_cleanup(reg, ctx.clock(), retry, FAILED, FAILED_OUTBOX, order_action)
        failed = ctx.stores.lifecycle.get(reg.id) if begun else None
    if failed is not None:
        outbox.owed(ctx, failed)
        logger.warning("registration failed", extra={"registration": reg.id, "workshop": reg.workshop_id,
                                                      "student": reg.student_id, "reason": reason[:200]})
    return failed


def finish(ctx: Context, registration_id: str, completion: float | None) -> Registration | None:
    """The environment is clean: the seat comes back, the registration closes with its completion
    and, for a workshop that ran, the thank-you (and a level badge reached now) is sent; then the
    waitlist takes the seat. None for a repeated report."""
    if not (completion is None or (isinstance(completion, (int, float)) and 0 <= completion <= 100)):
        raise InvalidInput({"completion": "a percentage or null"})
    store = ctx.stores.lifecycle
    try:
        before: Registration | None = store.get(registration_id)
    except NotFound:
        before = None  # a purge of a student that had no registration
    owed: list[Entry] = [mail("thanks"), webhook("finished")]
    if before is not None and before.status != FAILED:
        done_before = store.finished_workshop_ids(before.email)
        if before.workshop_id not in done_before:  # a workshop taken again reaches no new level
            reached = badge_level(len(done_before) + 1, ctx.settings.badge_levels)
            if reached:
                owed.append(level(reached))
    done = store.finish(registration_id, completion, ctx.clock(), owed)
    if done is None:
        return None
    outbox.owed(ctx, done)
    promote_waitlist(ctx, done.workshop_id)
    logger.info("registration finished, seat freed",
                extra={"registration": registration_id, "workshop": done.workshop_id, "student": done.student_id,
                       "completion": completion, "status": done.status})
    return done


def promote_waitlist(ctx: Context, workshop_id: str) -> int:
    """Fill every free seat of a workshop from its waitlist, oldest first."""
    promoted = 0
    stuck_after = timedelta(minutes=ctx.settings.stuck_minutes)
    while reg := ctx.stores.seats.promote_next(workshop_id, ctx.clock(), stuck_after, PROMOTED_OUTBOX):
        outbox.owed(ctx, reg)
        logger.info("promoted from the waitlist", extra={"registration": reg.id, "workshop": workshop_id,
                                                          "student": reg.student_id})
        promoted += 1
    return promoted

