"""A participant's session as a calendar invitation (RFC 5545 iCalendar, sent as RFC 5546 iTIP).

One registration is one event: its UID is ``<registration id>@<public host>``, and every mail
that carries it (the welcome or the promotion, the credentials, an extension, the thank-you or the
apology of a session that ended early) revises that one event. Which revision a mail carries is
derived from the registration alone, so a resent mail carries the same one:

- SEQUENCE 0 before the session starts. An on-demand session starts as soon as its environment is
  ready, seconds later: the welcome's event starts when it is sent (or at the workshop's scheduled
  start, ``starts_at``, while that is to come) and lasts the workshop's duration.
- SEQUENCE 1 once it started (``started_at`` to ``ends_at``), one more per extension of any kind
  (``extensions_total``: the participant's and the organiser's).
- A session that ends early (ended before ``ends_at``, or failed) is cancelled: METHOD:CANCEL,
  STATUS:CANCELLED, one above the last SEQUENCE it was sent with.

A workshop that names a time zone (``timezone:`` in workshop.yaml) has its times given in that
zone, with its VTIMEZONE; otherwise they are UTC.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email.utils import parseaddr
from functools import lru_cache
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from chalicelib.domain.mail import Email, Part
from chalicelib.domain.registration import FAILED
from chalicelib.domain.text import N_, Text
from chalicelib.domain.values import Registration, Workshop

if TYPE_CHECKING:
    from icalendar import Component

REQUEST, CANCEL = "REQUEST", "CANCEL"
PRODID = "-//Workshops-on-Demand//Workshop session//EN"
FILENAME = "invite.ics"
# the participant emails that carry the session (the credentials email too, see services/invitations.py)
REQUESTS = frozenset({"welcome", "promoted", "extended", "rescheduled"})


def revision(reg: Registration) -> int:
    """The SEQUENCE of the session as it stands: never lower than any sent before (each move of a
    scheduled start before it began counts one)."""
    return reg.reschedules + (0 if reg.started_at is None else 1 + reg.extensions_total)


def ended_early(reg: Registration) -> bool:
    """Whether the session ended before its end time: ended by the participant or an organiser
    (its cleanup finished before ``ends_at``), or failed."""
    if reg.status == FAILED:
        return True
    return reg.finished_at is not None and reg.ends_at is not None and reg.finished_at < reg.ends_at


def method_for(mail: str, reg: Registration) -> str | None:
    """What the participant email ``mail`` does to the calendar event: REQUEST (add or update it),
    CANCEL (the thank-you of a session that ended early, the apology), or nothing."""
    if mail in REQUESTS:
        return REQUEST
    if mail == "apology" or (mail == "thanks" and ended_early(reg)):
        return CANCEL
    return None


@dataclass(frozen=True)
class Invitation:
    uid: str
    sequence: int
    method: str  # REQUEST | CANCEL
    start: datetime  # aware
    end: datetime
    stamp: datetime  # when this revision was made (DTSTAMP)
    title: str
    description: str
    url: str  # the participant's status page
    organizer: str  # "Name <address>", the platform's sender
    attendee: str  # the participant's address
    attendee_name: str = ""
    timezone: str | None = None  # an IANA zone name: the times go with its TZID

    @property
    def status(self) -> str:
        return "CANCELLED" if self.method == CANCEL else "CONFIRMED"


def invitation(reg: Registration, workshop: Workshop, method: str, *, host: str, sender: str, url: str,
               now: datetime, say: Callable[[Text], str] = str) -> Invitation:
    """The session of ``reg`` as a ``method`` (REQUEST or CANCEL) invitation sent at ``now`` by
    ``sender`` (the platform's From address) for the public site ``host``; ``say`` puts its text in
    the participant's language."""
    if method not in (REQUEST, CANCEL):
        raise ValueError(f"unknown calendar method {method!r}")
    if reg.started_at is not None and reg.ends_at is not None:
        start, end = reg.started_at, reg.ends_at
    else:  # not started yet: at the session's scheduled start, else as soon as its environment is ready
        start = workshop.starts_at if workshop.starts_at is not None and workshop.starts_at > now else now
        end = start + timedelta(minutes=workshop.duration_minutes)
    cancelled = method == CANCEL
    title = workshop.title or workshop.id
    about = say(N_("This session ended early or could not be prepared.") if cancelled else
                N_("A hands-on workshop in your own JupyterHub environment. It starts as soon as the environment "
                   "is ready: the email with your login has the Start button."))
    link = say(N_("Your registration (time left, extend, reset or end): %(url)s", url=url))
    return Invitation(
        uid=f"{reg.id}@{host}", sequence=revision(reg) + (1 if cancelled else 0), method=method,
        start=start, end=end, stamp=now, title=title,
        description=f"{title}\n\n{about}\n\n{link}", url=url,
        organizer=sender, attendee=reg.email, attendee_name=_one_line(f"{reg.first_name} {reg.last_name}"),
        timezone=workshop.timezone)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def to_ical(inv: Invitation) -> bytes:
    """The invitation as an iCalendar file (CRLF lines folded at 75 octets, text escaped)."""
    from icalendar import Calendar, Event, vCalAddress

    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("method", inv.method)
    zone = ZoneInfo(inv.timezone) if inv.timezone else None
    if inv.timezone:
        calendar.add_component(_vtimezone(inv.timezone, inv.start.year, inv.end.year + 1))
    name, address = parseaddr(inv.organizer)
    organizer = vCalAddress(f"mailto:{address}")
    if name:
        organizer.params["CN"] = _one_line(name)
    attendee = vCalAddress(f"mailto:{inv.attendee}")
    attendee.params.update({"CUTYPE": "INDIVIDUAL", "ROLE": "REQ-PARTICIPANT", "PARTSTAT": "ACCEPTED",
                            "RSVP": "FALSE"})
    if inv.attendee_name:
        attendee.params["CN"] = inv.attendee_name
    event = Event()
    event.add("uid", inv.uid)
    event.add("dtstamp", inv.stamp.astimezone(UTC))
    event.add("dtstart", inv.start.astimezone(zone or UTC))
    event.add("dtend", inv.end.astimezone(zone or UTC))
    event.add("summary", inv.title)
    event.add("description", inv.description)
    event.add("url", inv.url)
    event.add("organizer", organizer)
    event.add("attendee", attendee)
    event.add("sequence", inv.sequence)
    event.add("status", inv.status)
    event.add("transp", "OPAQUE")
    calendar.add_component(event)
    return calendar.to_ical()


@lru_cache(maxsize=32)
def _vtimezone(name: str, first_year: int, last_year: int) -> Component:
    """The zone's VTIMEZONE over those years (tens of milliseconds to compute: kept), only read."""
    from icalendar import Timezone

    return Timezone.from_tzid(name, first_date=date(first_year, 1, 1), last_date=date(last_year, 12, 31))


def attach(email: Email, inv: Invitation) -> Email:
    """``email`` carrying the invitation twice, as calendar clients look for it: a ``text/calendar``
    rendering of the message (Gmail, Outlook and Apple Mail offer to add it) and ``invite.ics``."""
    data = to_ical(inv)
    calendar = Part(data, "text/calendar", {"method": inv.method, "charset": "UTF-8"})
    attached = Part(data, "application/ics", {"name": FILENAME}, filename=FILENAME)
    return dataclasses.replace(email, alternatives=(*email.alternatives, calendar),
                               attachments=(*email.attachments, attached))
