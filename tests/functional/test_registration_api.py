"""The public JSON contract, through chalice.test.Client with moto (SES included)."""
from __future__ import annotations

import json
import time

import pytest

from chalicelib.adapters.secrets import get_key
from chalicelib.domain.orders import SIGNATURE_HEADER, verify_order
from chalicelib.services import links
from chalicelib.services.registrations import RECEIVED
from tests.conftest import ses_sent
from tests.factory import registered

BODY = {"workshop": "WKSHP-API1", "email": "Ada.Lovelace@Example.COM", "first_name": "Ada",
        "last_name": "Lovelace", "company": "Analytical Engines", "accept_terms": True}


def post(client, body):
    response = client.http.post("/api/registrations", headers={"Content-Type": "application/json"},
                                body=json.dumps(body))
    return response.status_code, json.loads(response.body)


def register(client, platform, body) -> dict:
    """Register through the API; the registration as its status shows it (the answer names none)."""
    assert post(client, body) == (202, RECEIVED)
    return registered(platform, body["email"])


@pytest.fixture
def workshop(sync):
    sync(("WKSHP-API1", {"seats": 2, "beta": True, "title": "REST basics"}),
         ("WKSHP-OFF", {"seats": 1, "active": False}))


def test_catalog_lists_active_workshops_with_seats(client, workshop):
    response = client.http.get("/api/workshops")
    assert response.status_code == 200
    listed = json.loads(response.body)
    assert [w["id"] for w in listed] == ["WKSHP-API1"]
    assert listed[0].items() >= {"title": "REST basics", "duration_minutes": 60, "seats_total": 2, "seats_free": 2,
                                 "active": True, "beta": True}.items()


def test_registration_claims_a_student_and_sends_welcome_and_signed_order(client, workshop, platform, tables):
    status, answer = post(client, BODY)
    assert status == 202 and answer == RECEIVED and "id" not in answer
    body = registered(platform, BODY["email"])
    assert body["status"] == "pending" and body["student"] in {"api1-1", "api1-2"}
    assert body["status_url"] == f"https://wod.example/registrations/{links.action_token(platform, body['id'])}"
    assert tables.students.get(body["student"]).status == "reserved"
    assert tables.workshops.get("WKSHP-API1").seats_free == 1

    welcome, order = ses_sent()
    assert welcome["To"] == "Ada.Lovelace@example.com"
    assert welcome["Subject"] == "You're registered: REST basics"
    assert body["status_url"] in welcome.get_body(("plain",)).get_content()
    assert body["status_url"] in welcome.get_body(("html",)).get_content()
    assert order["To"] == "orders@backend.wod.local"
    assert order["Subject"] == f"CREATE WKSHP-API1 {body['student']}"
    payload = order.get_body(("plain",)).get_content().strip().encode()
    verified = verify_order(payload, order[SIGNATURE_HEADER], get_key(platform.settings, "order_key"),
                            now=time.time(), max_age=60)
    assert (verified.action, verified.registration, verified.student) == ("CREATE", body["id"], body["student"])


def test_same_email_in_any_case_answers_the_same_and_keeps_the_seat_count(client, workshop, tables):
    first = post(client, BODY)
    assert post(client, BODY | {"email": "ada.lovelace@example.com"}) == first == (202, RECEIVED)
    assert tables.workshops.get("WKSHP-API1").seats_free == 1 and tables.customers.count() == 1


def test_full_workshop_waitlists_with_increasing_positions(client, workshop, tables, platform):
    seated = [register(client, platform, BODY | {"email": f"p{i}@example.com"}) for i in range(2)]
    assert {s["status"] for s in seated} == {"pending"}
    assert len({s["student"] for s in seated}) == 2
    first = register(client, platform, BODY | {"email": "w1@example.com"})
    second = register(client, platform, BODY | {"email": "w2@example.com"})
    assert (first["status"], first["position"], first["student"]) == ("waitlisted", 1, None)
    assert (second["status"], second["position"]) == ("waitlisted", 2)
    assert tables.workshops.get("WKSHP-API1").seats_free == 0


def test_waitlist_email_tells_the_position(client, sync, platform):
    sync(("WKSHP-FULL", {"seats": 1}))
    post(client, BODY | {"workshop": "WKSHP-FULL", "email": "a@example.com"})
    body = register(client, platform, BODY | {"workshop": "WKSHP-FULL", "email": "b@example.com"})
    assert body["position"] == 1
    last = ses_sent()[-1]
    assert last["Subject"] == "You're on the waitlist: Workshop WKSHP-FULL"
    assert "at position 1" in last.get_body(("plain",)).get_content()


@pytest.mark.parametrize("workshop_id", ["WKSHP-NOPE", "WKSHP-OFF", "not-an-id"])
def test_unknown_or_closed_workshop_is_404(client, workshop, workshop_id):
    status, body = post(client, BODY | {"workshop": workshop_id})
    assert status == 404 and body["error"] == "not_found"


@pytest.mark.parametrize("change, field", [
    ({"email": "not-an-email"}, "email"),
    ({"email": "x@mailinator.com"}, "email"),
    ({"first_name": ""}, "first_name"),
    ({"last_name": "a\x00b"}, "last_name"),
    ({"company": "x" * 101}, "company"),
    ({"first_name": "<script>"}, "first_name"),
    ({"accept_terms": False}, "accept_terms"),
    ({"workshop": 7}, "workshop"),
])
def test_invalid_fields_are_422_with_the_field_named(client, workshop, change, field, tables):
    status, body = post(client, BODY | change)
    assert status == 422
    assert field in body["fields"]
    assert tables.workshops.get("WKSHP-API1").seats_free == 2


@pytest.mark.parametrize("raw", [b"", b"{", b"[1,2]", b"\xff\xfe", b"null"])
def test_malformed_bodies_are_422(client, workshop, raw):
    response = client.http.post("/api/registrations", headers={"Content-Type": "application/json"}, body=raw)
    assert response.status_code == 422
    assert json.loads(response.body)["error"] == "invalid"


def test_status_has_times_and_never_a_password(client, workshop, platform):
    created = register(client, platform, BODY)
    response = client.http.get(f"/api/registrations/{links.action_token(platform, created['id'])}")
    assert response.status_code == 200
    body = json.loads(response.body)
    assert body["status"] == "pending" and body["workshop"] == {"id": "WKSHP-API1", "title": "REST basics"}
    assert body["created_at"].startswith("2026-11-26T09:00")
    assert "password" not in response.body.decode().lower()


def test_unknown_registration_is_404(client, workshop):
    assert client.http.get("/api/registrations/AAAAAAAAAAAAAAAAAAAAAAAA").status_code == 404
    assert client.http.get("/api/registrations/bad%20id").status_code == 404


def test_a_duplicate_email_claims_nothing_on_a_full_workshop_too(client, sync, tables, platform):
    sync(("WKSHP-ONE", {"seats": 1}))
    seated = BODY | {"workshop": "WKSHP-ONE", "email": "a@example.com"}
    assert register(client, platform, seated)["status"] == "pending"
    assert post(client, seated | {"company": "Elsewhere"}) == (202, RECEIVED)
    waiting = BODY | {"workshop": "WKSHP-ONE", "email": "b@example.com"}
    assert register(client, platform, waiting)["status"] == "waitlisted"
    assert post(client, waiting | {"email": "B@example.com"}) == (202, RECEIVED)
    assert tables.customers.count() == 2
    assert tables.workshops.get("WKSHP-ONE").waitlist_seq == 1  # one place given: the refused duplicate took none
