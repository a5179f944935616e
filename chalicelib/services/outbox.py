"""The one dispatcher of outbox entries (docs/architecture.md, "Outbox").

A state change writes what it owes (emails, signed orders, webhook events) on the registration,
as :class:`~chalicelib.domain.outbox.Entry` values, in its own transaction. :func:`deliver` sends
them right after it; the time checks call :func:`deliver_due` for whatever failed, with backoff,
so a mail outage delays messages but loses none. A sender holds the outbox's lease while it
works, and removes only the entries it delivered. Every email goes through the shared mail budget
(:mod:`chalicelib.services.pacing`): orders first; participant mail past its share of a second
stays in the outbox, due at once, without counting as a failure.
"""
from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import timedelta
from functools import partial
from typing import Any

from chalicelib.adapters import render
from chalicelib.adapters.mail import MailThrottled
from chalicelib.domain import calendar, languages
from chalicelib.domain.checks import earned
from chalicelib.domain.errors import Unavailable, WodError
from chalicelib.domain.mail import REGISTRATION_HEADER, Email
from chalicelib.domain.orders import SIGNATURE_HEADER, Order, sign
from chalicelib.domain.outbox import MAIL, ORDER, WEBHOOK, Entry, mail, webhook
from chalicelib.domain.text import N_
from chalicelib.domain.values import Registration, Workshop
from chalicelib.observability import logger
from chalicelib.services import invitations, links, pacing, webhooks
from chalicelib.services.context import Context

MAX_BACKOFF_STEPS = 6
DISPATCH_WAIT_SECONDS = 3.0  # how long a batch of the dispatcher waits for the mail rate (the next batch waits too)
DRAIN_SECONDS = 30.0  # how long one run of the time checks goes on sending a backlog (the Lambda has 60 s)
# A webhook event that announces an email waits until that email has gone.
ANNOUNCES = {webhook("reminder_sent"): mail("reminder")}
SUBJECTS = {
    "confirm": N_("Confirm your seat: %(title)s"),
    "already": N_("You are already registered: %(title)s"),
    "welcome": N_("You're registered: %(title)s"),
    "waitlisted": N_("You're on the waitlist: %(title)s"),
    "apology": N_("We could not prepare your workshop: %(title)s"),
    "promoted": N_("A seat is yours: %(title)s"),
    "reminder": N_("One hour left: %(title)s"),
    "extended": N_("More time: %(title)s"),
    "rescheduled": N_("New time: %(title)s"),
    "thanks": N_("Thank you for taking %(title)s"),
    "level": N_("Level %(level)s reached: %(level)s workshops completed"),
}


def badge_url(ctx: Context, workshop: Workshop) -> str | None:
    if not workshop.badge:
        return None
    if "://" in workshop.badge:
        return workshop.badge
    return f"{ctx.settings.public_url}/badges/{workshop.id}"


def order_email(ctx: Context, action: str, attempt: int, workshop: Workshop, student: str, registration_id: str,
                scope: str = "all") -> Email:
    """A signed order to the backend of the workshop's location, with that location's order key."""
    address = ctx.settings.orders_address(workshop.location)
    if not address:
        raise Unavailable(f"no order address is configured for location {workshop.location!r}")
    # issued_at is wall time: it proves freshness to the backend, whatever the business clock says
    order = Order.new(action, workshop.id, student, registration_id, time.time(), attempt, scope)
    body = order.body()
    return Email(to=address, subject=order.subject, text=body.decode(),
                 headers={SIGNATURE_HEADER: sign(body, ctx.key("order_key", workshop.location))})


def mail_context(ctx: Context, reg: Registration, workshop: Workshop) -> dict[str, Any]:
    """What every mail to a participant is rendered with: the registration's header (which names it
    to the bounce reader), the registration, the workshop (as the mail's language shows it), the
    participant's links."""
    return {"headers": {REGISTRATION_HEADER: reg.id}, "registration": reg, "workshop": workshop,
            "status_url": links.status_url(ctx, reg.id), "page_url": partial(links.page_url, ctx, reg.id)}


def participant_email(ctx: Context, name: str, reg: Registration, workshop: Workshop, level: int = 0,
                      position: int | None = None) -> Email:
    """``position``: the waitlist place, when the caller has just counted it. The welcome, promotion
    and extension emails carry the session's calendar invitation; the thank-you of a session that
    ended early and the apology cancel it (:func:`chalicelib.domain.calendar.method_for`). In the
    registration's language, the workshop's title too."""
    language = languages.shipped(reg.language) or languages.DEFAULT
    workshop = languages.localized(workshop, language)
    email = render.email(
        name, to=reg.email, subject=SUBJECTS[name].filled(title=workshop.title, level=level), language=language,
        **mail_context(ctx, reg, workshop),
        position=position if position is not None else ctx.stores.registrations.waitlist_position(reg),
        badge_url=badge_url(ctx, workshop) if earned(reg.badge_earned, workshop.checks, reg.completion,
                                                       reg.checks_passed) else None,
        verifiable_badge=links.verifiable_badge(ctx, reg, workshop),
        level=level,
    )
    return invitations.with_invitation(ctx, email, reg, workshop, calendar.method_for(name, reg))


def _send(ctx: Context, entry: Entry, reg: Registration, workshop: Workshop | None,
          position: int | None = None) -> None:
    if entry.kind == WEBHOOK:
        webhooks.emit(ctx, entry.action, reg)
        return
    if workshop is None:
        raise Unavailable(f"workshop {reg.workshop_id} could not be read")
    if entry.kind == ORDER:
        pacing.send(ctx, order_email(ctx, entry.action, entry.attempt, workshop, reg.student_id or "", reg.id,
                                     entry.scope), urgent=True)
    elif entry.kind == MAIL:
        pacing.send(ctx, participant_email(ctx, entry.action, reg, workshop, entry.attempt, position), urgent=False)


def deliver(ctx: Context, reg: Registration | None, workshop: Workshop | None = None,
            leased: bool = False, position: int | None = None) -> list[Entry]:
    """Send every outbox entry of ``reg``; return what is left for a later try.

    Takes the outbox's lease first unless the caller holds it (a new registration, the time
    checks); when someone else holds it, that sender sends. ``position``: the registration's
    waitlist place, when the caller has just counted it.
    """
    if reg is None:
        return []
    now = ctx.clock()
    if not leased:
        if not reg.outbox:
            return []
        taken = ctx.stores.outbox.lease(reg.id, now, lease_time(ctx))
        if taken is None:
            return []
        reg = taken
    entries = list(reg.outbox)
    if not entries:
        ctx.stores.outbox.settle(reg.id, [], now, timedelta(0), None)  # nothing left: the lease goes
        return entries
    error, sent = None, []
    try:
        workshop = workshop or ctx.stores.seats.get_workshop(reg.workshop_id)
    except WodError as exc:
        workshop, error = None, exc.message
    for entry in entries:
        if ANNOUNCES.get(entry) in entries and ANNOUNCES[entry] not in sent:
            continue  # its email is still to go: announced once it has
        try:
            _send(ctx, entry, reg, workshop, position)
        except MailThrottled as exc:
            if exc.daily:  # not before the quota renews: back off as for an outage
                error = exc.message
            logger.info("outbox entry waits for the mail rate", extra={"registration": reg.id,
                                                                      "entry": entry.format(), "reason": exc.message})
            continue
        except Unavailable as exc:
            error = exc.message
            logger.warning("outbox entry not sent", extra={"registration": reg.id, "entry": entry.format(),
                                                           "error": error})
            continue
        sent.append(entry)
        logger.info("outbox entry sent", extra={"registration": reg.id, "entry": entry.format(),
                                                "workshop": reg.workshop_id})
    retry = timedelta(seconds=ctx.settings.outbox_retry_seconds * 2 ** min(reg.outbox_attempts, MAX_BACKOFF_STEPS))
    try:
        ctx.stores.outbox.settle(reg.id, sent, now, retry, error, expected=entries)
    except Unavailable:
        logger.exception("outbox state not saved; the lease expiry will retry", extra={"registration": reg.id})
    return [e for e in entries if e not in sent]


def owed(ctx: Context, reg: Registration | None, workshop: Workshop | None = None,
         position: int | None = None) -> None:
    """A state change wrote what ``reg`` owes: deliver it now (``WOD_OUTBOX_DISPATCH=inline``), or
    leave it to :func:`dispatch`, which reads it from the registrations' stream (``stream``: the
    request that made the change answers without waiting for mail)."""
    if ctx.settings.outbox_dispatch == "inline":
        deliver(ctx, reg, workshop, position=position)


def dispatch(ctx: Context, records: Iterable[dict[str, Any]]) -> int:
    """The dispatcher: deliver what each registration written in ``records`` (stream records, the
    oldest first) owes now, those owing an order first; return how many were delivered. A record
    whose outbox someone else holds, or that waits for its retry time, is left to them; the time
    checks (:func:`deliver_due`) deliver whatever a lost record left behind. Participant mail that
    this second's budget has no room for waits for the next window when it starts within
    ``DISPATCH_WAIT_SECONDS`` of the batch. Entries left due at once (mail deferred for the rate)
    are retried in the next window of the mail budget: their settle is itself a record, which
    would otherwise be retried as fast as the stream is read."""
    now = ctx.clock()
    owing: dict[str, tuple[Registration, bool]] = {}
    for record in records:
        found = ctx.stores.outbox.owing(record, now)
        if found is not None:
            owing[found[0].id] = found
        elif record.get("dynamodb", {}).get("Keys", {}).get("id", {}).get("S") in owing:
            owing.pop(record["dynamodb"]["Keys"]["id"]["S"])  # a later write: someone took it meanwhile
    fresh = [reg for reg, added in owing.values() if added]
    retries = [reg for reg, added in owing.values() if not added]
    pacer = ctx.pacer
    wait_until = pacer.now() + DISPATCH_WAIT_SECONDS
    for reg in sorted(fresh, key=lambda reg: not owes_order(reg)):
        plan = pacer.budget()
        if not owes_order(reg) and pacer.spent(plan, urgent=False) and plan.next_start(pacer.now()) <= wait_until:
            pacer.wait_next_window(plan)  # rather than lease, try and settle it in vain
        deliver(ctx, reg)
    if retries:
        ctx.pacer.wait_next_window(ctx.pacer.budget())
    for reg in sorted(retries, key=lambda reg: not owes_order(reg)):
        deliver(ctx, reg)
    return len(owing)


def owes_order(reg: Registration) -> bool:
    return any(entry.kind == ORDER for entry in reg.outbox)


def deliver_due(ctx: Context, drain_seconds: float = DRAIN_SECONDS) -> int:
    """Send every due outbox at the mail rate; return how many registrations were handled.

    Each round leases as many due registrations as one window of the budget can send, delivers
    those that owe an order first, and the next round starts with the next window; rounds go on
    while a whole batch was due or mail waited for the rate (a failure is due only after its
    backoff), for ``drain_seconds`` at most: the next run takes the rest."""
    pacer = ctx.pacer
    give_up = pacer.now() + drain_seconds
    handled: set[str] = set()
    while not pacer.paused():
        plan = pacer.budget()
        leased = ctx.stores.outbox.lease_due(ctx.clock(), lease_time(ctx), limit=plan.urgent)
        waits = pacer.waits
        for reg in sorted(leased, key=lambda reg: not owes_order(reg)):
            deliver(ctx, reg, leased=True)
        handled.update(reg.id for reg in leased)
        waiting = pacer.waits > waits
        if not leased or (len(leased) < plan.urgent and not waiting) or plan.next_start(pacer.now()) > give_up:
            break
        pacer.wait_next_window(plan)
    return len(handled)


def lease_time(ctx: Context) -> timedelta:
    return timedelta(seconds=max(60, ctx.settings.outbox_retry_seconds))
