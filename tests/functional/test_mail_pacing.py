"""Mail at the service's rate: one budget for every sender, orders and credentials first, SES's
throttles taken as "later" (never as a failure that costs a seat), and the outbox draining a
backlog as fast as the rate allows."""
from __future__ import annotations

from datetime import timedelta

import pytest

from chalicelib.adapters.mail import MailThrottled
from chalicelib.domain.mail import Email
from chalicelib.domain.outbox import ORDER
from chalicelib.services import outbox, pacing, registrations
from chalicelib.services import time_checks as lifecycle
from tests.factory import signed_callback
from tests.mailtools import throttled_mail


def register(platform, workshop: str, n: int) -> dict:
    return registrations.register(platform, {"workshop": workshop, "email": f"p{n}@example.com",
                                             "first_name": "P", "last_name": str(n), "company": "C",
                                             "accept_terms": True})


def ready(client, platform, created: dict, password: str) -> int:
    body, headers = signed_callback({"registration": created["id"], "student": created["student"],
                                     "outcome": "ready", "password": password,
                                     "hub_url": platform.settings.hub_url}, platform.key("callback_key"))
    return client.http.post("/api/callbacks/provision", body=body, headers=headers).status_code


def test_a_burst_under_throttling_costs_no_seat_and_every_participant_gets_credentials(
        client, platform, tables, sync, clock):
    sync(("WKSHP-BURST", {"seats": 12, "duration": 240}))
    # SES takes 3 a second; the pacer believes 4 (another sender shares the account)
    ses, wall = throttled_mail(platform, per_second=3, rate=4, max_wait=2)
    created = [register(platform, "WKSHP-BURST", n) for n in range(12)]
    assert {c["status"] for c in created} == {"pending"}
    ses.storm = (wall.now(), wall.now() + 6)  # then SES refuses everything for 6 seconds
    assert [ready(client, platform, c, f"Passw0rd{n:04d}") for n, c in enumerate(created)] == [200] * 12
    assert ses.throttled > 0

    def credentials_of(address: str) -> list[int]:
        return [i for i, (_, subject, to) in enumerate(ses.sent) if to == address and "is ready" in subject]

    deferred = [c for n, c in enumerate(created) if not credentials_of(f"p{n}@example.com")]
    assert deferred, "the storm should have kept some credentials from going at once"
    for _ in range(10):  # the time checks deliver the new-password orders; the backend answers each
        clock.advance(minutes=1)
        seen = len(ses.sent)
        lifecycle.tick(platform)
        for _, subject, _ in ses.sent[seen:]:
            if subject.startswith("RESET"):
                match = next(c for c in created if c["student"] == subject.split()[2])
                assert ready(client, platform, match, "N3wPassword1") == 200
        if all(credentials_of(f"p{n}@example.com") for n in range(12)) and \
                all(tables.customers.get(c["id"]).outbox is None for c in created):
            break
    for n, c in enumerate(created):
        reg = tables.customers.get(c["id"])
        assert reg.status == "active" and tables.students.get(c["student"]).status == "active"
        assert credentials_of(f"p{n}@example.com"), f"p{n} never got credentials"
        assert reg.outbox is None  # welcome and orders delivered too
    assert tables.workshops.get("WKSHP-BURST").seats_free == 0
    assert not [s for s in ses.subjects() if s.startswith(("We could not", "CLEANUP", "PURGE"))]
    assert max(ses.per_second_counts().values()) <= 3


def test_orders_go_before_participant_mail_when_the_budget_is_short(platform, tables, sync, recording, clock):
    sync(("WKSHP-FULL", {"seats": 1}), ("WKSHP-OPEN", {"seats": 4}))
    recording.failing = True  # everything waits in the outbox: the waitlist emails are the oldest
    for n in range(9):
        register(platform, "WKSHP-FULL", n)
        clock.advance(seconds=1)
    for n in range(10, 14):
        register(platform, "WKSHP-OPEN", n)
        clock.advance(seconds=1)
    ses, wall = throttled_mail(platform, per_second=100, rate=4)  # 4 a second, participant mail 2 of them
    clock.advance(minutes=10)
    assert outbox.deliver_due(platform) == 13
    subjects = ses.subjects()
    orders = [i for i, s in enumerate(subjects) if s.startswith("CREATE")]
    waitlist = [i for i, s in enumerate(subjects) if "waitlist" in s]
    assert len(orders) == 5 and len(waitlist) == 8
    assert max(orders) < min(waitlist)  # every order before any waitlist email
    for second, count in ses.per_second_counts().items():
        bulk = sum(1 for s, subject, _ in ses.sent if s == second and not subject.startswith("CREATE"))
        assert count <= 4 and bulk <= 2


def test_the_outbox_drains_more_than_fifty_in_one_run_at_the_rate(platform, tables, sync, recording, clock):
    sync(("WKSHP-BIG", {"seats": 1}))
    recording.failing = True
    for n in range(60):
        register(platform, "WKSHP-BIG", n)
    ses, wall = throttled_mail(platform, per_second=40)  # budget: 40 a second, 28 of them participant mail
    started = wall.now()
    clock.advance(minutes=10)
    assert outbox.deliver_due(platform) == 60
    assert len(ses.sent) == 61 and ses.throttled == 0  # 60 emails and the one seat's order
    assert max(ses.per_second_counts().values()) <= 40
    assert wall.now() - started <= 4  # about 60 / 28 seconds of wall time
    assert all(tables.customers.get(r.id).outbox is None for r in tables.customers.scan())


def test_a_backlog_past_the_run_is_left_for_the_next_run(platform, tables, sync, recording, clock):
    sync(("WKSHP-BIG", {"seats": 1}))
    recording.failing = True
    for n in range(30):
        register(platform, "WKSHP-BIG", n)
    ses, wall = throttled_mail(platform, per_second=3)  # 2 participant emails a second
    clock.advance(minutes=10)
    outbox.deliver_due(platform, drain_seconds=4)
    first_run = len(ses.sent)
    assert 5 <= first_run <= 15
    assert sum(1 for r in tables.customers.scan() if r.outbox) > 0
    outbox.deliver_due(platform, drain_seconds=60)  # the entries left are due at once: no backoff
    assert len(ses.sent) == 31


def test_participant_mail_past_its_share_waits_without_an_error(platform, tables, sync, clock):
    sync(("WKSHP-FULL", {"seats": 1}))
    ses, wall = throttled_mail(platform, per_second=3)  # per window: 3 emails, 2 of them participant mail
    created = [register(platform, "WKSHP-FULL", n) for n in range(4)]
    waiting = [tables.customers.get(c["id"]) for c in created[1:]]  # the first one's welcome took the share
    assert [r.outbox for r in waiting] == [["waitlisted"]] * 3
    assert all(r.outbox_error is None and r.outbox_attempts == 0 and r.outbox_due_at <= clock()
               for r in waiting)
    assert ses.throttled == 0  # deferred without asking SES


def test_an_order_waits_for_the_next_second_rather_than_fail(platform, sync):
    sync(("WKSHP-W", {"seats": 1}))
    ses, wall = throttled_mail(platform, per_second=3)
    start = wall.now()
    for n in range(7):
        pacing.send(platform, outbox.order_email(platform, "CREATE", n, platform.stores.seats.get_workshop("WKSHP-W"),
                                                 "s1", f"r{n}"), urgent=True)
    assert len(ses.sent) == 7 and ses.throttled == 0
    assert int(wall.now()) - int(start) >= 2  # three windows


def test_no_budget_in_time_is_throttled_not_failed(platform, sync):
    ses, wall = throttled_mail(platform, per_second=3, max_wait=2)
    ses.storm = (0, float("inf"))
    with pytest.raises(MailThrottled) as raised:
        pacing.send(platform, Email(to="orders@backend.wod.local", subject="CREATE x", text="{}"), urgent=True)
    assert not raised.value.daily and ses.sent == []
    assert wall.now() - 1_800_000_000 <= 3  # it gave up after about max_wait


def test_an_exhausted_daily_quota_is_reported_and_pauses_sending(platform, tables, sync, clock, caplog):
    sync(("WKSHP-Q", {"seats": 3}))
    ses, wall = throttled_mail(platform, per_second=50, daily=1)
    created = register(platform, "WKSHP-Q", 1)  # the welcome goes; the order hits the quota
    stored = tables.customers.get(created["id"])
    assert stored.outbox == ["order:CREATE"] and "daily" in stored.outbox_error
    assert stored.outbox_attempts == 1  # backs off like an outage: the quota renews in hours
    assert platform.pacer.paused()
    asked = ses.throttled + len(ses.sent)
    register(platform, "WKSHP-Q", 2)
    clock.advance(hours=1)
    assert outbox.deliver_due(platform) == 0  # nothing is tried while paused
    assert ses.throttled + len(ses.sent) == asked
    assert any("daily sending quota is exhausted" in r.getMessage() for r in caplog.records)


def test_entries_owing_an_order_are_leased_first(platform, tables, sync, recording, clock):
    sync(("WKSHP-FULL", {"seats": 1}), ("WKSHP-OPEN", {"seats": 2}))
    recording.failing = True
    for n in range(6):
        register(platform, "WKSHP-FULL", n)
        clock.advance(seconds=1)
    register(platform, "WKSHP-OPEN", 9)
    clock.advance(minutes=10)
    leased = platform.stores.outbox.lease_due(clock(), timedelta(minutes=1), limit=2)
    assert [any(e.kind == ORDER for e in r.outbox) for r in leased] == [True, True]
    assert {r.workshop_id for r in leased} == {"WKSHP-FULL", "WKSHP-OPEN"}  # not the older waitlist emails


def test_the_rate_is_read_from_ses_when_not_set(aws):
    from chalicelib.services.pacing import pacer_for
    from chalicelib.settings import Settings

    assert pacer_for(Settings(mail_transport="ses", region="us-east-1")).rate() == 1.0  # moto's sandbox rate


def test_a_relay_outage_ends_the_drain_without_waiting(platform, sync, recording, clock):
    sync(("WKSHP-OUT", {"seats": 3}))
    recording.failing = True
    for n in range(3):
        register(platform, "WKSHP-OUT", n)
    ses, wall = throttled_mail(platform, per_second=10)
    platform.mailer = recording  # still down: failures back off, they do not wait for the rate
    clock.advance(minutes=10)
    started = wall.now()
    assert outbox.deliver_due(platform) == 3
    assert wall.now() == started
