"""Registration use cases shared by the JSON API and the HTML pages: the catalog, claiming a seat
(or a waitlist place). What follows a claim (confirming it, its status, the participant's actions)
is :mod:`chalicelib.services.participant`'s.

Registering answers the same whatever happened (:data:`RECEIVED`): a new hold, a client's retry, or
an address that already has a live registration (which gets a short email with its link instead).
Nobody learns from the answer whether an address is registered."""
from __future__ import annotations

import dataclasses
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from chalicelib import observability
from chalicelib.domain.errors import InvalidInput, NotFound, RateLimited, Unavailable
from chalicelib.domain.languages import DEFAULT, localized
from chalicelib.domain.lifecycle import ALREADY_OUTBOX, NOTIFY
from chalicelib.domain.registration import (
    LIVE_STATUSES,
    UNCONFIRMED,
    WAITLISTED,
    Applicant,
    client_key,
    confirm_window,
    in_venue,
    is_workshop_id,
    new_registration_id,
    validate_applicant,
)
from chalicelib.domain.text import N_
from chalicelib.domain.values import Registration, Workshop
from chalicelib.services.commit import claim, commit
from chalicelib.services.context import Context
from chalicelib.services.participant import registration_view
from chalicelib.store.limits import Charge, LimitReached
from chalicelib.store.registrations import EmailTaken

# At most one "you are already registered" email per mailbox in this many seconds.
ALREADY_WINDOW_SECONDS = 300
# Registering mails one mailbox at most ``settings.mailbox_mails_per_day`` times a day (UTC): anyone may type
# an address, so this bounds what a stranger makes the platform send it.
RECEIVED = {"status": "received",
            "message": N_("Check your mailbox: the next step is in the email we have sent to this address.")}


def workshop_view(w: Workshop, language: str = DEFAULT) -> dict[str, Any]:
    """What the catalog shows of a workshop, its title and description in ``language`` if it has them."""
    shown = localized(w, language)
    return {
        "id": w.id,
        "title": shown.title,
        "description": shown.description,
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
        "starts_at": w.starts_at.isoformat() if w.starts_at else None,
    }


def catalog(ctx: Context, language: str = DEFAULT, include_inactive: bool = False) -> list[dict[str, Any]]:
    return [workshop_view(w, language) for w in ctx.stores.recent.all() if include_inactive or w.active]


def _open_workshop(ctx: Context, workshop_id: str) -> Workshop:
    if not is_workshop_id(workshop_id):
        raise NotFound(N_("There is no such workshop."))
    found = ctx.stores.recent.get(workshop_id)
    if not found.active:
        raise NotFound(N_("The workshop %(workshop)s is not open for registration.", workshop=workshop_id))
    return found


def workshop(ctx: Context, workshop_id: str, language: str = DEFAULT) -> dict[str, Any]:
    return workshop_view(_open_workshop(ctx, workshop_id), language)


def is_retry_of(held: Registration, applicant: Applicant, workshop_id: str, now: datetime,
                window: timedelta) -> bool:
    """Whether a claim is the client repeating the one that created ``held``: the same body
    (workshop, email, names, company), within ``window`` of it, while ``held`` is live."""
    return (held.workshop_id == workshop_id and held.email == applicant.email
            and held.first_name == applicant.first_name and held.last_name == applicant.last_name
            and held.company == applicant.company and held.status in LIVE_STATUSES
            and held.created_at is not None and now - held.created_at < window)


def _already(ctx: Context, taken: EmailTaken, applicant: Applicant, workshop_id: str,
             now: datetime) -> Registration | None:
    """The address already holds a live registration. A client's retry (the same body, soon) gets
    the registration it made and nothing is sent; anything else gets nothing, and the mailbox gets
    a short email with that registration's link (at most one per ``ALREADY_WINDOW_SECONDS``)."""
    try:
        held = ctx.stores.registrations.get(taken.registration_id)
    except NotFound:
        return None  # the guard's registration just closed
    if is_retry_of(held, applicant, workshop_id, now, timedelta(seconds=ctx.settings.claim_retry_seconds)):
        observability.count("RepeatedRegistrations")
        return held
    if (ctx.stores.limits.hit("already", applicant.email_key, 1, time.time(), ALREADY_WINDOW_SECONDS) is None
            and _mailbox_may_be_mailed(ctx, applicant)):
        commit(ctx, held, NOTIFY, owes=ALREADY_OUTBOX)
    observability.count("AlreadyRegistered")
    return None


def _mailbox_may_be_mailed(ctx: Context, applicant: Applicant) -> bool:
    """Count one email to the applicant's mailbox that registering makes; False beyond
    ``mailbox_mails_per_day`` (then nothing is sent, and a new hold is not made either)."""
    if ctx.stores.limits.hit("mailbox", applicant.email_key, ctx.settings.mailbox_mails_per_day, time.time(),
                             86400) is None:
        return True
    observability.count("MailboxLimited")
    return False


# Once an email domain has had its limit of registrations in a minute, each client address gets
# at most this many more for it in that minute: a flood of the domain from many addresses is slowed,
# while someone at the domain registering from their own address still gets through.
DOMAIN_SHARE_PER_CLIENT = 2


def _limit(ctx: Context, client: str | None) -> None:
    """Per client address, per minute (wall time), for a request whose claim did not commit (the
    address already registered, another limit refused it, the claim gave up): one conditional
    write; RateLimited beyond."""
    counted = _client_charge(ctx, client, time.time())
    if counted is not None:
        wait = ctx.stores.limits.hit(counted.scope, counted.value, counted.limit, counted.at)
        if wait is not None:
            raise _from_network(wait)


def _client_charge(ctx: Context, client: str | None, now: float) -> Charge | None:
    """The client address's registrations per minute; a venue's address (``WOD_VENUE_NETWORKS``)
    has the venue's limit. A limit of 0 turns every rate limit off (a load benchmark from one
    machine, for one domain)."""
    if ctx.settings.rate_limit_per_minute <= 0 or not client:
        return None
    venue = in_venue(client, ctx.settings.venue_networks)
    limit = ctx.settings.venue_rate_limit_per_minute if venue else ctx.settings.rate_limit_per_minute
    return Charge("client", client_key(client), limit, 60, now)


def _charges(ctx: Context, client: str | None, applicant: Applicant, window: timedelta | None) -> list[Charge]:
    """What the claim counts in its own transaction (nothing if it does not commit):

    - the client address's registrations per minute (:func:`_client_charge`), first: past it, the
      answer says so whatever else is reached;
    - a hold owes its confirmation email: one of the mailbox's ``mailbox_mails_per_day`` mails;
    - at most ``WOD_HOLDS_PER_CLIENT`` holds per client address per confirmation window (a
      venue's: ``WOD_VENUE_HOLDS``): holds are claimed before anyone reads the mailbox, so without
      this one client could keep a workshop full with addresses nobody reads;
    - the email domain's registrations per minute (soft: :func:`_domain_share`); a venue's
      participants, often of one company, are not held to it.
    """
    now = time.time()
    per_client = _client_charge(ctx, client, now)
    charges = [per_client] if per_client else []
    if window:
        charges.append(Charge("mailbox", applicant.email_key, ctx.settings.mailbox_mails_per_day, 86400, now))
    if ctx.settings.rate_limit_per_minute <= 0:
        return charges
    venue = bool(client) and in_venue(client or "", ctx.settings.venue_networks)
    holds = ctx.settings.venue_holds if venue else ctx.settings.holds_per_client
    if window and client and holds > 0:
        charges.append(Charge("holds", client_key(client), holds, max(60, int(window.total_seconds())), now))
    if ctx.settings.domain_rate_limit_per_minute > 0 and not venue:
        charges.append(Charge("domain", _domain(applicant), ctx.settings.domain_rate_limit_per_minute, 60, now))
    return charges


def _domain(applicant: Applicant) -> str:
    return applicant.email.rsplit("@", 1)[-1].lower()


def _from_network(wait: int) -> RateLimited:
    observability.count("RateLimited")
    return RateLimited(N_("Too many registrations from your network right now; please try again in %(seconds)s "
                          "seconds.", seconds=wait), wait)


def _refused(ctx: Context, client: str | None, applicant: Applicant, reached: LimitReached) -> RateLimited | None:
    """What a charge past its limit means: the mailbox's mails of the day (None: nothing is sent,
    nothing held), too many holds, or a full domain, past which a client still gets
    :data:`DOMAIN_SHARE_PER_CLIENT` (None then too: the caller claims without the domain's charge)."""
    if reached.scope == "mailbox":
        observability.count("MailboxLimited")
        return None
    if reached.scope == "domain":
        domain = _domain(applicant)
        share = ctx.stores.limits.hit("client-domain", f"{client_key(client)} {domain}", DOMAIN_SHARE_PER_CLIENT,
                                      time.time()) if client else reached.wait
        if share is None:
            return None
        observability.count("RateLimited")
        return RateLimited(N_("Too many registrations for addresses at %(domain)s right now; please try again in "
                              "%(seconds)s seconds.", domain=domain, seconds=share), share)
    return _from_network(reached.wait)


def register(ctx: Context, data: Any, workshop_id: Any = None, client: str | None = None,
             language: str = DEFAULT) -> dict[str, Any] | None:
    """Validate, claim a seat (or a waitlist place) atomically, then deliver what it owes.

    The registration keeps its participant's language, for every mail it is sent: the body's
    ``language`` (one of the shipped ones), else ``language`` (the page's, or the request's).

    The claim is an unconfirmed hold owing only the confirmation email, unless confirmation is
    off (``WOD_CONFIRM_MINUTES=0``, a workshop's ``confirm: false``): then it owes the welcome and
    the CREATE order (or the waitlist email) at once. Returns the registration's view, for the
    platform's own use: the HTTP answer is always :data:`RECEIVED`. None when the address already
    had a live registration (:func:`_already`); a claim repeated with the same body within
    ``WOD_CLAIM_RETRY_SECONDS`` (a client retrying after a timeout) returns the registration the
    first one made, and delivers nothing: the first claim delivers what that registration owes.
    """
    if workshop_id is None:
        workshop_id = data.get("workshop") if isinstance(data, dict) else None
        if workshop_id is None or (isinstance(workshop_id, str) and not workshop_id.strip()):
            raise InvalidInput({"workshop": N_("Choose a workshop.")})
        if not isinstance(workshop_id, str):
            raise InvalidInput({"workshop": N_("The workshop must be given by its id, as text.")})
    applicant = validate_applicant(data, ctx.settings.deny_domains, language)
    now = ctx.clock()
    opened = _open_workshop(ctx, workshop_id)  # an invalid body or an unknown workshop is charged nothing
    window = confirm_window(ctx.settings.confirm_minutes, opened.confirm)
    charges = _charges(ctx, client, applicant, window)
    registration_id = new_registration_id()
    while True:
        try:
            reg, found, position = claim(ctx, applicant, workshop_id, registration_id, opened,
                                         now + window if window else None, charges)
            break
        except EmailTaken as taken:  # nothing was charged: the client's request and the email count themselves
            _limit(ctx, client)
            held = _already(ctx, taken, applicant, workshop_id, now)
            return registration_view(ctx, held, opened) if held else None
        except LimitReached as reached:
            refusal = _refused(ctx, client, applicant, reached)
            if refusal is None and reached.scope == "domain":
                charges = [c for c in charges if c.scope != "domain"]  # within this client's share of the domain
                continue
            if reached.scope != "client":
                _limit(ctx, client)  # a refused claim counted nothing: the client's request counts here
            if refusal is not None:
                raise refusal from None
            return None  # the mailbox had its mails of the day: no hold, nothing sent
        except Unavailable:
            _limit(ctx, client)
            raise
    if found is not opened:  # read again: the next claims start from it (a full workshop: its waitlist)
        ctx.stores.recent.saw(dataclasses.replace(found, seats_free=found.seats_free - 1) if reg.student_id else found)
    observability.count("Held" if reg.status == UNCONFIRMED else
                        "Waitlisted" if reg.status == WAITLISTED else "Registrations")
    observability.gauge("SeatsFree", found.seats_free, workshop=found.id)
    return registration_view(ctx, reg, found, position)


def workshop_badge(ctx: Context, workshop_id: str) -> tuple[bytes, str] | None:
    """The badge file of a workshop (bytes, suffix), read from the content folder."""
    if not is_workshop_id(workshop_id):
        return None
    found = ctx.stores.recent.get(workshop_id)
    if not found.badge or "://" in found.badge:
        return None
    folder = Path(ctx.settings.workshops_dir) / found.id
    path = (folder / found.badge).resolve()
    if folder.resolve() not in path.parents or path.suffix.lower() not in (".svg", ".png") or not path.is_file():
        return None
    return path.read_bytes(), path.suffix.lower()
