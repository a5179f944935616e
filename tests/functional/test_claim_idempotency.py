"""A repeated seat claim keeps its own registration and sends nothing twice.

Two ways a claim repeats: the claiming transaction committed but its answer was lost (a timeout
after the commit, or the client re-sending the committed request), and a client retrying the
same body within ``WOD_CLAIM_RETRY_SECONDS``. Every answer is the same ``202``; any other claim for
an address that has a live registration makes nothing and mails that address its link.
"""
from __future__ import annotations

import dataclasses
import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from urllib.parse import urlencode

import pytest
from botocore.client import BaseClient
from botocore.exceptions import ReadTimeoutError

from chalicelib.services import registrations
from chalicelib.settings import load_settings
from tests.conftest import ses_sent
from tests.factory import registered

WORKSHOP = "WKSHP-IDEM"
BODY = {"workshop": WORKSHOP, "email": "Ada.Lovelace@Example.COM", "first_name": "Ada",
        "last_name": "Lovelace", "company": "Analytical Engines", "accept_terms": True}


def post(client, body):
    response = client.http.post("/api/registrations", headers={"Content-Type": "application/json"},
                                body=json.dumps(body))
    return response.status_code, json.loads(response.body)


def subjects() -> list[str]:
    return [m["Subject"] for m in ses_sent()]


def welcomes() -> list[str]:
    return [s for s in subjects() if s.startswith(("You're registered", "You're on the waitlist"))]


def already() -> list[str]:
    return [s for s in subjects() if s.startswith("You are already registered")]


RECEIVED = registrations.RECEIVED


def taken_students(tables) -> list[str]:
    return [s.id for s in tables.students.workshop_index.query(WORKSHOP) if s.status != "free"]


class LoseTheAnswer:
    """Wrap the Seats store's connection: the first claiming transaction commits, then its answer is
    lost — a read timeout (``timeout``), or the client sending the same request again, whose answer
    is the cancellation (``resent``, what botocore does after a timeout; DynamoDB would recognise the
    ClientRequestToken, the embedded AWS does not)."""

    def __init__(self, tables, mode: str):
        self.connection, self.mode, self.fired = tables.connection, mode, 0
        self.emails_table = tables.emails.Meta.table_name
        self.original = self.connection._make_api_call

    def is_claim(self, operation: str, kwargs: dict) -> bool:
        return operation == "TransactWriteItems" and any(
            item.get("Put", {}).get("TableName") == self.emails_table for item in kwargs["TransactItems"])

    def __call__(self, operation: str, kwargs: dict) -> dict:
        if self.fired or not self.is_claim(operation, kwargs):
            return self.original(operation, kwargs)
        self.fired += 1
        if self.mode == "timeout":
            self.original(operation, kwargs)
            raise ReadTimeoutError(endpoint_url="http://dynamodb.local")
        kwargs = {**kwargs, "ClientRequestToken": uuid.uuid4().hex}  # one request, sent twice
        self.original(operation, kwargs)
        return self.original(operation, kwargs)


@pytest.fixture
def seats(sync, monkeypatch):
    # "already registered" emails are limited per wall-clock window: the test stays inside one
    monkeypatch.setattr(registrations, "time", SimpleNamespace(time=lambda: 1_800_000_030.0))

    def _seats(count: int) -> None:
        sync((WORKSHOP, {"seats": count, "title": "Idempotency"}), ("WKSHP-OTHER", {"seats": 2}))
    return _seats


@pytest.mark.parametrize("mode", ["timeout", "resent"])
@pytest.mark.parametrize("count", [1, 3])  # 1: the retry finds the workshop full (its own seat)
def test_a_committed_claim_whose_answer_was_lost_answers_with_its_registration(
        client, seats, tables, monkeypatch, mode, count, platform):
    seats(count)
    lose = LoseTheAnswer(tables, mode)
    monkeypatch.setattr(lose.connection, "_make_api_call", lose)

    status, answer = post(client, BODY)

    assert lose.fired == 1
    assert (status, answer) == (202, RECEIVED)
    body = registered(platform, BODY["email"])
    assert body["status"] == "pending" and body["student"]
    [stored] = list(tables.customers.scan())
    assert (stored.id, stored.status, stored.student_id) == (body["id"], "pending", body["student"])
    assert tables.emails.get("ada.lovelace@example.com").registration_id == body["id"]
    assert taken_students(tables) == [body["student"]]
    assert tables.workshops.get(WORKSHOP).seats_free == count - 1
    assert subjects() == ["You're registered: Idempotency", f"CREATE {WORKSHOP} {body['student']}"]
    assert not tables.customers.get(body["id"]).outbox  # delivered once, by this call


def test_the_same_body_again_within_the_window_gets_the_same_registration_and_no_second_email(
        client, seats, tables, clock, platform):
    seats(3)
    first_status, first = post(client, BODY)
    clock.advance(seconds=119)
    again_status, again = post(client, BODY)

    assert first_status == again_status == 202
    assert again == first == RECEIVED  # the same answer as the fresh one
    assert tables.customers.count() == 1
    student = registered(platform, BODY["email"])["student"]
    assert taken_students(tables) == [student]
    assert tables.workshops.get(WORKSHOP).seats_free == 2
    assert subjects() == ["You're registered: Idempotency", f"CREATE {WORKSHOP} {student}"]


def test_a_waitlisted_registration_repeated_gets_the_same_place(client, seats, tables, platform):
    seats(1)
    assert post(client, BODY | {"email": "seated@example.com"})[0] == 202
    post(client, BODY)
    first = registered(platform, BODY["email"])
    status, _ = post(client, BODY)
    again = registered(platform, BODY["email"])
    assert status == 202 and first["status"] == "waitlisted"
    assert (again["id"], again["status"], again["position"]) == (first["id"], "waitlisted", 1)
    assert tables.customers.count() == 2 and len(welcomes()) == 2 and not already()
    post(client, BODY | {"email": "next@example.com"})
    assert registered(platform, "next@example.com")["position"] == 2


def test_the_form_repeated_shows_the_same_page(client, seats, tables):
    seats(2)
    form = {k: ("on" if k == "accept_terms" else v) for k, v in BODY.items() if k != "workshop"}

    def submit():
        return client.http.post(f"/workshops/{WORKSHOP}", body=urlencode(form),
                                headers={"Content-Type": "application/x-www-form-urlencoded"})

    first, again = submit(), submit()
    assert first.status_code == again.status_code == 200
    assert first.body == again.body and b"Check your mailbox" in first.body
    assert len(welcomes()) == 1 and not already() and tables.customers.count() == 1


@pytest.mark.parametrize("change", [
    {"first_name": "Augusta"},
    {"last_name": "King"},
    {"company": "Babbage & Co"},
    {"workshop": "WKSHP-OTHER"},
    {"email": "ada.lovelace@example.com"},  # the same guard, but not the same body
])
def test_a_different_body_for_the_same_email_makes_nothing_and_mails_its_link(client, seats, tables, change):
    seats(3)
    assert post(client, BODY)[0] == 202
    status, body = post(client, BODY | change)
    assert (status, body) == (202, RECEIVED)
    assert tables.customers.count() == 1
    assert tables.workshops.get(WORKSHOP).seats_free == 2
    assert tables.workshops.get("WKSHP-OTHER").seats_free == 2
    assert len(welcomes()) == 1 and already() == ["You are already registered: Idempotency"]
    [notice] = [m for m in ses_sent() if m["Subject"].startswith("You are already")]
    [stored] = list(tables.customers.scan())
    assert f"https://wod.example/registrations/{stored.id}" in notice.get_body(("plain",)).get_content()


def test_the_same_body_after_the_window_makes_nothing(client, seats, tables, clock):
    seats(3)
    assert post(client, BODY)[0] == 202
    clock.advance(seconds=120)
    assert post(client, BODY) == (202, RECEIVED)
    assert tables.customers.count() == 1 and len(welcomes()) == 1 and len(already()) == 1


def test_the_window_is_a_setting(client, seats, platform, clock):
    assert load_settings({}).claim_retry_seconds == 120
    assert load_settings({"WOD_CLAIM_RETRY_SECONDS": "5"}).claim_retry_seconds == 5
    platform.settings = dataclasses.replace(platform.settings, claim_retry_seconds=5)
    seats(3)
    post(client, BODY)
    clock.advance(seconds=4)
    post(client, BODY)
    assert not already()
    clock.advance(seconds=1)
    post(client, BODY)
    assert len(already()) == 1


def test_at_most_one_already_registered_email_per_mailbox_per_window(client, seats, monkeypatch):
    seats(3)
    post(client, BODY)
    for n in range(5):
        post(client, BODY | {"email": f"ada.lovelace+{n}@example.com"})
    assert len(already()) == 1
    monkeypatch.setattr(registrations, "time", SimpleNamespace(time=lambda: 1_800_000_030.0 + 300))
    post(client, BODY | {"email": "ada.lovelace+late@example.com"})
    assert len(already()) == 2


@pytest.fixture
def one_request_at_a_time(monkeypatch):
    """The embedded AWS serves DynamoDB one request at a time (local/aws.py), so a transaction is
    atomic there; moto's in-process mock is not when threads share it."""
    lock = threading.Lock()
    original = BaseClient._make_api_call

    def serialised(self, operation, params):
        with lock:
            return original(self, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", serialised)


def test_the_same_body_sent_concurrently_makes_one_registration(platform, seats, tables, one_request_at_a_time):
    seats(3)
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda _: registrations.register(platform, BODY), range(6)))
    assert len({a["id"] for a in answers if a}) == 1
    assert tables.customers.count() == 1
    assert len(taken_students(tables)) == 1
    assert tables.workshops.get(WORKSHOP).seats_free == 2
    assert len(welcomes()) == 1
