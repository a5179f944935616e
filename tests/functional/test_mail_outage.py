"""A mail outage or throttle never costs a provisioned seat: when the credentials email cannot be
sent, the ready callback still succeeds (the backend does not compensate), the participant stays
active, and a new password is ordered through the outbox, which mails it once mail works again."""
from __future__ import annotations

import pytest

from chalicelib.domain.outbox import order
from chalicelib.services import registrations
from chalicelib.services import time_checks as lifecycle
from tests.factory import signed_callback

BODY = {"workshop": "WKSHP-MAIL", "email": "lin@example.com", "first_name": "Lin", "last_name": "Chu",
        "company": "Acme", "accept_terms": True}


@pytest.fixture
def registered(platform, sync, recording):
    sync(("WKSHP-MAIL", {"seats": 2}))
    return registrations.register(platform, BODY)


def test_a_credentials_email_that_cannot_go_keeps_the_seat_and_orders_a_new_password(
        client, platform, tables, registered, recording, clock):
    recording.failing = True  # the relay refuses everything (SES throttling, an outage)
    ready = {"registration": registered["id"], "student": registered["student"], "outcome": "ready",
             "password": "S3cretPassw0", "hub_url": platform.settings.hub_url}
    body, headers = signed_callback(ready, platform.key("callback_key"))
    response = client.http.post("/api/callbacks/provision", body=body, headers=headers)
    assert response.status_code == 200  # the backend's Deploy succeeds: nothing is compensated
    reg = platform.stores.registrations.get(registered["id"])
    assert reg.status == "active" and order("RESET", 1, "password") in reg.outbox
    assert tables.students.get(registered["student"]).status == "active"

    recording.failing = False  # mail works again: the time checks deliver the order
    clock.advance(minutes=10)
    lifecycle.tick(platform)
    orders = [m for m in recording.sent if m.subject.startswith("RESET")]
    assert len(orders) == 1 and registered["student"] in orders[0].subject
    assert order("RESET", 1, "password") not in platform.stores.registrations.get(registered["id"]).outbox
