"""The one side-effect pipeline: what a state change owes is written with it and delivered by one
dispatcher; failures wait for a retry without holding back what later changes owe."""
from __future__ import annotations

import time
from datetime import timedelta

import pytest

from chalicelib.backend.intake import handle
from chalicelib.domain.orders import Order
from chalicelib.services import links, time_checks, webhooks
from tests.admintools import activate, callback, participant
from tests.factory import Clock
from tests.functional.test_backend_intake import order_mail

WORKSHOP = "WKSHP-PIPE"
EVENTS = ["registered", "provisioned", "reminder_sent", "failed", "finished"]


@pytest.fixture
def hook(platform, sync, recording):
    sync((WORKSHOP, {"seats": 2, "duration": 120}))
    return webhooks.create(platform, "test", {"url": "http://127.0.0.1:9/hook", "events": EVENTS})["id"]


def events(platform, hook_id: str) -> list[str]:
    return sorted(d.event for d in platform.stores.webhooks.deliveries(hook_id, 50))


def test_webhook_events_are_not_held_back_by_a_failing_email(platform, tables, hook, recording, client):
    recording.failing = True  # the welcome email and the order cannot go
    created = participant(platform, WORKSHOP, "ada@example.com")
    assert events(platform, hook) == ["registered"]
    assert tables.customers.get(created["id"]).outbox == ["welcome", "order:CREATE"]

    recording.failing = False
    activate(client, platform, created)  # the credentials email goes; the outbox is backing off
    assert events(platform, hook) == ["provisioned", "registered"]
    assert tables.customers.get(created["id"]).outbox is None  # delivered with it, at once


def test_reminder_sent_is_announced_only_once_the_reminder_went(platform, tables, hook, recording, client, clock):
    created = participant(platform, WORKSHOP, "ada@example.com")
    activate(client, platform, created)
    recording.failing = True
    clock.advance(minutes=61)
    time_checks.tick(platform)
    assert "reminder_sent" not in events(platform, hook)
    assert tables.customers.get(created["id"]).outbox == ["reminder", "webhook:reminder_sent"]

    recording.failing = False
    clock.advance(minutes=5)
    time_checks.tick(platform)
    assert "reminder_sent" in events(platform, hook)
    assert [e.subject for e in recording.to("ada@example.com")][-1].startswith("One hour left")


def test_an_unreadable_entry_neither_breaks_reads_nor_stays(platform, tables, hook, client, clock):
    created = participant(platform, WORKSHOP, "ada@example.com")
    item = tables.customers.get(created["id"])
    item.update(actions=[tables.customers.outbox.set(["carrier-pigeon:7", "thanks"]),
                         tables.customers.outbox_state.set("pending"),
                         tables.customers.outbox_due_at.set(clock())])
    assert client.http.get(f"/api/registrations/{links.action_token(platform, created['id'])}").status_code == 200
    assert time_checks.tick(platform)["outbox_retried"] == 1
    assert tables.customers.get(created["id"]).outbox is None


def test_a_failed_registration_is_not_leased_again_and_again(platform, hook, client, clock):
    created = participant(platform, WORKSHOP, "ada@example.com")
    clock.advance(minutes=11)  # provisioning stuck: failed, cleanup ordered
    assert time_checks.tick(platform)["stuck"] == 1
    callback(client, platform, {"registration": created["id"], "student": created["student"], "outcome": "cleaned",
                                "completion": None})
    assert events(platform, hook) == ["failed", "registered"]
    clock.advance(minutes=10)
    assert time_checks.tick(platform)["outbox_retried"] == 0
    clock.advance(minutes=10)
    assert time_checks.tick(platform)["outbox_retried"] == 0


def test_order_freshness_is_wall_time_even_when_business_time_runs_ahead(platform, client, monkeypatch):
    starter_calls = []
    platform.workflows = lambda order: starter_calls.append(order.execution_name) or True
    monkeypatch.setattr(platform, "clock", Clock(Clock()() + timedelta(days=3)))
    message = order_mail(platform, Order.new("CREATE", "WKSHP-X", "student7", "reg-1234567890abcdef", time.time()))
    assert handle(platform, message) == "started"
    assert starter_calls == ["reg-1234567890abcdef-CREATE"]
    (nonce,) = platform.stores.tables.nonces.scan()
    assert nonce.expires > time.time()  # kept for wall-clock freshness, not business time
