"""One stranger can neither take every seat nor learn who registered.

* A registration holds its seat only for ``WOD_CONFIRM_MINUTES`` until its address confirms it: one
  client registering 60 times (``+tag`` variants of one mailbox, or addresses nobody reads) holds
  nothing beyond that, and no server is started for an unconfirmed hold.
* Registering answers the same for an address that is registered and one that is not, and a
  victim's address registered by someone else blocks the victim no longer than the hold.
* Opening the confirmation link (a mail scanner does) changes nothing; only its button's POST does.
"""
from __future__ import annotations

import dataclasses
import json
import re
from types import SimpleNamespace

import pytest

from chalicelib.services import registrations, time_checks
from tests.factory import registered

WORKSHOP = "WKSHP-HOARD"
TITLE = "Hoarded"


def body(email: str, first: str = "Eve") -> dict:
    return {"workshop": WORKSHOP, "email": email, "first_name": first, "last_name": "Mallory", "company": "X",
            "accept_terms": True}


@pytest.fixture
def hoard(platform, sync, recording, monkeypatch):
    platform.settings = dataclasses.replace(platform.settings, confirm_minutes=15)
    # the "already registered" emails are limited per wall-clock window: stay inside one
    monkeypatch.setattr(registrations, "time", SimpleNamespace(time=lambda: 1_800_000_030.0))
    sync((WORKSHOP, {"seats": 60, "title": TITLE}))
    return platform


def post(client, data: dict) -> tuple[int, bytes]:
    response = client.http.post("/api/registrations", headers={"Content-Type": "application/json"},
                                body=json.dumps(data))
    return response.status_code, response.body


def orders(recording) -> list[str]:
    return [m.subject for m in recording.sent if m.subject.startswith(("CREATE", "WARM"))]


def test_sixty_tag_variants_hold_one_seat_and_get_one_confirmation(client, hoard, tables, recording):
    answers = {post(client, body(f"attacker+{n}@example.com", f"Bot{n}")) for n in range(60)}
    assert len(answers) == 1 and next(iter(answers))[0] == 202
    assert tables.workshops.get(WORKSHOP).seats_free == 59
    confirmations = [m for m in recording.to("attacker+0@example.com") if m.subject.startswith("Confirm")]
    assert len(confirmations) == 1
    assert len(recording.sent) <= 2  # the confirmation and at most one "already registered"
    assert orders(recording) == []  # no server for an unconfirmed hold


def test_sixty_throwaway_addresses_hold_nothing_beyond_the_hold(client, hoard, tables, recording, clock):
    for n in range(60):
        assert post(client, body(f"nobody{n}@example.com"))[0] == 202
    assert tables.workshops.get(WORKSHOP).seats_free == 0
    assert orders(recording) == []
    assert all(m.subject == f"Confirm your seat: {TITLE}" for m in recording.sent) and len(recording.sent) == 60

    clock.advance(minutes=15)
    assert time_checks.tick(hoard)["unconfirmed"] == 60
    assert tables.workshops.get(WORKSHOP).seats_free == 60
    assert all(s.status == "free" for s in tables.students.workshop_index.query(WORKSHOP))
    assert list(tables.emails.scan()) == []
    assert orders(recording) == []


def test_the_answer_is_the_same_for_a_registered_and_an_unregistered_address(client, hoard):
    post(client, body("victim@example.com", "Vic"))
    registered_answer = post(client, body("victim@example.com", "Eve"))
    fresh_answer = post(client, body("someone.new@example.com", "Eve"))
    assert registered_answer == fresh_answer
    assert registered_answer[0] == 202 and b"victim" not in registered_answer[1]
    assert set(json.loads(registered_answer[1])) == {"status", "message"}


def test_the_page_answer_is_the_same_too(client, hoard):
    from urllib.parse import urlencode

    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    form = {"email": "victim@example.com", "first_name": "Vic", "last_name": "M", "company": "X", "accept_terms": "on"}
    client.http.post(f"/workshops/{WORKSHOP}", headers=headers, body=urlencode(form))
    again = client.http.post(f"/workshops/{WORKSHOP}", headers=headers, body=urlencode(form | {"first_name": "Eve"}))
    fresh = client.http.post(f"/workshops/{WORKSHOP}", headers=headers,
                             body=urlencode(form | {"email": "new@example.com"}))
    assert (again.status_code, again.body) == (fresh.status_code, fresh.body) and again.status_code == 200


def test_registering_a_victims_address_blocks_them_no_longer_than_the_hold(client, hoard, tables, recording, clock):
    post(client, body("victim@example.com", "Eve"))  # the attacker, with the victim's address
    clock.advance(minutes=5)
    post(client, body("victim@example.com", "Vic"))  # the victim: the same answer, a link to the hold
    already = [m for m in recording.to("victim@example.com") if m.subject.startswith("You are already")]
    assert len(already) == 1 and "/confirm/" in already[0].text  # the victim may confirm it
    clock.advance(minutes=10)
    time_checks.tick(hoard)
    post(client, body("victim@example.com", "Vic"))
    mine = registered(hoard, "victim@example.com")
    assert mine["status"] == "unconfirmed"
    assert tables.customers.get(mine["id"]).first_name == "Vic"


def test_opening_the_confirmation_link_changes_nothing(client, hoard, tables, recording):
    post(client, body("ada@example.com", "Ada"))
    link = re.search(r"/confirm/[A-Za-z0-9_.-]+", recording.sent[0].text).group(0)
    for method in ("GET", "HEAD"):
        client.http.request(method, link)
    held = registered(hoard, "ada@example.com")
    assert held["status"] == "unconfirmed" and len(recording.sent) == 1
    assert tables.customers.get(held["id"]).outbox is None


def test_an_expired_hold_returns_the_seat_and_promotes_the_waitlist(client, sync, hoard, tables, recording, clock):
    sync(("WKSHP-ONE", {"seats": 1, "title": "One"}))
    one = {"workshop": "WKSHP-ONE"}
    post(client, body("hoarder@example.com") | one)  # holds the only seat, never confirms
    clock.advance(minutes=1)
    post(client, body("waiter@example.com", "Wait") | one)
    link = re.search(r"/confirm/[A-Za-z0-9_.-]+", recording.to("waiter@example.com")[0].text).group(0)
    client.http.post(link, headers={"Content-Type": "application/x-www-form-urlencoded"}, body="")
    assert registered(hoard, "waiter@example.com")["status"] == "waitlisted"

    clock.advance(minutes=14)
    counts = time_checks.tick(hoard)
    assert counts["unconfirmed"] == 1  # released, and its seat went to the one waiting at once
    promoted = registered(hoard, "waiter@example.com")
    assert promoted["status"] == "pending" and promoted["student"] == "one-1"
    assert tables.workshops.get("WKSHP-ONE").seats_free == 0
    assert orders(recording) == ["CREATE WKSHP-ONE one-1"]


def test_a_stranger_makes_the_platform_mail_one_address_a_few_times_a_day_at_most(client, hoard, recording, clock,
                                                                               monkeypatch):
    """Registering a victim's address every five minutes for six hours (holds expiring meanwhile)
    mails them at most ``mailbox_mails_per_day`` confirmations and "already registered" emails."""
    monkeypatch.setattr(registrations, "time", SimpleNamespace(time=lambda: clock().timestamp()))
    for n in range(72):
        assert post(client, body("victim@example.com", f"Eve{n}"))[0] == 202
        clock.advance(minutes=5)
        time_checks.tick(hoard)
    mails = recording.to("victim@example.com")
    assert 2 <= len(mails) <= hoard.settings.mailbox_mails_per_day
    clock.advance(days=1)
    recording.sent.clear()
    assert post(client, body("victim@example.com", "Vic"))[0] == 202  # the next day, the address registers
    assert [m.subject for m in recording.to("victim@example.com")] == [f"Confirm your seat: {TITLE}"]
