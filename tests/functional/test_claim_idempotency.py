"""A repeated seat claim answers with its own registration, never with a false 409.

Two ways a claim repeats: the claiming transaction committed but its answer was lost (a timeout
after the commit, or the client re-sending the committed request), and a client retrying the
same body within ``WOD_CLAIM_RETRY_SECONDS``.
"""
from __future__ import annotations

import dataclasses
import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode

import pytest
from botocore.client import BaseClient
from botocore.exceptions import ReadTimeoutError

from chalicelib.services import registrations
from chalicelib.settings import load_settings
from tests.conftest import ses_sent

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
def seats(sync):
    def _seats(count: int) -> None:
        sync((WORKSHOP, {"seats": count, "title": "Idempotency"}), ("WKSHP-OTHER", {"seats": 2}))
    return _seats


@pytest.mark.parametrize("mode", ["timeout", "resent"])
@pytest.mark.parametrize("count", [1, 3])  # 1: the retry finds the workshop full (its own seat)
def test_a_committed_claim_whose_answer_was_lost_answers_with_its_registration(
        client, seats, tables, monkeypatch, mode, count):
    seats(count)
    lose = LoseTheAnswer(tables, mode)
    monkeypatch.setattr(lose.connection, "_make_api_call", lose)

    status, body = post(client, BODY)

    assert lose.fired == 1
    assert status == 201, body
    assert body["status"] == "pending" and body["student"]
    [stored] = list(tables.customers.scan())
    assert (stored.id, stored.status, stored.student_id) == (body["id"], "pending", body["student"])
    assert tables.emails.get("ada.lovelace@example.com").registration_id == body["id"]
    assert taken_students(tables) == [body["student"]]
    assert tables.workshops.get(WORKSHOP).seats_free == count - 1
    assert subjects() == ["You're registered: Idempotency", f"CREATE {WORKSHOP} {body['student']}"]
    assert not tables.customers.get(body["id"]).outbox  # delivered once, by this call


def test_the_same_body_again_within_the_window_gets_the_same_registration_and_no_second_email(
        client, seats, tables, clock):
    seats(3)
    first_status, first = post(client, BODY)
    clock.advance(seconds=119)
    again_status, again = post(client, BODY)

    assert first_status == again_status == 201
    assert again == first  # the same answer shape and content as the fresh one
    assert tables.customers.count() == 1
    assert taken_students(tables) == [first["student"]]
    assert tables.workshops.get(WORKSHOP).seats_free == 2
    assert subjects() == ["You're registered: Idempotency", f"CREATE {WORKSHOP} {first['student']}"]


def test_a_waitlisted_registration_repeated_gets_the_same_place(client, seats, tables):
    seats(1)
    assert post(client, BODY | {"email": "seated@example.com"})[0] == 201
    _, first = post(client, BODY)
    status, again = post(client, BODY)
    assert status == 201 and first["status"] == "waitlisted"
    assert (again["id"], again["status"], again["position"]) == (first["id"], "waitlisted", 1)
    assert tables.customers.count() == 2 and len(welcomes()) == 2
    assert post(client, BODY | {"email": "next@example.com"})[1]["position"] == 2


def test_the_form_repeated_redirects_to_the_same_status_page(client, seats):
    seats(2)
    form = {k: ("on" if k == "accept_terms" else v) for k, v in BODY.items() if k != "workshop"}

    def submit():
        return client.http.post(f"/workshops/{WORKSHOP}", body=urlencode(form),
                                headers={"Content-Type": "application/x-www-form-urlencoded"})

    first, again = submit(), submit()
    assert first.status_code == again.status_code == 303
    assert first.headers["Location"] == again.headers["Location"]
    assert len(welcomes()) == 1


@pytest.mark.parametrize("change", [
    {"first_name": "Augusta"},
    {"last_name": "King"},
    {"company": "Babbage & Co"},
    {"workshop": "WKSHP-OTHER"},
    {"email": "ada.lovelace@example.com"},  # the same guard, but not the same body
])
def test_a_different_body_for_the_same_email_is_still_409(client, seats, tables, change):
    seats(3)
    assert post(client, BODY)[0] == 201
    status, body = post(client, BODY | change)
    assert status == 409 and "live registration" in body["message"]
    assert tables.customers.count() == 1
    assert tables.workshops.get(WORKSHOP).seats_free == 2
    assert tables.workshops.get("WKSHP-OTHER").seats_free == 2
    assert len(welcomes()) == 1


def test_the_same_body_after_the_window_is_409(client, seats, tables, clock):
    seats(3)
    assert post(client, BODY)[0] == 201
    clock.advance(seconds=120)
    status, body = post(client, BODY)
    assert status == 409 and body["error"] == "conflict"
    assert tables.customers.count() == 1 and len(welcomes()) == 1


def test_the_window_is_a_setting(client, seats, platform, clock):
    assert load_settings({}).claim_retry_seconds == 120
    assert load_settings({"WOD_CLAIM_RETRY_SECONDS": "5"}).claim_retry_seconds == 5
    platform.settings = dataclasses.replace(platform.settings, claim_retry_seconds=5)
    seats(3)
    assert post(client, BODY)[0] == 201
    clock.advance(seconds=4)
    assert post(client, BODY)[0] == 201
    clock.advance(seconds=1)
    assert post(client, BODY)[0] == 409


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
    assert len({a["id"] for a in answers}) == 1
    assert tables.customers.count() == 1
    assert len(taken_students(tables)) == 1
    assert tables.workshops.get(WORKSHOP).seats_free == 2
    assert len(welcomes()) == 1
