"""The warm pool: free students with a running server, topped up by the time checks."""
from __future__ import annotations

import json
from datetime import timedelta

from chalicelib.services import registrations
from chalicelib.services import time_checks as lifecycle
from tests.admintools import api

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


def orders(recording, action):
    return [json.loads(e.text) for e in recording.sent if e.subject.startswith(action)]


def warmed(platform, recording) -> list[str]:
    """Every WARM order so far carried out: the student is warm."""
    students = [o["student"] for o in orders(recording, "WARM")]
    for student in students:
        platform.stores.warm.mark_warm(student)
    return students


def test_an_expected_turnout_is_warmed_before_the_start_and_drained_after(platform, sync, recording, clock, client):
    """An organiser expects 4 of 6 seats filled at a start 40 minutes away: only the folder's pool
    of 1 is warm until 15 minutes before the start; then the expected 4 (less the seats taken); 30
    minutes after the start the spare ones go, back to the folder's pool."""
    sync(("WKSHP-WARM", {"seats": 6, "warm_pool": 1}))
    start = clock() + timedelta(minutes=40)
    status, body = api(client, platform, "PATCH", "/api/admin/workshops/WKSHP-WARM",
                       {"expected": 4, "starts_at": start.isoformat()})
    assert status == 200 and body["expected"] == 4, body
    assert lifecycle.tick(platform)["warming"] == 1  # the folder's pool only
    warmed(platform, recording)

    clock.advance(minutes=26)  # 14 minutes before the start
    assert lifecycle.tick(platform)["warming"] == 3
    assert len(set(warmed(platform, recording))) == 4
    seated = registrations.register(platform, BODY | {"email": "early@example.com"})
    assert seated["student"] in warmed(platform, recording)  # a warm one is taken first
    assert lifecycle.tick(platform)["warming"] == 0  # 4 expected: 1 seated, 3 warm

    clock.advance(minutes=45)  # 31 minutes after the start: back to the folder's pool
    assert lifecycle.tick(platform)["warming"] == 2
    purges = orders(recording, "PURGE")
    assert all(o["registration"] == f"purge-{o['student']}" for o in purges) and len(purges) == 2
    still = [s for s in platform.stores.warm.free_students("WKSHP-WARM") if s.warm]
    assert len(still) == 1 and still[0].id not in {o["student"] for o in purges}
    assert lifecycle.tick(platform)["warming"] == 0


def test_expected_turnout_and_start_are_validated_and_cleared_with_null(platform, sync, client):
    sync(("WKSHP-WARM", {"seats": 2}))
    for edit, field in (({"expected": -1}, "expected"), ({"expected": "many"}, "expected"),
                        ({"starts_at": "tomorrow"}, "starts_at"), ({"starts_at": "2026-12-04T09:00:00"}, "starts_at"),
                        ({"starts_at": "0001-01-01T00:00:00+01:00"}, "starts_at"),
                        ({"starts_at": "9999-12-31T23:59:59-01:00"}, "starts_at"),
                        ({"expected": 2, "starts_at": "0001-01-01T00:05:00+00:00"}, "starts_at")):
        status, body = api(client, platform, "PATCH", "/api/admin/workshops/WKSHP-WARM", edit)
        assert status == 422 and field in body["fields"], body
    assert lifecycle.tick(platform)["warming"] == 0  # nothing out of range was kept to trip the time checks
    api(client, platform, "PATCH", "/api/admin/workshops/WKSHP-WARM",
        {"expected": 2, "starts_at": "2026-12-04T09:00:00+01:00"})
    workshop = platform.stores.seats.get_workshop("WKSHP-WARM")
    assert workshop.expected == 2 and workshop.starts_at.isoformat() == "2026-12-04T08:00:00+00:00"
    api(client, platform, "PATCH", "/api/admin/workshops/WKSHP-WARM", {"expected": None, "starts_at": None})
    workshop = platform.stores.seats.get_workshop("WKSHP-WARM")
    assert workshop.expected == 0 and workshop.starts_at is None


def test_the_servers_warmed_for_an_expected_turnout_are_the_ones_participants_get(platform, sync, recording, client):
    """A workshop whose folder keeps no pool, warmed only for the turnout an organiser expects."""
    sync(("WKSHP-WARM", {"seats": 10}))
    status, _ = api(client, platform, "PATCH", "/api/admin/workshops/WKSHP-WARM", {"expected": 3})
    assert status == 200
    assert lifecycle.tick(platform)["warming"] == 3
    warm = warmed(platform, recording)
    seated = [registrations.register(platform, BODY | {"email": f"p{n}@example.com"})["student"] for n in range(3)]
    assert sorted(seated) == sorted(warm)


def test_a_large_turnout_warms_a_few_at_a_time(platform, sync, recording, client):
    """At most ``warm_at_once`` servers warm at once, all workshops together; the next time checks
    order more as those become warm, until every pool is at its target."""
    import dataclasses

    from chalicelib.services import warming

    platform.settings = dataclasses.replace(platform.settings, warm_at_once=3)
    sync(("WKSHP-WARM", {"seats": 10}), ("WKSHP-WARM2", {"seats": 4, "warm_pool": 2}))
    api(client, platform, "PATCH", "/api/admin/workshops/WKSHP-WARM", {"expected": 6})
    assert lifecycle.tick(platform)["warming"] == 3  # 8 wanted, 3 at once
    assert {o["workshop"] for o in orders(recording, "WARM")} == {"WKSHP-WARM", "WKSHP-WARM2"}  # in turn
    assert lifecycle.tick(platform)["warming"] == 0  # none warm yet: none more
    marked: set[str] = set()
    while pending := [o for o in orders(recording, "WARM") if o["student"] not in marked]:
        assert len(pending) <= 3  # never more than warm_at_once in flight
        marked.add(pending[0]["student"])
        warming.mark(platform, {"order": pending[0]})
        lifecycle.tick(platform)  # the next time check orders the next one
    warm = {w: [s for s in platform.stores.warm.free_students(w) if s.warm] for w in ("WKSHP-WARM", "WKSHP-WARM2")}
    assert (len(warm["WKSHP-WARM"]), len(warm["WKSHP-WARM2"])) == (6, 2)
    assert lifecycle.tick(platform)["warming"] == 0 and len(orders(recording, "WARM")) == 8
