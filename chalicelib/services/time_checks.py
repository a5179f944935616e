"""Time checks, run by the schedule (AWS) or the local timer: only what is due, read through
the ``due`` index, every change conditional — a tick that dies halfway is finished by the
next one, and two overlapping ticks do nothing twice."""
from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from chalicelib.domain.errors import NotFound, Unavailable, WodError
from chalicelib.domain.lifecycle import (
    DUE_ACTIVE,
    DUE_CLEANING,
    DUE_CONFIRMING,
    DUE_PROVISIONING,
    DUE_SCHEDULED,
    END,
    REMIND,
    RETRY_CLEANUP,
    START,
)
from chalicelib.domain.registration import ACTIVE, PENDING, PROVISIONING, UNCONFIRMED
from chalicelib.domain.values import Registration, Student, Workshop
from chalicelib.domain.warming import warm_target
from chalicelib.observability import logger
from chalicelib.services import event_report, outbox, pacing, participant, seats, webhooks
from chalicelib.services.commit import commit, refill
from chalicelib.services.context import Context

STUCK = "provisioning did not finish in time"


def _due(ctx: Context, state: str, counts: dict[str, int]) -> Iterator[Registration]:
    now = ctx.clock()
    for registration_id in ctx.stores.registrations.due(state, now):
        counts["read"] += 1
        try:
            reg = ctx.stores.registrations.get(registration_id)
        except NotFound:
            continue
        if reg.due_state == state and reg.due_at and reg.due_at <= now:
            yield reg


def top_up_warm_pools(ctx: Context) -> int:
    """Keep each workshop's warm pool at its target (``domain/warming.py``: the folder's pool, or the
    turnout an organiser expects around a scheduled start); a WARM order per student, each claimed
    first so no student is warmed twice; past the target, the spare warm servers are torn down
    (a PURGE of the free student: it stays free, cold). At most ``warm_at_once`` servers warm at
    the same time, all workshops together; the rest are ordered by the next time checks, as those
    become warm (the hub's own spawn limit paces the starts: its 429 is waited out, not a failure).
    Returns the orders sent."""
    now, stale = ctx.clock(), timedelta(minutes=ctx.settings.stuck_minutes)
    lead, drain = timedelta(minutes=ctx.settings.warm_lead_minutes), timedelta(minutes=ctx.settings.warm_drain_minutes)
    store = ctx.stores.warm
    pools = [(workshop, store.free_students(workshop.id)) for workshop in store.pool_workshops()]
    in_flight = {w.id: [s for s in free if not s.warm and s.warming_since and s.warming_since > now - stale]
                 for w, free in pools}
    room = ctx.settings.warm_at_once - sum(len(students) for students in in_flight.values())
    ordered = 0
    wanted: list[tuple[Workshop, list[Student]]] = []
    for workshop, free in pools:
        warming = in_flight[workshop.id]
        warm = [s for s in free if s.warm]
        need = warm_target(workshop, now, lead, drain) - len(warm) - len(warming)
        for student in warm[:max(0, -need)]:
            if store.mark_cold(student.id):
                ordered += _order(ctx, "PURGE", 0, workshop, student.id, f"purge-{student.id}")
        wanted.append((workshop, [s for s in free if not s.warm and s not in warming][:max(0, need)]))
    for workshop, student in _in_turn(wanted):  # one workshop's large turnout does not starve the others
        if room <= 0:
            break
        cycle = store.mark_warming(student.id, now, stale)
        if cycle is not None:  # an order not sent: the claim expires after `stale`, then it is tried again
            room -= 1
            ordered += _order(ctx, "WARM", cycle % 1000, workshop, student.id, f"warm-{student.id}")
    return ordered


def _in_turn(wanted: list[tuple[Workshop, list[Student]]]) -> Iterator[tuple[Workshop, Student]]:
    """One student of each workshop in turn, then the next of each, ..."""
    for turn in range(max((len(students) for _, students in wanted), default=0)):
        for workshop, students in wanted:
            if turn < len(students):
                yield workshop, students[turn]


def _order(ctx: Context, action: str, attempt: int, workshop: Workshop, student_id: str, registration: str) -> int:
    try:
        pacing.send(ctx, outbox.order_email(ctx, action, attempt, workshop, student_id, registration), urgent=True)
    except Unavailable as exc:
        logger.warning("warm pool order not sent", extra={"student": student_id, "action": action,
                                                          "error": exc.message})
        return 0
    return 1


def _step(ctx: Context, reg: Registration) -> str | None:
    """What the time has come for, done for one due registration; the name it is counted under."""
    if reg.due_state == DUE_CONFIRMING:  # a hold nobody confirmed: its seat goes to the waitlist
        return "unconfirmed" if reg.status == UNCONFIRMED and participant.release_hold(ctx, reg) else None
    if reg.due_state == DUE_SCHEDULED:  # a scheduled session comes: its environment is ordered
        return "started" if commit(ctx, reg, START) else None
    if reg.due_state == DUE_PROVISIONING:
        return "stuck" if reg.status in (PENDING, PROVISIONING) and seats.fail(ctx, reg, STUCK) else None
    if reg.due_state == DUE_ACTIVE:
        if reg.status != ACTIVE or reg.ends_at is None:
            return None
        if ctx.clock() >= reg.ends_at:
            return "expired" if commit(ctx, reg, END) else None
        return "reminders" if not reg.reminder_sent and commit(ctx, reg, REMIND) else None
    return "cleanup_retried" if commit(ctx, reg, RETRY_CLEANUP) else None


def tick(ctx: Context) -> dict[str, int]:
    counts = dict.fromkeys(("read", "unconfirmed", "started", "stuck", "reminders", "expired", "cleanup_retried",
                            "promoted", "outbox_retried", "warming", "webhooks", "reports", "errors"), 0)
    for state in (DUE_CONFIRMING, DUE_SCHEDULED, DUE_PROVISIONING, DUE_ACTIVE, DUE_CLEANING):
        for reg in _due(ctx, state, counts):
            try:
                done = _step(ctx, reg)
            except WodError as exc:  # one registration's trouble (a write that lost a race) waits for the next run
                counts["errors"] += 1
                logger.warning("time check left for the next run", extra={"registration": reg.id, "state": state,
                                                                          "error": exc.message})
                continue
            if done:
                counts[done] += 1
    for workshop_id in ctx.stores.seats.workshops_with_waitlist():
        counts["promoted"] += refill(ctx, workshop_id)
    counts["outbox_retried"] = outbox.deliver_due(ctx)
    counts["warming"] = top_up_warm_pools(ctx)
    counts["webhooks"] = webhooks.deliver_due(ctx)
    counts["reports"] = event_report.send_due(ctx)
    if any(counts.values()):
        logger.info("time checks", extra=counts)
    return counts
