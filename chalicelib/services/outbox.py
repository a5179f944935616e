"""Deliver what a registration's outbox holds: participant emails and signed orders.

Used right after registration and by the time checks for retries, so a mail
outage delays messages but loses none.
"""
from __future__ import annotations

import time
from datetime import timedelta

from chalicelib.adapters import render
from chalicelib.services import webhooks
from chalicelib.services.context import Context
from chalicelib.domain.errors import Unavailable, WodError
from chalicelib.domain.mail import Email
from chalicelib.domain.orders import SIGNATURE_HEADER, Order, sign
from chalicelib.observability import logger
from chalicelib.adapters.secrets import get_key
from chalicelib.store import outbox as store
from chalicelib.store.models import RegistrationModel, WorkshopModel
from chalicelib.store.seats import get_workshop, waitlist_position

MAX_BACKOFF_STEPS = 6


def status_url(context: Context, registration_id: str) -> str:
    return f"{context.settings.public_url}/registrations/{registration_id}"


def _participant_email(kind: str, reg: RegistrationModel, workshop: WorkshopModel, context: Context) -> Email:
    kind, _, level = kind.partition(":")
    subjects = {
        "level": f"Level {level} reached: {level} workshops completed",
        "welcome": f"You're registered: {workshop.title}",
        "waitlisted": f"You're on the waitlist: {workshop.title}",
        "apology": f"We could not prepare your workshop: {workshop.title}",
        "promoted": f"A seat is yours: {workshop.title}",
        "reminder": f"One hour left: {workshop.title}",
        "thanks": f"Thank you for taking {workshop.title}",
    }
    return render.email(
        kind, to=reg.email, subject=subjects[kind],
        registration=reg, workshop=workshop, status_url=status_url(context, reg.id),
        position=waitlist_position(reg), badge_url=badge_url(context, workshop), level=level,
    )


def badge_url(context: Context, workshop: WorkshopModel) -> str | None:
    if not workshop.badge:
        return None
    if "://" in workshop.badge:
        return workshop.badge
    return f"{context.settings.public_url}/badges/{workshop.id}"


def order_email(action: str, attempt: int, workshop: WorkshopModel, student: str, registration_id: str,
                context: Context, scope: str = "all") -> Email:
    """A signed order to the backend of the workshop's location."""
    address = context.settings.orders_address(workshop.location)
    if not address:
        raise Unavailable(f"no order address is configured for location {workshop.location!r}")
    # issued_at is wall time: it proves freshness to the backend, whatever the business clock says
    order = Order.new(action, workshop.id, student, registration_id, time.time(), attempt, scope)
    body = order.body()
    signature = sign(body, get_key(context.settings, "order_key"))
    return Email(to=address, subject=order.subject, text=body.decode(), headers={SIGNATURE_HEADER: signature})


def build(entry: str, reg: RegistrationModel, workshop: WorkshopModel, context: Context) -> Email:
    kind, _, rest = entry.partition(":")
    if kind == "order":  # order:<ACTION>[:<attempt>[:<scope>]]
        action, _, rest = rest.partition(":")
        attempt, _, scope = rest.partition(":")
        return order_email(action, int(attempt or 0), workshop, reg.student_id or "", reg.id, context, scope or "all")
    return _participant_email(entry, reg, workshop, context)


def deliver(reg: RegistrationModel, context: Context, workshop: WorkshopModel | None = None,
            leased: bool = False) -> list[str]:
    """Send every outbox entry; return what is left for a later try.

    Takes the outbox's lease first unless the caller holds it (a new registration, the
    time checks); when someone else holds it, that sender sends.
    """
    now = context.clock()
    if not leased:
        if not reg.outbox:
            return []
        reg = store.lease(reg.id, now, store_lease(context))
        if reg is None:
            return []
    entries = list(reg.outbox or [])
    if not entries:
        return entries
    error, sent = None, []
    try:
        workshop = workshop or get_workshop(reg.workshop_id)
    except WodError as exc:
        workshop, error = None, exc.message
    for entry in entries if workshop else []:
        try:
            context.mailer.send(build(entry, reg, workshop, context))
        except Unavailable as exc:
            error = exc.message
            logger.warning("outbox entry not sent", extra={"registration": reg.id, "entry": entry, "error": error})
            continue
        sent.append(entry)
        logger.info("outbox entry sent", extra={"registration": reg.id, "entry": entry, "workshop": reg.workshop_id})
        if entry == "reminder":
            webhooks.emit("reminder_sent", reg, context)
    retry = timedelta(seconds=context.settings.outbox_retry_seconds * 2 ** min(reg.outbox_attempts or 0, MAX_BACKOFF_STEPS))
    try:
        store.settle(reg.id, sent, now, retry, error)
    except Unavailable:
        logger.exception("outbox state not saved; the lease expiry will retry", extra={"registration": reg.id})
    return [e for e in entries if e not in sent]


def deliver_due(context: Context) -> int:
    """Retry every registration whose outbox is due; return how many were handled."""
    leased = store.lease_due(context.clock(), store_lease(context))
    for reg in leased:
        deliver(reg, context, leased=True)
    return len(leased)


def store_lease(context: Context) -> timedelta:
    return timedelta(seconds=max(60, context.settings.outbox_retry_seconds))
