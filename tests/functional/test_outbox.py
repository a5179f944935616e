"""A failed send is kept in the registration's outbox and retried by the time checks."""
from __future__ import annotations

from chalicelib.services import registrations
from chalicelib.services import time_checks as lifecycle

BODY = {"workshop": "WKSHP-MAIL", "email": "kay@example.com", "first_name": "Kay", "last_name": "Ito",
        "company": "Acme", "accept_terms": True}


def test_mail_outage_keeps_the_registration_and_retries_later(platform, tables, sync, recording, clock):
    sync(("WKSHP-MAIL", {"seats": 2}))
    recording.failing = True
    created = registrations.register(platform, BODY)
    assert created["status"] == "pending"
    stored = tables.customers.get(created["id"])
    assert stored.outbox == ["welcome", "order:CREATE"] and stored.outbox_attempts == 1
    assert "relay down" in stored.outbox_error

    recording.failing = False
    assert lifecycle.tick(platform)["outbox_retried"] == 0  # not due yet: the retry waits
    clock.advance(minutes=2)
    assert lifecycle.tick(platform)["outbox_retried"] == 1
    assert [e.subject for e in recording.sent] == ["You're registered: Workshop WKSHP-MAIL",
                                                   "CREATE WKSHP-MAIL " + created["student"]]
    stored = tables.customers.get(created["id"])
    assert stored.outbox is None and stored.outbox_state is None
    clock.advance(minutes=5)  # later ticks send nothing again (and provisioning is not stuck yet)
    assert lifecycle.tick(platform)["outbox_retried"] == 0
    assert len(recording.sent) == 2


def test_partial_failure_resends_only_what_is_missing(platform, tables, sync, recording, clock):
    sync(("WKSHP-MAIL", {"seats": 2}))

    class OrderRelayDown:
        def send(self, email):
            if email.subject.startswith("CREATE"):
                raise __import__("chalicelib.domain.errors", fromlist=["Unavailable"]).Unavailable("backend relay down")
            recording.send(email)

    platform.mailer = OrderRelayDown()
    created = registrations.register(platform, BODY)
    assert tables.customers.get(created["id"]).outbox == ["order:CREATE"]
    platform.mailer = recording
    clock.advance(minutes=5)
    lifecycle.tick(platform)
    assert [e.subject.split()[0] for e in recording.sent] == ["You're", "CREATE"]


def test_two_overlapping_ticks_send_once(platform, tables, sync, recording, clock):
    sync(("WKSHP-MAIL", {"seats": 2}))
    recording.failing = True
    registrations.register(platform, BODY)
    recording.failing = False
    clock.advance(minutes=5)
    from datetime import timedelta

    first = platform.stores.outbox.lease_due(clock(), timedelta(minutes=1))
    second = platform.stores.outbox.lease_due(clock(), timedelta(minutes=1))
    assert len(first) == 1 and second == []
