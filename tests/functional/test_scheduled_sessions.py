"""A session with a scheduled start: a seat taken before it waits (welcome mail now, its environment
ordered shortly before the start); on-demand stays the default, and so does a registration made
once the session is about to start."""
from __future__ import annotations

import dataclasses
import json
from datetime import timedelta

import pytest
from icalendar import Calendar

from chalicelib.services import links, registrations
from chalicelib.services.time_checks import tick
from tests.admintools import FORM, activate, api

WORKSHOP = "WKSHP-SCHEDULED"


def register(platform, email: str) -> dict:
    return registrations.register(platform, {"workshop": WORKSHOP, "email": email, "first_name": "Ada",
                                             "last_name": "Li", "company": "Acme", "accept_terms": True})


def creates(recording) -> list[dict]:
    return [json.loads(e.text) for e in recording.sent if e.subject.startswith("CREATE")]


@pytest.fixture
def scheduled(client, platform, sync, clock, recording):
    """A two-seat workshop whose session starts in two hours."""
    sync((WORKSHOP, {"seats": 2, "title": "Scheduled"}))
    start = clock() + timedelta(hours=2)
    status, body = api(client, platform, "PATCH", f"/api/admin/workshops/{WORKSHOP}", {"starts_at": start.isoformat()})
    assert status == 200, body
    return start


def test_a_seat_before_the_session_waits_for_it_then_is_provisioned(client, platform, clock, recording, scheduled):
    created = register(platform, "ada@example.com")
    reg = platform.stores.registrations.get(created["id"])
    assert reg.status == "pending" and reg.due_state == "scheduled" and reg.due_at == scheduled - timedelta(minutes=10)
    [welcome] = recording.to("ada@example.com")
    assert welcome.subject == "You're registered: Scheduled"
    start_text = f"{scheduled:%Y-%m-%d %H:%M} UTC"
    assert f"the session that starts at {start_text}" in welcome.text and "right now" not in welcome.text
    [invite] = [Calendar.from_ical(part.content) for part in welcome.alternatives]
    [session] = invite.walk("VEVENT")
    assert session.decoded("DTSTART") == scheduled and session.decoded("DTEND") == scheduled + timedelta(minutes=60)
    assert creates(recording) == []  # nothing is provisioned yet

    page = client.http.get(f"/registrations/{links.action_token(platform, created['id'])}").body.decode()
    assert f'<time datetime="{scheduled.isoformat()}">' in page and "prepared shortly before it" in page
    assert "Starting your server" not in page  # no provisioning steps yet

    clock.advance(minutes=109)  # 11 minutes before the start
    assert tick(platform)["started"] == 0 and creates(recording) == []
    clock.advance(minutes=1)
    assert tick(platform)["started"] == 1
    assert [o["registration"] for o in creates(recording)] == [created["id"]]
    assert tick(platform)["started"] == 0  # once
    reg = platform.stores.registrations.get(created["id"])
    assert reg.due_state == "provisioning" and reg.due_at == clock() + timedelta(minutes=10)

    activate(client, platform, created)
    active = platform.stores.registrations.get(created["id"])
    # ready ten minutes early, the session still runs its whole hour from the announced start
    assert active.status == "active" and active.ends_at == scheduled + timedelta(minutes=60)


def test_a_registration_once_the_session_is_near_is_provisioned_at_once(client, platform, clock, recording, scheduled):
    clock.advance(minutes=115)  # five minutes before the start: inside the lead
    created = register(platform, "late@example.com")
    assert platform.stores.registrations.get(created["id"]).due_state == "provisioning"
    assert [o["registration"] for o in creates(recording)] == [created["id"]]


def test_without_a_scheduled_start_a_seat_is_provisioned_at_once(client, platform, sync, recording):
    sync((WORKSHOP, {"seats": 2}))
    created = register(platform, "now@example.com")
    assert platform.stores.registrations.get(created["id"]).due_state == "provisioning"
    assert len(creates(recording)) == 1


def confirm(client, platform, created: dict) -> None:
    response = client.http.post(f"/confirm/{links.action_token(platform, created['id'])}", headers=FORM, body="")
    assert response.status_code == 303


def test_a_confirmed_hold_and_a_promotion_wait_for_the_session_too(client, platform, clock, recording, scheduled):
    platform.settings = dataclasses.replace(platform.settings, confirm_minutes=15)
    held, second, waiting = (register(platform, f"{n}@example.com") for n in ("held", "second", "waiting"))
    confirm(client, platform, held)
    confirm(client, platform, waiting)
    assert platform.stores.registrations.get(held["id"]).due_state == "scheduled"
    assert platform.stores.registrations.get(waiting["id"]).status == "waitlisted"
    clock.advance(minutes=16)  # the second hold was never confirmed: its seat goes to the waitlist, which waits too
    tick(platform)
    promoted = platform.stores.registrations.get(waiting["id"])
    assert promoted.status == "pending" and promoted.due_state == "scheduled" and promoted.promoted_at is not None
    promotion = recording.to("waiting@example.com")[-1]
    assert promotion.subject == "A seat is yours: Scheduled" and "shortly before it" in promotion.text
    assert creates(recording) == []
    clock.advance(minutes=94)  # ten minutes before the start
    assert tick(platform)["started"] == 2
    assert sorted(o["registration"] for o in creates(recording)) == sorted([held["id"], waiting["id"]])


def sequence_of(mail) -> int:
    [invite] = [Calendar.from_ical(part.content) for part in mail.alternatives]
    [session] = invite.walk("VEVENT")
    return int(session["SEQUENCE"]), session.decoded("DTSTART")


def test_a_moved_start_moves_the_waiting_seats_and_their_invitations(client, platform, clock, recording, scheduled):
    created = register(platform, "ada@example.com")
    later = scheduled + timedelta(days=7)
    moving = api(client, platform, "PATCH", f"/api/admin/workshops/{WORKSHOP}", {"starts_at": later.isoformat()})
    assert moving[0] == 200
    reg = platform.stores.registrations.get(created["id"])
    assert reg.due_state == "scheduled" and reg.due_at == later - timedelta(minutes=10) and reg.reschedules == 1
    moved = recording.to("ada@example.com")[-1]
    assert moved.subject == "New time: Scheduled" and f"{later:%H:%M}" in moved.text
    assert sequence_of(moved) == (1, later)  # above the welcome's 0
    clock.advance(minutes=115)  # the old start: nothing ordered
    assert tick(platform)["started"] == 0 and creates(recording) == []

    sooner = clock() + timedelta(minutes=30)
    api(client, platform, "PATCH", f"/api/admin/workshops/{WORKSHOP}", {"starts_at": sooner.isoformat()})
    assert sequence_of(recording.to("ada@example.com")[-1]) == (2, sooner)
    clock.advance(minutes=20)
    assert tick(platform)["started"] == 1 and len(creates(recording)) == 1
    activate(client, platform, created)
    ready = [m for m in recording.to("ada@example.com") if m.subject.startswith("Your workshop is ready")]
    assert sequence_of(ready[-1])[0] == 3  # the credentials' invitation stays above every earlier one


def test_a_cleared_start_makes_the_waiting_seats_on_demand(client, platform, clock, recording, scheduled):
    created = register(platform, "ada@example.com")
    api(client, platform, "PATCH", f"/api/admin/workshops/{WORKSHOP}", {"starts_at": None})
    reg = platform.stores.registrations.get(created["id"])
    assert reg.due_at == clock() and "as soon as your environment is ready" in recording.to("ada@example.com")[-1].text
    assert tick(platform)["started"] == 1 and [o["registration"] for o in creates(recording)] == [created["id"]]
    api(client, platform, "PATCH", f"/api/admin/workshops/{WORKSHOP}", {"starts_at": (clock() + timedelta(days=1))
                                                                         .isoformat()})
    assert platform.stores.registrations.get(created["id"]).due_state == "provisioning"  # ordered: it stays so
