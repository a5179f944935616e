"""What the backend reports about a registration's environment (the signed callback):
``ready`` (the clock starts, credentials are emailed), ``failed`` (the seat comes back, with an
apology) and ``cleaned`` (the seat comes back, the thank-you is sent, the waitlist is served)."""
from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import TypeGuard
from urllib.parse import quote

from chalicelib.adapters import render
from chalicelib.domain import languages
from chalicelib.domain.calendar import REQUEST
from chalicelib.domain.errors import Conflict, NotFound, Unavailable
from chalicelib.domain.lifecycle import PROVISIONED, RESET
from chalicelib.domain.orders import OrderRejected
from chalicelib.domain.registration import ACTIVE, FINISHED
from chalicelib.domain.text import N_
from chalicelib.domain.values import Registration
from chalicelib.observability import count, logger, seconds
from chalicelib.services import invitations, outbox, pacing, seats
from chalicelib.services.commit import commit
from chalicelib.services.context import Context

README = "0-ReadMeFirst.ipynb"
ITEM_KEY = re.compile(r"[A-Za-z0-9_-]{1,80}")


def start_link(hub_url: str) -> str:
    """Log in, then land on the ReadMeFirst notebook in the student's own server."""
    return f"{hub_url}/hub/login?next={quote('/hub/user-redirect/lab/tree/' + README, safe='')}"


def _send_credentials(ctx: Context, reg: Registration, password: str, reported_hub: str) -> None:
    """The one email that is never an outbox entry: it carries the password, which is never
    stored. It is urgent mail: it waits a few seconds for the mail budget rather than yield to
    participant mail. The hub link is the workshop location's configured hub, whatever the
    callback reported. It carries the session's calendar invitation with its real start and end."""
    workshop = ctx.stores.seats.get_workshop(reg.workshop_id)
    hub_url = ctx.settings.hub_url_for(workshop.location)
    if reported_hub.rstrip("/") != hub_url:
        logger.warning("a ready callback reported another hub than the location's; the configured one is used",
                       extra={"registration": reg.id, "location": workshop.location, "configured": hub_url})
    language = languages.shipped(reg.language) or languages.DEFAULT
    shown = languages.localized(workshop, language)
    email = render.email(
        "credentials", to=reg.email, subject=N_("Your workshop is ready: %(title)s", title=shown.title),
        language=language, **outbox.mail_context(ctx, reg, shown),
        password=password, hub_url=hub_url, start_url=start_link(hub_url),
    )
    pacing.send(ctx, invitations.with_invitation(ctx, email, reg, shown, REQUEST), urgent=True)


def _key_shaped(value: object) -> TypeGuard[str]:
    """Whether ``value`` can be a registration or student id (an item key): an unsigned body may
    name anything, and an empty or oversized key is a storage error, not a refusal."""
    return isinstance(value, str) and ITEM_KEY.fullmatch(value) is not None


def signer_location(ctx: Context, registration_id: object, student_id: object) -> str:
    """The location whose backend may report on ``registration_id``: its workshop's (for the purge
    of a student that had no registration, ``purge-<student>``, the student's workshop's). A
    callback is verified with that location's key alone, so one location's backend cannot report
    on another's registrations; an unknown registration is refused like a bad signature."""
    if not _key_shaped(registration_id) or not _key_shaped(student_id):  # the store would refuse it
        raise OrderRejected("bad_signature", "the signature is missing or does not match")
    try:
        if registration_id == f"purge-{student_id}":
            workshop_id = ctx.stores.seats.get_student(student_id).workshop_id
        else:
            workshop_id = ctx.stores.registrations.get(registration_id).workshop_id
        return ctx.stores.seats.get_workshop(workshop_id).location
    except NotFound as exc:
        raise OrderRejected("bad_signature", "the signature is missing or does not match") from exc


def take_nonce(ctx: Context, nonce: str, max_age_seconds: int) -> None:
    """A signed callback is taken once: its nonce is kept (past the callback's freshness window)
    and a replay is refused with Conflict."""
    expires = datetime.now(UTC) + timedelta(seconds=max_age_seconds + 60)  # wall time, as the signature's age
    if not ctx.stores.provisioning.remember_nonce(f"callback:{nonce}", expires):
        logger.warning("replayed callback refused", extra={"nonce": nonce[:8]})
        raise Conflict("This callback was already received.")


def ready(ctx: Context, registration_id: str, password: str, hub_url: str) -> str:
    """Registration and student active together, the clock started (once: a repeated ``ready``, a
    retried Deploy, resends the new password without moving the clock)."""
    reg = ctx.stores.registrations.get(registration_id)
    first = reg.status != ACTIVE
    if first:
        workshop = ctx.stores.seats.get_workshop(reg.workshop_id)
        activated = commit(ctx, reg, PROVISIONED, duration=timedelta(minutes=workshop.duration_minutes),
                           scheduled=workshop.starts_at)
        if activated is None:
            reg = ctx.stores.registrations.get(registration_id)
            if reg.status != ACTIVE:
                raise Conflict(f"registration {registration_id} is {reg.status}, not waiting for its environment")
            first = False  # activated meanwhile by a repeated callback
        else:
            reg = activated
    try:
        _send_credentials(ctx, reg, password, hub_url)
    except Unavailable as exc:
        # The seat is provisioned: a mail outage or throttle must not undo it (failing this callback
        # would make the backend compensate). The password is never stored, so a new one is ordered
        # through the outbox, which retries until mail works and then mails it.
        logger.warning("credentials email not sent; a new password is ordered through the outbox",
                       extra={"registration": reg.id, "student": reg.student_id, "error": exc.message})
        count("CredentialsDeferred")
        if commit(ctx, reg, RESET, scope="password") is None:
            logger.warning("no new password ordered: the registration changed meanwhile",
                           extra={"registration": reg.id})
    if first:
        seconds("ProvisioningDuration", (ctx.clock() - reg.created_at).total_seconds() if reg.created_at else 0)
    logger.info("registration active", extra={"registration": reg.id, "student": reg.student_id,
                                              "workshop": reg.workshop_id, "first": first})
    return reg.status


def failed(ctx: Context, registration_id: str, reason: str) -> str:
    """The backend gave up and undid its work (compensation)."""
    count("ProvisioningFailures")
    seats.fail(ctx, ctx.stores.registrations.get(registration_id), reason, compensated=True)
    return "failed"


def cleaned(ctx: Context, registration_id: str, completion: float | None, checks_passed: int | None = None) -> str:
    done = seats.finish(ctx, registration_id, completion, checks_passed)
    return done.status if done else FINISHED
