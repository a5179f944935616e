"""The embedded DynamoDB serves one request at a time: the web's (someone waits for them) before
the workers', without starving the workers; a waitlist place is numbered without a request; and
claims made at the same moment in one process try different students."""
from __future__ import annotations

import threading
import time

from chalicelib.store import registrations
from local.aws import TurnLock


def queued(lock: TurnLock, interactive: int, background: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while (len(lock._waiting[0]), len(lock._waiting[1])) != (interactive, background):
        assert time.monotonic() < deadline, "the waiters did not queue"
        time.sleep(0.001)


def test_interactive_requests_go_first_and_a_background_one_gets_every_nth_turn():
    lock = TurnLock(background_turn=2)
    order: list[str] = []
    lock.acquire()  # held while the others queue, in this order
    waiters = []
    arrivals = [("b1", False), ("i1", True), ("i2", True), ("i3", True), ("b2", False), ("i4", True)]
    for n, (name, interactive) in enumerate(arrivals):
        def turn(name=name, interactive=interactive):
            lock.acquire(interactive)
            order.append(name)
            lock.release()

        waiters.append(threading.Thread(target=turn))
        waiters[-1].start()
        queued(lock, sum(i for _, i in arrivals[:n + 1]), sum(not i for _, i in arrivals[:n + 1]))
    lock.release()
    for waiter in waiters:
        waiter.join(10)
    assert order == ["i1", "i2", "b1", "i3", "i4", "b2"]


def test_the_lock_is_free_again_once_nobody_waits():
    lock = TurnLock()
    with lock:
        pass
    lock.acquire(interactive=True)
    lock.release()
    assert not lock._held and not any(lock._waiting)
    got = threading.Event()
    threading.Thread(target=lambda: (lock.acquire(), got.set(), lock.release())).start()
    assert got.wait(10), "a free lock was not given"


def test_waitlist_places_are_numbered_in_claim_order_even_when_the_clock_steps_back(monkeypatch):
    now = [1_800_000_000.0]
    monkeypatch.setattr(registrations.time, "time", lambda: now[0])
    first = registrations.place_number()
    now[0] -= 5  # the wall clock corrected backwards
    second = registrations.place_number()
    now[0] += 10
    third = registrations.place_number()
    assert first < second < third
    assert len({first % 1000, second % 1000, third % 1000}) == 1  # this process's own last digits


def test_claims_of_one_process_at_the_same_moment_try_different_students():
    trying = registrations._Trying()
    first_read, second_read = ["s1", "s2", "s3"], ["s1", "s2", "s3"]
    with trying.one_of(first_read) as first, trying.one_of(second_read) as second:
        assert (first, second) == ("s1", "s2")
        assert first_read == ["s2", "s3"] and second_read == ["s1", "s3"]  # what is left to try next
        with trying.one_of(["s2"]) as third:  # every student it read is being tried: it tries one all the same
            assert third == "s2"
        with trying.one_of(["s2", "s3"]) as fourth:  # s2 is still tried by the second claim
            assert fourth == "s3"
    with trying.one_of(["s1"]) as again:  # tried and done: free to try again
        assert again == "s1"
