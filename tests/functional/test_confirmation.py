"""Email confirmation: a new registration holds its seat (or waitlist place) unconfirmed and owes only
the confirmation email; the emailed link opens a page whose button confirms it, and only then does it
owe what a registration owes (welcome, CREATE order, webhook). Holds nobody confirmed go back."""
from __future__ import annotations

import dataclasses
import json
import re
from urllib.parse import urlencode

import pytest

from chalicelib.domain.workshop_spec import WorkshopSpec
from chalicelib.services import links, registrations, seats, time_checks
from chalicelib.settings import load_settings
from tests.factory import registered

WORKSHOP = "WKSHP-CONF"
TITLE = "Confirm me"
FORM = {"Content-Type": "application/x-www-form-urlencoded", "Host": "wod.example"}


def body(email: str, workshop: str = WORKSHOP) -> dict:
    return {"workshop": workshop, "email": email, "first_name": "Ada", "last_name": "Lovelace", "company": "AE",
            "accept_terms": True}


@pytest.fixture
def confirming(platform, sync, recording):
    """Confirmation on (15 minutes) and a two-seat workshop."""
    platform.settings = dataclasses.replace(platform.settings, confirm_minutes=15)
    sync((WORKSHOP, {"seats": 2, "title": TITLE}))
    return platform


def post(client, data: dict):
    response = client.http.post("/api/registrations", headers={"Content-Type": "application/json"},
                                body=json.dumps(data))
    return response.status_code, json.loads(response.body)


def link_in(recording, email: str) -> str:
    [mail] = [m for m in recording.to(email) if m.subject == f"Confirm your seat: {TITLE}"]
    return re.search(r"https://wod\.example(/confirm/[A-Za-z0-9_.-]+)", mail.text).group(1)


def test_a_new_registration_holds_its_seat_and_owes_only_the_confirmation(client, confirming, tables, recording):
    assert post(client, body("ada@example.com")) == (202, registrations.RECEIVED)
    held = registered(confirming, "ada@example.com")
    assert held["status"] == "unconfirmed" and held["student"] and held["confirm_by"].startswith("2026-11-26T09:15")
    assert tables.workshops.get(WORKSHOP).seats_free == 1
    assert tables.students.get(held["student"]).status == "reserved"
    assert [m.subject for m in recording.sent] == [f"Confirm your seat: {TITLE}"]  # no order, no welcome
    [mail] = recording.sent
    token = links.action_token(confirming, held["id"])
    assert f"https://wod.example/confirm/{token}" in mail.text and "09:15 UTC" in mail.text
    assert f'href="https://wod.example/confirm/{token}"' in mail.html
    assert not tables.customers.get(held["id"]).outbox


def test_the_link_shows_a_button_and_its_post_confirms_once(client, confirming, tables, recording):
    post(client, body("ada@example.com"))
    link = link_in(recording, "ada@example.com")
    page = client.http.get(link)
    assert page.status_code == 200
    html = page.body.decode()
    assert TITLE in html and "Confirm my seat" in html and f'action="{link}"' in html
    assert registered(confirming, "ada@example.com")["status"] == "unconfirmed"  # a GET changes nothing

    confirmed = client.http.post(link, headers=FORM, body="")
    reg = registered(confirming, "ada@example.com")
    assert confirmed.status_code == 303 and confirmed.headers["Location"] == reg["status_url"]
    assert reg["status"] == "pending" and reg["confirm_by"] is None
    subjects = [m.subject for m in recording.sent]
    assert subjects == [f"Confirm your seat: {TITLE}", f"You're registered: {TITLE}",
                        f"CREATE {WORKSHOP} {reg['student']}"]
    stuck_at = tables.customers.get(reg["id"]).due_at
    assert (stuck_at.hour, stuck_at.minute) == (9, 10)  # the provisioning deadline starts at confirmation

    again = client.http.post(link, headers=FORM, body="")  # a double click: harmless
    assert again.status_code == 303 and len(recording.sent) == 3
    assert "This registration is confirmed." in client.http.get(link).body.decode()
    assert tables.workshops.get(WORKSHOP).seats_free == 1


def test_the_json_api_confirms_too(client, confirming, recording):
    post(client, body("ada@example.com"))
    token = link_in(recording, "ada@example.com").rsplit("/", 1)[1]
    response = client.http.post(f"/api/registrations/{token}/confirm", headers={"Content-Type": "application/json"},
                                body="")
    assert response.status_code == 200 and json.loads(response.body)["status"] == "pending"


def test_a_confirmation_from_another_site_is_refused(client, confirming, recording):
    post(client, body("ada@example.com"))
    link = link_in(recording, "ada@example.com")
    refused = client.http.post(link, headers=FORM | {"Origin": "https://evil.example"}, body="")
    assert refused.status_code == 403
    assert registered(confirming, "ada@example.com")["status"] == "unconfirmed"


def test_an_expired_hold_gives_its_seat_back_and_says_so(client, confirming, tables, recording, clock):
    post(client, body("ada@example.com"))
    held = registered(confirming, "ada@example.com")
    link = link_in(recording, "ada@example.com")
    clock.advance(minutes=14)
    assert time_checks.tick(confirming)["unconfirmed"] == 0
    clock.advance(minutes=1)
    assert "not confirmed in time" in client.http.get(link).body.decode()  # shown, nothing changed yet
    assert tables.customers.get(held["id"]).status == "unconfirmed"

    assert time_checks.tick(confirming)["unconfirmed"] == 1
    assert time_checks.tick(confirming)["unconfirmed"] == 0  # once
    item = tables.customers.get(held["id"])
    assert item.status == "expired" and item.ttl and item.due_state is None
    assert tables.workshops.get(WORKSHOP).seats_free == 2
    student = tables.students.get(held["student"])
    assert (student.status, student.registration_id, student.free_workshop) == ("free", None, WORKSHOP)
    assert list(tables.emails.scan()) == []

    late = client.http.post(link, headers=FORM, body="")
    html = late.body.decode()
    assert late.status_code == 409 and "not confirmed in time" in html and f'href="/workshops/{WORKSHOP}"' in html
    response = client.http.post(f"/api/registrations/{links.action_token(confirming, held['id'])}/confirm",
                                headers={"Content-Type": "application/json"}, body="")
    status, answer = response.status_code, json.loads(response.body)
    assert status == 409 and answer["error"] == "hold_expired"
    assert [m.subject for m in recording.sent] == [f"Confirm your seat: {TITLE}"]
    assert post(client, body("ada@example.com"))[0] == 202  # the address can register again
    assert registered(confirming, "ada@example.com")["status"] == "unconfirmed"


def test_confirming_past_the_time_before_the_time_checks_releases_at_once(client, confirming, tables, recording,
                                                                         clock):
    post(client, body("ada@example.com"))
    link = link_in(recording, "ada@example.com")
    clock.advance(minutes=16)
    assert client.http.post(link, headers=FORM, body="").status_code == 409
    assert tables.workshops.get(WORKSHOP).seats_free == 2 and list(tables.emails.scan()) == []


def test_a_waitlist_hold_is_out_of_the_line_until_confirmed(client, confirming, platform, tables, recording, clock):
    for n in (1, 2):
        post(client, body(f"seat{n}@example.com"))
        client.http.post(link_in(recording, f"seat{n}@example.com"), headers=FORM, body="")
    post(client, body("late@example.com"))  # unconfirmed: not in the line
    post(client, body("wait@example.com"))
    client.http.post(link_in(recording, "wait@example.com"), headers=FORM, body="")
    late = registered(confirming, "late@example.com")
    assert (late["status"], late["student"], late["position"]) == ("unconfirmed", None, None)
    waiting = registered(confirming, "wait@example.com")
    assert (waiting["status"], waiting["position"]) == ("waitlisted", 1)
    assert f"You're on the waitlist: {TITLE}" in [m.subject for m in recording.to("wait@example.com")]

    # a seat frees: the confirmed one waiting gets it at once, not the earlier unconfirmed one
    seat1 = registered(confirming, "seat1@example.com")
    seats.fail(platform, platform.stores.registrations.get(seat1["id"]), "test", compensated=True)
    assert time_checks.tick(confirming)["promoted"] == 0
    assert registered(confirming, "wait@example.com")["status"] == "pending"
    assert registered(confirming, "late@example.com")["status"] == "unconfirmed"

    clock.advance(minutes=15)
    assert time_checks.tick(confirming)["unconfirmed"] == 1  # the unconfirmed place is dropped
    assert tables.customers.get(late["id"]).status == "expired"
    assert "late@example.com" not in {e.email for e in tables.emails.scan()}


def test_confirming_a_waitlist_hold_when_a_seat_has_freed_takes_the_seat(client, confirming, tables, recording,
                                                                          clock):
    post(client, body("seat1@example.com"))
    client.http.post(link_in(recording, "seat1@example.com"), headers=FORM, body="")
    post(client, body("seat2@example.com"))  # holds the last seat, never confirmed
    clock.advance(minutes=5)
    post(client, body("wait@example.com"))  # a waitlist hold, until 09:20
    clock.advance(minutes=10)
    assert time_checks.tick(confirming)["unconfirmed"] == 1  # seat2's hold: the seat is free, nobody waits
    assert tables.workshops.get(WORKSHOP).seats_free == 1
    client.http.post(link_in(recording, "wait@example.com"), headers=FORM, body="")
    promoted = registered(confirming, "wait@example.com")
    assert promoted["status"] == "pending" and promoted["student"]
    assert tables.workshops.get(WORKSHOP).seats_free == 0
    assert f"CREATE {WORKSHOP} {promoted['student']}" in [m.subject for m in recording.sent]


def test_the_settings_and_the_workshop_opt_out(client, platform, sync, tables, recording):
    assert load_settings({}).confirm_minutes == 15
    assert load_settings({"WOD_CONFIRM_MINUTES": "0"}).confirm_minutes == 0
    platform.settings = dataclasses.replace(platform.settings, confirm_minutes=15)
    sync(("WKSHP-OPTOUT", {"seats": 1, "confirm": False}))
    assert post(client, body("ada@example.com", "WKSHP-OPTOUT")) == (202, registrations.RECEIVED)
    assert registered(platform, "ada@example.com")["status"] == "pending"
    assert [m.subject for m in recording.sent][0] == "You're registered: Workshop WKSHP-OPTOUT"
    assert WorkshopSpec.model_fields["confirm"].default is True
    with pytest.raises(ValueError, match="confirm"):
        WorkshopSpec.model_validate({"id": "WKSHP-X", "title": "x", "description": "x", "category": "x",
                                     "duration": 60, "seats": 1, "presenter": {"name": "x"}, "confirm": "maybe"})


def test_the_form_answers_check_your_mailbox_and_sends_the_confirmation(client, confirming, recording):
    form = {"email": "ada@example.com", "first_name": "Ada", "last_name": "L", "company": "AE", "accept_terms": "on"}
    response = client.http.post(f"/workshops/{WORKSHOP}", headers=FORM, body=urlencode(form))
    assert response.status_code == 200 and "Check your mailbox" in response.body.decode()
    assert link_in(recording, "ada@example.com").startswith("/confirm/")


def test_an_old_link_confirms_nothing_once_the_address_registered_again(client, confirming, tables, recording, clock):
    post(client, body("ada@example.com"))
    old = registered(confirming, "ada@example.com")
    old_link = link_in(recording, "ada@example.com")
    clock.advance(minutes=16)
    time_checks.tick(confirming)
    recording.sent.clear()
    post(client, body("ada@example.com"))
    new = registered(confirming, "ada@example.com")
    assert new["id"] != old["id"]
    assert client.http.post(old_link, headers=FORM, body="").status_code == 409
    assert tables.customers.get(new["id"]).status == "unconfirmed"
    assert tables.customers.get(old["id"]).status == "expired"
    assert tables.workshops.get(WORKSHOP).seats_free == 1
