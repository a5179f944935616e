"""The warm pool: free students with a running server, topped up by the time checks."""
from __future__ import annotations

import json

from chalicelib.services import registrations
from chalicelib.services import time_checks as lifecycle

BODY = {"workshop": "WKSHP-WARM", "first_name": "W", "last_name": "P", "company": "C", "accept_terms": True}


def warm_orders(recording):
    return [json.loads(e.text) for e in recording.sent if e.subject.startswith("WARM")]


def test_pool_is_topped_up_once_and_never_beyond_free_seats(platform, sync, recording, clock):
    sync(("WKSHP-WARM", {"seats": 3, "warm_pool": 2}))
    assert lifecycle.tick(platform)["warming"] == 2
    assert lifecycle.tick(platform)["warming"] == 0  # being warmed: not ordered twice
    ordered = [o["student"] for o in warm_orders(recording)]
    assert len(set(ordered)) == 2
    for student in ordered:
        assert platform.stores.warm.mark_warm(student)
    assert lifecycle.tick(platform)["warming"] == 0

    seated = registrations.register(platform, BODY | {"email": "a@example.com"})
    assert seated["student"] in ordered  # a warm student is taken first
    assert lifecycle.tick(platform)["warming"] == 1  # 2 free seats left, 1 still warm
    registrations.register(platform, BODY | {"email": "b@example.com"})
    registrations.register(platform, BODY | {"email": "c@example.com"})
    assert lifecycle.tick(platform)["warming"] == 0  # no free seat, no pool


def test_a_warming_claim_expires_so_a_lost_order_is_retried(platform, sync, recording, clock):
    sync(("WKSHP-WARM", {"seats": 1, "warm_pool": 1}))
    assert lifecycle.tick(platform)["warming"] == 1
    clock.advance(minutes=11)
    assert lifecycle.tick(platform)["warming"] == 1
    assert [o["attempt"] for o in warm_orders(recording)] == [1, 2]


def test_warm_pool_larger_than_the_workshop_is_refused(tmp_path):
    from chalicelib.adapters.workshop_folders import load_catalog
    from tests.factory import write_workshop

    write_workshop(tmp_path / "w", "WKSHP-BIG", seats=2, warm_pool=3)
    problems = load_catalog(tmp_path / "w", ["local"])[1]
    assert any("warm_pool cannot exceed" in message for _, _, message in problems)


def test_claiming_a_student_mid_warm_keeps_it_reserved(platform, tables, sync, recording):
    sync(("WKSHP-WARM", {"seats": 1, "warm_pool": 1}))
    lifecycle.tick(platform)
    [order] = warm_orders(recording)
    registrations.register(platform, BODY | {"email": "a@example.com"})
    assert not platform.stores.warm.mark_warm(order["student"])  # the WARM run ends; provisioning carries on
    assert tables.students.get(order["student"]).status == "reserved"
