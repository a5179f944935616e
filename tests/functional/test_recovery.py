"""Recovery of a restarted local stack (``services/recovery``): provisioning in flight is ordered
again through the outbox with a new stuck deadline, appliances of active participants start
again; twice is harmless and a crash halfway loses nothing."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest

from chalicelib.domain.lifecycle import PROVISIONED
from chalicelib.domain.orders import Order
from chalicelib.services import outbox, registrations, time_checks
from chalicelib.services.commit import commit
from chalicelib.services.recovery import hold_provisioning, recover

APPLIANCE = {"command": ["{python}", "appliance/server.py", "--port", "{port}"], "port_base": 9700,
             "health_path": "/health"}


class RecordingAppliances:
    def __init__(self):
        self.started: list[tuple] = []

    def start(self, workshop_id, student, appliance, port):
        self.started.append((workshop_id, student, port))


@pytest.fixture
def seated(sync, recording, platform):
    """Three seated registrations of an appliance workshop (one of them active), one waitlisted."""
    sync(("WKSHP-REC", {"students": {"prefix": "rec", "from": 1, "to": 3}, "appliance": APPLIANCE}))
    created = [registrations.register(platform, {"workshop": "WKSHP-REC", "email": f"r{n}@example.com",
                                                 "first_name": "R", "last_name": str(n), "company": "C",
                                                 "accept_terms": True}) for n in range(4)]
    assert [c["status"] for c in created] == ["pending"] * 3 + ["waitlisted"]
    commit(platform, platform.stores.registrations.get(created[0]["id"]), PROVISIONED, duration=timedelta(minutes=60))
    platform.appliances = RecordingAppliances()
    recording.sent.clear()
    return created


def create_orders(mailer) -> list[Order]:
    return [Order(**json.loads(e.text)) for e in mailer.sent if e.subject.startswith("CREATE ")]


def test_in_flight_provisioning_is_ordered_again_and_not_failed_as_stuck(platform, recording, clock, seated):
    clock.advance(minutes=platform.settings.stuck_minutes + 5)  # the stack was down past every deadline
    counts = recover(platform)
    assert counts == {"provisioning_redriven": 2, "appliances_started": 1, "errors": 0}

    in_flight = [c["id"] for c in seated[1:3]]
    assert sorted(o.execution_name for o in create_orders(recording)) == sorted(f"{i}-CREATE" for i in in_flight)
    for registration_id in in_flight:
        reg = platform.stores.registrations.get(registration_id)
        assert reg.status == "pending" and reg.outbox == ()
        assert reg.due_at == clock() + timedelta(minutes=platform.settings.stuck_minutes)
    assert time_checks.tick(platform)["stuck"] == 0

    number = int(seated[0]["student"].removeprefix("rec"))
    assert platform.appliances.started == [("WKSHP-REC", seated[0]["student"], APPLIANCE["port_base"] + number - 1)]
    waiting = platform.stores.registrations.get(seated[3]["id"])
    assert waiting.status == "waitlisted"


def test_twice_is_harmless(platform, recording, seated):
    recover(platform)
    recover(platform)
    names = [o.execution_name for o in create_orders(recording)]
    assert len(names) == 4 and len(set(names)) == 2  # the same workflow asked for again: a duplicate
    workshop = platform.stores.seats.get_workshop("WKSHP-REC")
    assert workshop.seats_free == 0


def test_a_crash_halfway_loses_nothing(platform, recording, clock, seated):
    recording.failing = True  # the order is owed, but not sent (as if the stack died right there)
    assert recover(platform)["provisioning_redriven"] == 2
    for c in seated[1:3]:
        assert [e.format() for e in platform.stores.registrations.get(c["id"]).outbox] == ["order:CREATE"]
    assert recover(platform)["provisioning_redriven"] == 2  # the next start: owed once, not twice
    for c in seated[1:3]:
        assert [e.format() for e in platform.stores.registrations.get(c["id"]).outbox] == ["order:CREATE"]

    recording.failing = False
    clock.advance(minutes=5)  # past the outbox's lease and retry time: the time checks deliver it
    outbox.deliver_due(platform)
    assert sorted(o.registration for o in create_orders(recording)) == sorted(c["id"] for c in seated[1:3])


def test_a_registration_that_moved_on_is_left_alone(platform, recording, seated):
    from chalicelib.services import seats

    seats.fail(platform, platform.stores.registrations.get(seated[1]["id"]), "gave up", compensated=True)
    assert platform.stores.registrations.get(seated[3]["id"]).status == "pending"  # the waitlist took the seat
    recording.sent.clear()
    counts = recover(platform)
    assert counts["provisioning_redriven"] == 2
    assert sorted(o.registration for o in create_orders(recording)) == sorted(c["id"] for c in seated[2:])


def test_held_before_the_first_time_check_nothing_is_failed_as_stuck(platform, recording, clock, seated):
    clock.advance(minutes=platform.settings.stuck_minutes + 5)
    assert hold_provisioning(platform) == 2
    assert recording.sent == []  # nothing ordered yet: the hub may not answer
    assert time_checks.tick(platform)["stuck"] == 0
    assert recover(platform)["provisioning_redriven"] == 2
