"""A participant's session as an iCalendar invitation, read back with icalendar field by field:
one UID per registration, SEQUENCE derived from the registration and never lower than before,
the times (UTC, or the workshop's zone with its VTIMEZONE), REQUEST and CANCEL, escaping."""
from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy

import pytest
from icalendar import Calendar
from pydantic import ValidationError

from chalicelib.adapters.mail import to_mime
from chalicelib.domain import calendar
from chalicelib.domain import lifecycle as life
from chalicelib.domain.mail import Email
from chalicelib.domain.registration import ACTIVE, EXPIRING, FAILED, FINISHED, PENDING
from chalicelib.domain.values import Registration, Workshop
from chalicelib.domain.workshop_spec import WorkshopSpec
from tests.mailtools import invitation_of

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
URL = "https://wod.example/registrations/r1.mac"
SENDER = "Workshops-on-Demand <noreply@wod.example>"
WORKSHOP = Workshop("WKSHP-CAL", title="Calendars 101", duration_minutes=120)
SES_RAW_LIMIT = 10 * 1024 * 1024  # SendRawEmail's limit on a whole message


def registration(**fields) -> Registration:
    base = Registration("r1", email="mo@example.com", first_name="Mo", last_name="Li", workshop_id="WKSHP-CAL",
                        student_id="cal-1", status=PENDING, created_at=NOW)
    return dataclasses.replace(base, **fields)


def started(minutes_ago: int = 0, extensions: int = 0, **fields) -> Registration:
    start = NOW - timedelta(minutes=minutes_ago)
    return registration(**{"status": ACTIVE, "started_at": start,
                           "ends_at": start + timedelta(minutes=120 + 30 * extensions),
                           "extensions_used": extensions, "extensions_total": extensions, **fields})


def ics(reg: Registration, method: str = calendar.REQUEST, workshop: Workshop = WORKSHOP,
        now: datetime = NOW) -> bytes:
    return calendar.to_ical(calendar.invitation(reg, workshop, method, host="wod.example", sender=SENDER, url=URL,
                                                now=now))


def event_of(data: bytes):
    parsed = Calendar.from_ical(data)
    [event] = parsed.walk("VEVENT")
    return parsed, event


def test_the_welcome_invites_to_a_session_that_starts_now_and_lasts_the_workshop():
    data = ics(registration())
    parsed, event = event_of(data)
    assert parsed["PRODID"] == calendar.PRODID and parsed["VERSION"] == "2.0" and parsed["METHOD"] == "REQUEST"
    assert event["UID"] == "r1@wod.example"
    assert event["SEQUENCE"] == 0 and event["STATUS"] == "CONFIRMED"
    assert event.start == NOW and event.end == NOW + timedelta(minutes=120)
    assert event.DTSTAMP == NOW
    lines = data.decode().split("\r\n")
    assert "DTSTART:20261126T090000Z" in lines and "DTEND:20261126T110000Z" in lines  # UTC: no TZID
    assert not parsed.walk("VTIMEZONE")
    assert event["SUMMARY"] == "Calendars 101" and event["URL"] == URL and URL in event["DESCRIPTION"]
    assert event["ORGANIZER"] == "mailto:noreply@wod.example"
    assert event["ORGANIZER"].params["CN"] == "Workshops-on-Demand"
    assert event["ATTENDEE"] == "mailto:mo@example.com"
    assert (event["ATTENDEE"].params["CN"], event["ATTENDEE"].params["RSVP"]) == ("Mo Li", "FALSE")


def test_a_session_scheduled_later_is_invited_to_its_start_until_it_starts():
    later = dataclasses.replace(WORKSHOP, starts_at=NOW + timedelta(hours=2))
    _, event = event_of(ics(registration(), workshop=later))
    assert (event.start, event.end) == (NOW + timedelta(hours=2), NOW + timedelta(hours=4))
    assert event["SEQUENCE"] == 0
    begun = dataclasses.replace(WORKSHOP, starts_at=NOW - timedelta(minutes=5))  # registered once it began
    assert event_of(ics(registration(), workshop=begun))[1].start == NOW
    _, event = event_of(ics(started(), workshop=later))  # its real times, once it started
    assert (event.start, event["SEQUENCE"]) == (NOW, 1)


def test_a_started_session_has_its_real_times_and_one_revision_more_per_extension():
    for extensions in (0, 1, 3):
        reg = started(minutes_ago=5, extensions=extensions)
        _, event = event_of(ics(reg, now=NOW + timedelta(minutes=1)))
        assert event["SEQUENCE"] == 1 + extensions
        assert (event.start, event.end) == (reg.started_at, reg.ends_at)
        assert event["UID"] == "r1@wod.example"


def test_a_cancellation_has_the_same_uid_and_one_revision_more_than_the_last_invitation():
    for reg, last in ((registration(status=FAILED), 0), (started(extensions=2, status=EXPIRING), 3)):
        parsed, event = event_of(ics(reg, calendar.CANCEL))
        assert parsed["METHOD"] == "CANCEL" and event["STATUS"] == "CANCELLED"
        assert event["UID"] == "r1@wod.example" and event["SEQUENCE"] == last + 1
        assert event_of(ics(reg))[1]["SEQUENCE"] == last


def test_a_resent_invitation_is_the_same_revision_stamped_when_it_is_sent():
    reg = started(extensions=1)
    first, again = ics(reg), ics(reg, now=NOW + timedelta(minutes=7))
    differ = set(first.decode().split("\r\n")) ^ set(again.decode().split("\r\n"))
    assert {line.split(":")[0] for line in differ} == {"DTSTAMP"}
    assert ics(reg) == first


def apply(reg: Registration, change: life.Change) -> Registration:
    """The registration as ``store/registrations.py`` writes ``change`` (fields, removals, counters)."""
    fields = {**change.set, **{name: None for name in change.remove},
              **{name: getattr(reg, name) + n for name, n in change.add.items()}}
    return dataclasses.replace(reg, **{k: v for k, v in fields.items() if k in Registration.__dataclass_fields__})


def test_sequence_rises_with_every_revision_along_a_registrations_life():
    """welcome 0, credentials 1, a participant's and an organiser's extension 2 and 3, the early
    end's cancellation 4: each mail's revision is above the one before."""
    reg = registration(status="")
    now = NOW
    sent = []

    def step(event: str, mail: str | None, **details) -> None:
        nonlocal reg, now
        now += timedelta(minutes=1)
        change = life.decide(reg, event, now, **details)
        assert change is not None, event
        reg = apply(reg, change)
        if mail:
            method = calendar.method_for(mail, reg) if mail != "credentials" else calendar.REQUEST
            assert method is not None, mail
            sent.append((method, event_of(ics(reg, method, now=now))[1]["SEQUENCE"]))

    step(life.REGISTER, "welcome")
    step(life.PROVISIONED, "credentials", duration=timedelta(minutes=120))
    step(life.EXTEND, "extended", minutes=30)
    step(life.EXTEND, "extended", minutes=15, counted=False)
    step(life.END, None)
    step(life.FINISH, "thanks")
    assert reg.status == FINISHED and reg.extensions_used == 1
    assert sent == [("REQUEST", 0), ("REQUEST", 1), ("REQUEST", 2), ("REQUEST", 3), ("CANCEL", 4)]


def test_which_mails_invite_and_which_cancel():
    ran_out = started(minutes_ago=200, status=FINISHED, finished_at=NOW)
    left_early = started(minutes_ago=30, status=FINISHED, finished_at=NOW)
    assert [calendar.method_for(m, registration()) for m in ("welcome", "promoted", "extended")] == ["REQUEST"] * 3
    assert calendar.method_for("apology", registration(status=FAILED)) == "CANCEL"
    assert calendar.method_for("thanks", left_early) == "CANCEL"
    assert calendar.method_for("thanks", ran_out) is None
    for mail in ("confirm", "already", "waitlisted", "reminder", "level"):
        assert calendar.method_for(mail, registration()) is None


def test_a_workshops_time_zone_gives_the_times_with_its_tzid_and_vtimezone():
    paris = dataclasses.replace(WORKSHOP, timezone="Europe/Paris")
    data = ics(started(), workshop=paris)
    parsed, event = event_of(data)
    lines = data.decode().split("\r\n")
    assert "DTSTART;TZID=Europe/Paris:20261126T100000" in lines
    assert "DTEND;TZID=Europe/Paris:20261126T120000" in lines
    assert event["DTSTART"].params["TZID"] == "Europe/Paris"
    assert event.start == NOW and event.end == NOW + timedelta(minutes=120)  # the same instants
    [zone] = parsed.walk("VTIMEZONE")
    assert zone["TZID"] == "Europe/Paris"
    assert {sub.name for sub in zone.subcomponents} == {"STANDARD", "DAYLIGHT"}
    assert "DTSTAMP:20261126T090000Z" in lines  # DTSTAMP is always UTC


def test_a_title_with_commas_semicolons_and_newlines_is_escaped_and_read_back_whole():
    title = "Kubernetes, Helm; and\nmore: \\ done"
    data = ics(registration(), workshop=dataclasses.replace(WORKSHOP, title=title))
    assert "SUMMARY:Kubernetes\\, Helm\\; and\\nmore: \\\\ done" in data.decode().split("\r\n")
    assert event_of(data)[1]["SUMMARY"] == title


def test_cr_lf_in_a_title_or_a_name_adds_no_line_to_the_file_or_the_mail():
    title = "Evil\r\nBEGIN:VALARM\r\nATTENDEE:mailto:x@evil.example\r\nBcc: x@evil.example"
    reg = registration(first_name='Mo"\r\nORGANIZER:mailto:x@evil.example', last_name="Li;\nX")
    data = ics(reg, workshop=dataclasses.replace(WORKSHOP, title=title))
    lines = data.decode().split("\r\n")
    assert not [line for line in lines if line.startswith(("BEGIN:VALARM", "Bcc", "ORGANIZER:mailto:x@"))]
    assert [line for line in lines if line.startswith("ATTENDEE")] == [
        next(line for line in lines if line.startswith("ATTENDEE"))]
    _, event = event_of(data)
    assert not event.walk("VALARM") and event["ATTENDEE"] == "mailto:mo@example.com"
    assert event["SUMMARY"] == title.replace("\r\n", "\n")
    assert "\n" not in event["ATTENDEE"].params["CN"]

    inv = calendar.invitation(reg, dataclasses.replace(WORKSHOP, title=title), calendar.REQUEST,
                              host="wod.example", sender=SENDER, url=URL, now=NOW)
    msg = message_from_bytes(to_mime(calendar.attach(Email("mo@example.com", "Your session", "text"), inv),
                                     SENDER).as_bytes(), policy=policy.default)
    assert msg["Bcc"] is None and "evil" not in str(msg.items())
    for part in msg.walk():
        assert "evil" not in str(part.items())


def test_a_mail_carries_the_invitation_as_a_calendar_rendering_and_as_invite_ics():
    email = calendar.attach(Email("mo@example.com", "You're registered", "text", "<p>html</p>"),
                            calendar.invitation(registration(), WORKSHOP, calendar.REQUEST, host="wod.example",
                                                sender=SENDER, url=URL, now=NOW))
    method, parsed = invitation_of(email)
    assert method == "REQUEST" and parsed["METHOD"] == "REQUEST"
    raw = to_mime(email, SENDER).as_bytes()
    assert b'Content-Type: text/calendar; method="REQUEST"; charset="UTF-8"' in raw
    assert b'filename="invite.ics"' in raw
    assert len(raw) < 64 * 1024 < SES_RAW_LIMIT
    assert invitation_of(Email("mo@example.com", "no invitation", "text", "<p>html</p>")) is None


def test_the_workshop_folder_names_a_known_time_zone_and_a_one_line_title():
    spec = {"id": "WKSHP-CAL", "title": "Calendars 101", "description": "d", "category": "c", "duration": 60,
            "seats": 1, "presenter": {"name": "Ada"}}
    assert WorkshopSpec(**spec).timezone is None
    assert WorkshopSpec(**spec, timezone="America/New_York").timezone == "America/New_York"
    for bad in ("Mars/Olympus", "CET+1", "../../etc/passwd", "/etc/localtime", ""):
        with pytest.raises(ValidationError, match="IANA time zone"):
            WorkshopSpec(**spec, timezone=bad)
    with pytest.raises(ValidationError, match="title"):
        WorkshopSpec(**{**spec, "title": "Calendars\r\nBcc: x@evil.example"})
