"""A confirmation racing the release of its hold at the very moment the hold runs out (the time
checks on one side, the participant's click on the other) changes things once: the hold is either
confirmed (seat kept, owes the welcome) or released (seat back, guard gone), never both. The
free-seat counter stays equal to the free students, no student is held by two registrations, and
two confirmations at once confirm once. Real HTTP to the embedded AWS, whose lock orders writes
like DynamoDB does."""
from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from datetime import timedelta

import pytest

from chalicelib.adapters.workshop_folders import load_catalog
from chalicelib.domain.lifecycle import CONFIRM, HOLD_EXPIRED, decide
from chalicelib.services import participant, registrations
from chalicelib.services.catalog import sync_workshop
from tests.factory import write_workshop

WORKSHOP = "WKSHP-RACE"


@pytest.fixture
def racing(served, tmp_path):
    served.settings = dataclasses.replace(served.settings, confirm_minutes=15)
    write_workshop(tmp_path / "w", WORKSHOP, students={"from": 1, "to": 12})
    [workshop], _ = load_catalog(tmp_path / "w", ["local"])
    sync_workshop(served, workshop)
    return served


def hold(ctx, n: int):
    view = registrations.register(ctx, {"workshop": WORKSHOP, "email": f"p{n}@example.com", "first_name": "P",
                                        "last_name": str(n), "company": "C", "accept_terms": True})
    assert view is not None and view["status"] == "unconfirmed"
    return ctx.stores.registrations.get(view["id"])


def at_once(*calls: Callable[[], object]) -> list[object]:
    start = threading.Barrier(len(calls))
    results: list[object] = [None] * len(calls)

    def run(i: int) -> None:
        start.wait()
        results[i] = calls[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def consistent(tables) -> None:
    students = list(tables.students.workshop_index.query(WORKSHOP))
    assert tables.workshops.get(WORKSHOP, consistent_read=True).seats_free == sum(s.status == "free" for s in students)
    for student in students:
        if student.registration_id:
            reg = tables.customers.get(student.registration_id, consistent_read=True)
            assert reg.student_id == student.id and reg.status in ("unconfirmed", "pending")
        else:
            assert student.status == "free"
    for guard in tables.emails.scan():
        assert tables.customers.get(guard.registration_id).status in ("unconfirmed", "pending")


def test_a_confirmation_racing_the_release_at_the_deadline_wins_or_loses_whole(racing):
    store, tables = racing.stores.registrations, racing.stores.tables
    for n in range(12):
        held = hold(racing, n)
        deadline = held.confirm_by

        def confirm(held=held, deadline=deadline):  # a click a microsecond before the deadline
            at = deadline - timedelta(microseconds=1)
            return store.apply(held, decide(held, CONFIRM, at), at)

        def release(held=held, deadline=deadline):  # the time checks at the deadline
            return store.apply(held, decide(held, HOLD_EXPIRED, deadline), deadline)

        confirmed, released = at_once(confirm, release) if n % 2 else at_once(release, confirm)[::-1]
        assert (confirmed is None) != (released is None)  # exactly one of them
        item = tables.customers.get(held.id, consistent_read=True)
        assert item.status == ("expired" if released is not None else "pending")
        assert bool(item.outbox) == (released is None)  # only a confirmed hold owes the welcome and the order
        consistent(tables)


def test_two_confirmations_at_once_confirm_once(racing):
    held = hold(racing, 1)
    results = at_once(*[lambda: participant.confirm(racing, held.id)] * 4)
    assert [r["status"] for r in results if isinstance(r, dict)] == ["pending"] * 4
    creates = [m for m in racing.mailer.sent if m.subject.startswith("CREATE")]
    assert len(creates) == 1
    consistent(racing.stores.tables)
