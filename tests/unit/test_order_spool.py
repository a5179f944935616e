"""Local SES inbound's order spool (``local/orders.py``): an order is on disk before the SMTP
answer, the intake runs in the background and is retried, one it keeps failing on becomes a
dead letter, and what a crash left is run at the next start. Files in tmp_path, no server."""
from __future__ import annotations

import json
import threading
import time

from local.orders import OrderRouter, OrderSpool


def wait_for(condition, seconds=5.0):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_an_order_is_kept_then_handed_to_the_intake_in_the_background(tmp_path):
    release, seen = threading.Event(), []

    def intake(event, context):
        release.wait(5)
        seen.append(json.loads(event["Records"][0]["Sns"]["Message"])["mail"]["destination"])
        return "started"

    spool = OrderSpool(tmp_path / "orders", intake)
    spool.start()
    inbox = []
    router = OrderRouter(lambda *args: inbox.append(args), intake, ["orders@backend.wod.local"], spool)
    router(b"Subject: order\r\n\r\nbody", "noreply@wod.local", ["Orders@backend.wod.local", "ada@example.com"])
    assert spool.pending == 1 and seen == []  # answered before the intake ran
    assert [args[2] for args in inbox] == [["ada@example.com"]]
    release.set()
    wait_for(lambda: spool.pending == 0)
    assert seen == [["Orders@backend.wod.local"]]
    spool.stop()


def test_a_failing_intake_is_retried_then_kept_as_a_dead_letter(tmp_path):
    calls = []

    def flaky(event, context):
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError("the embedded AWS is busy")
        return "started"

    spool = OrderSpool(tmp_path / "orders", flaky, first_pause=0.01)
    spool.start()
    spool.put({"n": 1})
    wait_for(lambda: spool.pending == 0)
    assert len(calls) == 3 and not list((tmp_path / "orders" / "failed").iterdir())

    def broken(event, context):
        raise RuntimeError("always")

    dead = OrderSpool(tmp_path / "dead", broken, attempts=2, first_pause=0.01)
    dead.start()
    dead.put({"n": 2})
    wait_for(lambda: dead.pending == 0)
    assert [json.loads(p.read_text()) for p in (tmp_path / "dead" / "failed").iterdir()] == [{"n": 2}]
    spool.stop()
    dead.stop()


def test_orders_left_by_a_crash_are_run_at_the_next_start(tmp_path):
    stuck = threading.Event()

    def dies(event, context):
        stuck.wait(10)
        raise RuntimeError("the process is going away")

    first = OrderSpool(tmp_path / "orders", dies)
    first.start()
    first.put({"n": 1})
    first.stopping.set()  # stopped mid-intake: the order stays on disk
    stuck.set()
    first.pool.shutdown(wait=True)
    (tmp_path / "orders" / ".tmp-half-written").write_text("{")
    assert first.pending == 1

    seen = []
    again = OrderSpool(tmp_path / "orders", lambda event, context: seen.append(event))
    assert again.start() == 1
    wait_for(lambda: again.pending == 0)
    assert seen == [{"n": 1}] and not list((tmp_path / "orders").glob(".tmp-*"))
    again.stop()


def test_orders_that_keep_failing_or_cannot_be_read_hold_no_thread(tmp_path):
    """Six unreadable leftovers and an order whose intake keeps failing, on a one-thread spool:
    the unreadable ones are put aside at once, the failing one waits for its retries off the
    thread, and a good order goes through meanwhile."""
    directory = tmp_path / "orders"
    directory.mkdir()
    for n in range(6):
        (directory / f"{n}-junk.json").write_text("{not json")
    done = []

    def intake(event, context):
        if event.get("bad"):
            raise RuntimeError("refused, for now")
        done.append(event["n"])
        return "started"

    spool = OrderSpool(directory, intake, threads=1, attempts=5, first_pause=2.0)
    spool.start()
    spool.put({"bad": True})
    spool.put({"n": 1})
    wait_for(lambda: done == [1], seconds=1.5)  # well before the failing order's first retry
    assert len(list((directory / "failed").iterdir())) == 6
    spool.stop()
