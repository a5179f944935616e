"""Registration use cases shared by the JSON API and the HTML pages: the catalog, claiming a seat
(or a waitlist place), a registration's status."""
from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from chalicelib import observability
from chalicelib.domain.errors import InvalidInput, NotFound, RateLimited
from chalicelib.domain.outbox import mail, order, webhook
from chalicelib.domain.registration import (
    ACTIVE,
    LIVE_STATUSES,
    WAITLISTED,
    Applicant,
    is_registration_id,
    is_workshop_id,
    new_registration_id,
    validate_applicant,
)
from chalicelib.domain.values import Registration, Workshop
from chalicelib.services import outbox
from chalicelib.services.context import Context
from chalicelib.store.seats import EmailTaken

# What a registration owes, written with it in the claiming transaction.
SEATED_OUTBOX = [mail("welcome"), order("CREATE"), webhook("registered")]
WAITLISTED_OUTBOX = [mail("waitlisted"), webhook("registered")]


def workshop_view(w: Workshop) -> dict[str, Any]:
    return {
        "id": w.id,
        "title": w.title,
        "description": w.description,
        "category": w.category,
        "duration_minutes": w.duration_minutes,
        "seats_total": w.seats_total,
        "seats_free": max(0, w.seats_free),
        "waitlist_open": w.seats_free <= 0,
        "active": w.active,
        "beta": w.beta,
        "presenter": w.presenter or {},
        "location": w.location,
        "replay_url": w.replay_url,
        "badge": w.badge,
        "priority": w.priority,
    }


def catalog(ctx: Context, include_inactive: bool = False) -> list[dict[str, Any]]:
    return [workshop_view(w) for w in ctx.stores.seats.list_workshops() if include_inactive or w.active]


def _open_workshop(ctx: Context, workshop_id: str) -> Workshop:
    if not is_workshop_id(workshop_id):
        raise NotFound("There is no such workshop.")
    return ctx.stores.seats.open_workshop(workshop_id)


def workshop(ctx: Context, workshop_id: str) -> dict[str, Any]:
    return workshop_view(_open_workshop(ctx, workshop_id))


def _actions(reg: Registration, workshop: Workshop | None) -> list[str]:
    if reg.status == WAITLISTED:
        return ["leave"]
    if reg.status != ACTIVE:
        return []
    can_extend = workshop is not None and reg.extensions_used < workshop.extension_max
    return (["extend"] if can_extend else []) + ["reset", "end"]


def registration_view(ctx: Context, reg: Registration, workshop: Workshop | None = None,
                      position: int | None = None) -> dict[str, Any]:
    def iso(value):
        return value.isoformat() if value else None

    return {
        "id": reg.id,
        "status": reg.status,
        "workshop": {"id": reg.workshop_id, "title": workshop.title if workshop else None},
        "student": reg.student_id,
        "position": position if position is not None else ctx.stores.seats.waitlist_position(reg),
        "created_at": iso(reg.created_at),
        "started_at": iso(reg.started_at),
        "ends_at": iso(reg.ends_at),
        "finished_at": iso(reg.finished_at),
        "completion": reg.completion,
        "progress": reg.progress,
        "extensions_used": reg.extensions_used,
        "extension_minutes": workshop.extension_minutes if workshop else None,
        "actions": _actions(reg, workshop),
        "status_url": outbox.status_url(ctx, reg.id),
    }


def is_retry_of(held: Registration, applicant: Applicant, workshop_id: str, now: datetime,
                window: timedelta) -> bool:
    """Whether a claim is the client repeating the one that created ``held``: the same body
    (workshop, email, names, company), within ``window`` of it, while ``held`` is live."""
    return (held.workshop_id == workshop_id and held.email == applicant.email
            and held.first_name == applicant.first_name and held.last_name == applicant.last_name
            and held.company == applicant.company and held.status in LIVE_STATUSES
            and held.created_at is not None and now - held.created_at < window)


def _repeated(ctx: Context, taken: EmailTaken, applicant: Applicant, workshop_id: str,
              now: datetime) -> Registration:
    """The registration a repeated claim already made; the conflict itself when it is not a repeat."""
    try:
        held = ctx.stores.seats.get_registration(taken.registration_id)
    except NotFound:
        raise taken from None
    if not is_retry_of(held, applicant, workshop_id, now, timedelta(seconds=ctx.settings.claim_retry_seconds)):
        raise taken
    return held


def _limit(ctx: Context, client: str | None, applicant: Applicant) -> None:
    """Per client address and per email domain, per minute (wall time); RateLimited beyond. A
    client limit of 0 turns both off (a load benchmark from one machine, for one domain)."""
    if ctx.settings.rate_limit_per_minute <= 0:
        return
    checks = [("client", client, ctx.settings.rate_limit_per_minute),
              ("domain", applicant.email.rsplit("@", 1)[-1].lower(), ctx.settings.domain_rate_limit_per_minute)]
    for scope, value, limit in checks:
        if not value or limit <= 0:
            continue
        wait = ctx.stores.limits.hit(scope, value, limit, time.time())
        if wait is not None:
            observability.count("RateLimited")
            what = "from your network" if scope == "client" else f"for addresses at {value}"
            raise RateLimited(f"Too many registrations {what} right now; please try again in {wait} seconds.",
                              wait)


def register(ctx: Context, data: Any, workshop_id: Any = None, client: str | None = None) -> dict[str, Any]:
    """Validate, claim a seat (or a waitlist place) atomically, then deliver what it owes.

    A claim repeated with the same body within ``WOD_CLAIM_RETRY_SECONDS`` (a client retrying
    after a timeout) answers with the registration the first one made, and delivers nothing:
    the first claim delivers what that registration owes.
    """
    if workshop_id is None:
        workshop_id = data.get("workshop") if isinstance(data, dict) else None
        if workshop_id is None or (isinstance(workshop_id, str) and not workshop_id.strip()):
            raise InvalidInput({"workshop": "Choose a workshop."})
        if not isinstance(workshop_id, str):
            raise InvalidInput({"workshop": "The workshop must be given by its id, as text."})
    applicant = validate_applicant(data, ctx.settings.deny_domains)
    _limit(ctx, client, applicant)
    now = ctx.clock()
    opened = _open_workshop(ctx, workshop_id)
    try:
        reg, found = ctx.stores.seats.register(applicant, workshop_id, new_registration_id(), now,
                                               SEATED_OUTBOX, WAITLISTED_OUTBOX, opened,
                                               timedelta(minutes=ctx.settings.stuck_minutes))
    except EmailTaken as taken:
        held = _repeated(ctx, taken, applicant, workshop_id, now)
        observability.count("RepeatedRegistrations")
        return registration_view(ctx, held, opened)
    position = ctx.stores.seats.waitlist_position(reg)  # counted once, for the answer and the email
    outbox.deliver(ctx, reg, found, leased=True, position=position)  # created with the lease held
    observability.count("Waitlisted" if reg.status == WAITLISTED else "Registrations")
    observability.gauge("SeatsFree", found.seats_free, workshop=found.id)
    return registration_view(ctx, reg, found, position)


def registration(ctx: Context, registration_id: str) -> Registration:
    """The registration of a well-formed id; NotFound otherwise."""
    if not is_registration_id(registration_id):
        raise NotFound("No registration has this id.")
    return ctx.stores.seats.get_registration(registration_id)


def status(ctx: Context, registration_id: str) -> dict[str, Any]:
    reg = registration(ctx, registration_id)
    try:
        found: Workshop | None = ctx.stores.seats.get_workshop(reg.workshop_id)
    except NotFound:
        found = None
    return registration_view(ctx, reg, found)


def workshop_badge(ctx: Context, workshop_id: str) -> tuple[bytes, str] | None:
    """The badge file of a workshop (bytes, suffix), read from the content folder."""
    if not is_workshop_id(workshop_id):
        return None
    found = ctx.stores.seats.get_workshop(workshop_id)
    if not found.badge or "://" in found.badge:
        return None
    folder = Path(ctx.settings.workshops_dir) / found.id
    path = (folder / found.badge).resolve()
    if folder.resolve() not in path.parents or path.suffix.lower() not in (".svg", ".png") or not path.is_file():
        return None
    return path.read_bytes(), path.suffix.lower()
