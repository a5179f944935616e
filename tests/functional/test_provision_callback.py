"""The backend's callback: success starts the clock and mails credentials; failure frees the seat."""
from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest

from chalicelib.adapters.secrets import get_key
from chalicelib.domain.orders import SIGNATURE_HEADER
from chalicelib.services import registrations
from tests.factory import signed_callback

BODY = {"workshop": "WKSHP-CB", "email": "lin@example.com", "first_name": "Lin", "last_name": "Wu",
        "company": "Acme", "accept_terms": True}


@pytest.fixture
def registered(platform, sync, recording):
    sync(("WKSHP-CB", {"seats": 2, "duration": 120}))
    return registrations.register(platform, BODY)


def callback(client, platform, payload, key=None, issued_at=None):
    body, headers = signed_callback(payload, key or get_key(platform.settings, "callback_key"), issued_at)
    response = client.http.post("/api/callbacks/provision", body=body, headers=headers)
    return response.status_code, json.loads(response.body)


def test_ready_starts_the_clock_and_mails_credentials(client, platform, tables, registered, recording, clock):
    ready = {"registration": registered["id"], "student": registered["student"], "outcome": "ready",
             "password": "S3cretPassw0", "hub_url": "http://hub.example"}
    assert callback(client, platform, ready) == (200, {"status": "active"})
    reg = tables.customers.get(registered["id"])
    student = tables.students.get(registered["student"])
    assert reg.started_at == clock() and reg.ends_at == clock() + timedelta(minutes=120)
    assert (student.status, student.expires_at) == ("active", reg.ends_at)
    credentials = recording.sent[-1]
    assert credentials.subject == "Your workshop is ready: Workshop WKSHP-CB"
    assert "S3cretPassw0" in credentials.text and registered["student"] in credentials.html
    # the Start link is the location's configured hub, not what the callback reported
    assert (f"{platform.settings.hub_url}/hub/login?next=%2Fhub%2Fuser-redirect%2Flab%2Ftree%2F0-ReadMeFirst.ipynb"
            in credentials.html)
    assert "hub.example" not in credentials.html and "hub.example" not in credentials.text
    assert "S3cretPassw0" not in json.dumps(reg.attribute_values, default=str)

    clock.advance(minutes=1)  # a retried callback (new password) does not move the clock
    assert callback(client, platform, ready | {"password": "An0therPassw"})[0] == 200
    assert tables.customers.get(registered["id"]).ends_at == reg.ends_at
    assert "An0therPassw" in recording.sent[-1].text


def test_failure_releases_the_seat_and_apologises_once(client, platform, tables, registered, recording):
    failed = {"registration": registered["id"], "student": registered["student"], "outcome": "failed",
              "reason": "HubUnavailable: down"}
    assert callback(client, platform, failed) == (200, {"status": "failed"})
    reg = tables.customers.get(registered["id"])
    assert (reg.status, reg.failure) == ("failed", "HubUnavailable: down")
    assert tables.students.get(registered["student"]).status == "free"
    assert tables.workshops.get("WKSHP-CB").seats_free == 2
    assert tables.emails.count() == 0
    assert recording.sent[-1].subject == "We could not prepare your workshop: Workshop WKSHP-CB"
    sent = len(recording.sent)
    assert callback(client, platform, failed)[0] == 200
    assert len(recording.sent) == sent and tables.workshops.get("WKSHP-CB").seats_free == 2
    assert registrations.register(platform, BODY)["status"] == "pending"  # the participant can register again


@pytest.mark.parametrize("tamper", ["key", "stale", "garbage"])
def test_unsigned_or_stale_callbacks_change_nothing(client, platform, tables, registered, tamper):
    payload = {"registration": registered["id"], "student": registered["student"], "outcome": "failed"}
    if tamper == "key":
        status, _ = callback(client, platform, payload, key=b"wrong")
    elif tamper == "stale":
        status, _ = callback(client, platform, payload, issued_at=int(time.time()) - 10_000)
    else:
        status = client.http.post("/api/callbacks/provision", body=b"{}", headers={
            "Content-Type": "application/json", SIGNATURE_HEADER: "v1=00"}).status_code
    assert status == 403
    assert tables.customers.get(registered["id"]).status == "pending"
    assert tables.workshops.get("WKSHP-CB").seats_free == 1
