"""Time checks against the locked moto server: only due items are read, overlapping or
interrupted ticks never act twice."""
from __future__ import annotations

import threading

import pytest

from chalicelib.adapters.workshop_folders import load_catalog
from chalicelib.services import time_checks as lifecycle
from chalicelib.services.catalog import sync_workshop
from tests.factory import Clock, seed_active, write_workshop


@pytest.fixture
def ticking(served, tmp_path):
    write_workshop(tmp_path / "w", "WKSHP-TICK", seats=1)
    [workshop], _ = load_catalog(tmp_path / "w", ["local"])
    sync_workshop(served, workshop)
    served.clock = Clock()
    return served


def reminders(context):
    return [e for e in context.mailer.sent if e.subject.startswith("One hour left")]


def test_a_tick_reads_only_what_is_due(ticking):
    due = seed_active(ticking.stores.tables, ticking.clock, due=5, not_due=3000)
    counts = lifecycle.tick(ticking)
    assert (counts["read"], counts["reminders"]) == (5, 5)
    assert sorted(e.to for e in reminders(ticking)) == sorted(f"p{n}@example.com" for n in range(5))
    assert all(ticking.stores.tables.customers.get(i).reminder_sent for i in due)
    assert lifecycle.tick(ticking)["read"] == 0


def test_two_ticks_at_once_act_once(ticking):
    seed_active(ticking.stores.tables, ticking.clock, due=20, not_due=0)
    results = []
    threads = [threading.Thread(target=lambda: results.append(lifecycle.tick(ticking))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(r["reminders"] for r in results) == 20
    assert len(reminders(ticking)) == 20
    assert len({e.to for e in reminders(ticking)}) == 20


def test_a_tick_that_dies_halfway_is_finished_by_the_next(ticking):
    seed_active(ticking.stores.tables, ticking.clock, due=6, not_due=0)
    mailer, sent = ticking.mailer, 0

    class DiesAfterTwo:
        def send(self, email):
            nonlocal sent
            if sent == 2:
                raise RuntimeError("the Lambda timed out")
            sent += 1
            mailer.send(email)

    ticking.mailer = DiesAfterTwo()
    with pytest.raises(RuntimeError):
        lifecycle.tick(ticking)
    ticking.mailer = mailer
    ticking.clock.advance(minutes=2)  # past the outbox lease of the interrupted run
    lifecycle.tick(ticking)
    assert sorted(e.to for e in reminders(ticking)) == sorted(f"p{n}@example.com" for n in range(6))
