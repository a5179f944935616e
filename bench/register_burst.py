"""Burst of concurrent registrations against a fresh local stack: speed, then correctness.

    python bench/register_burst.py [--n 300] [--seats 100] [--concurrency 50]

Starts its own ``python -m local`` (tests/stack.py) on free ports with one workshop of
``--seats`` seats, fires ``--n`` registrations with distinct emails from
``--concurrency`` threads at ``POST /api/registrations``, then reads every
registration back and checks the seat invariants. The last line is ``CORRECT`` or
``INCORRECT: <why>``; the exit code is 0, 1 (incorrect) or 2 (the stack did not start).

A 503 is the documented "overloaded, try again" answer: it is counted and shown,
not treated as incorrect; the invariants are checked over the accepted (202) ones, found by email
through the admin API (the answer names no registration). Email confirmation is off
(``WOD_CONFIRM_MINUTES=0``): this measures claiming seats.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests

from tests.factory import write_workshop
from tests.stack import LocalStack, StackError

WORKSHOP = "WKSHP-BENCH"
TITLE = "Burst benchmark workshop"
# The stack runs without its backend (WOD_LOCAL_BACKEND=0): orders land in the inbox and no
# provisioning runs, so this measures the registration path alone (seats, waitlist, mail).
ORDERS = "orders@backend.wod.local"
REQUEST_TIMEOUT = 120
CACHE_SECONDS = 2.0  # WOD_WORKSHOP_CACHE_SECONDS's default, which the bench's stack keeps

_local = threading.local()


def session() -> requests.Session:
    """One HTTP session (and keep-alive connection) per worker thread."""
    if not hasattr(_local, "session"):
        _local.session = requests.Session()
    return _local.session


def register(app_url: str, n: int, run: str) -> dict:
    body = {
        "workshop": WORKSHOP, "email": f"burst-{run}-{n:05d}@example.com", "first_name": f"User{n}",
        "last_name": "Burst", "company": "Bench & Co", "accept_terms": True,
    }
    started = time.perf_counter()
    try:
        response = session().post(f"{app_url}/api/registrations", json=body, timeout=REQUEST_TIMEOUT)
        status, payload = response.status_code, _json(response)
    except requests.RequestException as exc:
        status, payload = f"error:{type(exc).__name__}", {"error": str(exc)[:300]}
    return {"n": n, "email": body["email"], "status": status, "ms": (time.perf_counter() - started) * 1000,
            "body": payload}


def registration_ids(stack: LocalStack) -> dict[str, str]:
    """email -> registration id of every registration of the workshop (the admin API)."""
    response = requests.get(f"{stack.app_url}/api/admin/registrations", timeout=REQUEST_TIMEOUT,
                            params={"workshop": WORKSHOP, "limit": 1000},
                            headers={"Authorization": f"Bearer {stack.secret('admin_token')}"})
    response.raise_for_status()
    return {r["email"]: r["id"] for r in response.json()["registrations"]}


def read_back(app_url: str, path: str) -> dict:
    response = session().get(app_url + path, timeout=REQUEST_TIMEOUT)
    return {"http": response.status_code, **(_json(response) or {})}


def _json(response: requests.Response) -> dict:
    try:
        data = response.json()
    except ValueError:
        return {"raw": response.text[:200]}
    return data if isinstance(data, dict) else {"raw": data}


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-len(sorted_values) * p // 100))  # ceil(n * p / 100)
    return sorted_values[int(rank) - 1]


def wait_for_mail(stack: LocalStack, expected: dict[str, int], timeout: float = 15) -> dict[str, list[dict]]:
    """Group the inbox by kind; poll until the expected counts are reached (or ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        groups: dict[str, list[dict]] = {"welcome": [], "waitlisted": [], "orders": []}
        for m in stack.messages():
            if m["subject"] == f"You're registered: {TITLE}":
                groups["welcome"].append(m)
            elif m["subject"] == f"You're on the waitlist: {TITLE}":
                groups["waitlisted"].append(m)
            elif ORDERS in m["to"] and m["subject"].startswith(f"CREATE {WORKSHOP} "):
                groups["orders"].append(m)
        if all(len(groups[k]) >= v for k, v in expected.items()) or time.monotonic() > deadline:
            return groups
        time.sleep(0.25)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=300, help="registrations to send (default 300)")
    parser.add_argument("--seats", type=int, default=100, help="seats in the workshop (default 100, max 1000)")
    parser.add_argument("--concurrency", type=int, default=50, help="concurrent client threads (default 50)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary state dir and print its path")
    args = parser.parse_args(argv)
    if args.n < 1 or not 1 <= args.seats <= 1000 or args.concurrency < 1:
        parser.error("need --n >= 1, 1 <= --seats <= 1000, --concurrency >= 1")

    tmp = Path(tempfile.mkdtemp(prefix="wod-bench-"))
    write_workshop(tmp / "workshops", WORKSHOP, seats=args.seats, title=TITLE,
                   description="Written by bench/register_burst.py.")
    run = f"{os.getpid()}"
    print(f"register_burst: n={args.n} seats={args.seats} concurrency={args.concurrency} "
          f"(cpus={os.cpu_count()}, python {sys.version.split()[0]})")
    started = time.monotonic()
    try:
        stack = LocalStack(tmp / "workshops", tmp / "state",
                           env={"WOD_LOCAL_BACKEND": "0", "WOD_CONFIRM_MINUTES": "0"}).start()
    except StackError as exc:
        print(f"INCORRECT: the local stack did not start\n{exc}")
        return 2
    print(f"stack ready in {time.monotonic() - started:.1f}s at {stack.app_url}")

    problems: list[str] = []
    try:
        # -- the burst -------------------------------------------------------------------------
        with ThreadPoolExecutor(max_workers=args.concurrency, thread_name_prefix="client") as pool:
            wall_start = time.perf_counter()
            results = list(pool.map(lambda n: register(stack.app_url, n, run), range(args.n)))
            wall = time.perf_counter() - wall_start

            accepted = [r for r in results if r["status"] == 202]
            # -- read everything back ----------------------------------------------------------
            ids = registration_ids(stack)
            unknown = [r["email"] for r in accepted if r["email"] not in ids]
            if unknown:
                problems.append(f"{len(unknown)} accepted registration(s) not stored (e.g. {unknown[0]})")
            back = list(pool.map(lambda r: read_back(stack.app_url, stack.participant_path(ids[r["email"]])),
                                 [r for r in accepted if r["email"] in ids]))
        # the pages read the workshops as they were at most WOD_WORKSHOP_CACHE_SECONDS (2 s) ago, each
        # web process its own copy: the count is right once that long has passed
        settled = time.monotonic() + CACHE_SECONDS + 5
        while True:
            workshops = {w["id"]: w for w in requests.get(f"{stack.app_url}/api/workshops", timeout=30).json()}
            if workshops[WORKSHOP]["seats_free"] == args.seats - min(len(accepted), args.seats) \
                    or time.monotonic() > settled:
                break
            time.sleep(0.25)

        latencies = sorted(r["ms"] for r in results)
        by_status = Counter(str(r["status"]) for r in results)
        shed = by_status.get("503", 0)
        seated = [b for b in back if b.get("status") == "pending"]
        waitlisted = [b for b in back if b.get("status") == "waitlisted"]
        students = [b["student"] for b in seated]
        duplicates = sum(c - 1 for c in Counter(students).values() if c > 1)
        positions = [b.get("position") for b in waitlisted]
        seats_free = workshops[WORKSHOP]["seats_free"]
        expect_seated = min(len(accepted), args.seats)
        expect_waitlisted = len(accepted) - expect_seated
        mail = wait_for_mail(stack, {"welcome": len(seated), "waitlisted": len(waitlisted), "orders": len(seated)})
        order_students = Counter(m["subject"].rsplit(" ", 1)[1] for m in mail["orders"])

        # -- report ----------------------------------------------------------------------------
        rows = [
            ("wall time", f"{wall:.2f} s"),
            ("registrations/s", f"{args.n / wall:.1f}"),
            ("latency p50/p95/p99", " / ".join(f"{percentile(latencies, p):.0f}" for p in (50, 95, 99))
             + f" ms (max {latencies[-1]:.0f})"),
            ("HTTP status", ", ".join(f"{k}: {v}" for k, v in sorted(by_status.items()))),
            ("seated (pending)", f"{len(seated)}  (expected {expect_seated})"),
            ("waitlisted", f"{len(waitlisted)}  (expected {expect_waitlisted})"),
            ("distinct students", f"{len(set(students))}  (expected {expect_seated})"),
            ("duplicate students", f"{duplicates}  (expected 0)"),
            ("distinct positions", f"{len(set(positions))}  (expected {len(waitlisted)})"),
            ("seats_free", f"{seats_free}  (expected {args.seats - expect_seated})"),
            ("emails welcome/waitlist/orders",
             f"{len(mail['welcome'])} / {len(mail['waitlisted'])} / {len(mail['orders'])}"
             f"  (expected {len(seated)} / {len(waitlisted)} / {len(seated)})"),
        ]
        width = max(len(k) for k, _ in rows)
        print("-" * (width + 40))
        for key, value in rows:
            print(f"{key:<{width}}  {value}")
        print("-" * (width + 40))

        # -- verdict ---------------------------------------------------------------------------
        others = {k: v for k, v in by_status.items() if k not in ("202", "503")}
        if others:
            samples = list(dict.fromkeys(f"{r['status']} {r['body']}" for r in results
                                         if str(r["status"]) in others))[:3]
            problems.append(f"unexpected answers {others} (e.g. {'; '.join(samples)})")
        if not accepted:
            problems.append("no registration was accepted")
        bad_reads = [b for b in back if b.get("http") != 200]
        if bad_reads:
            problems.append(f"{len(bad_reads)} registration(s) could not be read back (e.g. {bad_reads[0]})")
        if len(seated) + len(waitlisted) != len(back):
            problems.append(f"{len(back) - len(seated) - len(waitlisted)} registration(s) neither pending "
                            f"nor waitlisted: {Counter(b.get('status') for b in back)}")
        if len(seated) != expect_seated:
            problems.append(f"{len(seated)} seated, expected {expect_seated}")
        if len(waitlisted) != expect_waitlisted:
            problems.append(f"{len(waitlisted)} waitlisted, expected {expect_waitlisted}")
        if duplicates:
            problems.append(f"{duplicates} student(s) given to more than one registration")
        if len(set(students)) != len(seated) or len(set(students)) != expect_seated:
            problems.append(f"{len(set(students))} distinct students for {len(seated)} seated "
                            f"(expected {expect_seated})")
        valid_students = {f"bench-{i}" for i in range(1, args.seats + 1)}
        if not set(students) <= valid_students:
            problems.append(f"students outside the workshop's range: {sorted(set(students) - valid_students)[:5]}")
        if sorted(p for p in positions if isinstance(p, int)) != list(range(1, len(waitlisted) + 1)):
            problems.append(f"waitlist positions are not 1..{len(waitlisted)}: {len(set(positions))} distinct, "
                            f"range {min(positions, default=None)}..{max(positions, default=None)}")
        if seats_free != args.seats - expect_seated:
            problems.append(f"seats_free is {seats_free}, expected {args.seats - expect_seated}")
        if (len(mail["welcome"]), len(mail["waitlisted"]), len(mail["orders"])) != (
                len(seated), len(waitlisted), len(seated)):
            problems.append("email counts do not match the registrations")
        if set(order_students) != set(students) or any(c > 1 for c in order_students.values()):
            problems.append("the CREATE orders do not name each seated student exactly once")
    except Exception as exc:  # a crash of the bench itself is a failed run too
        problems.append(f"{type(exc).__name__}: {exc}")
    finally:
        try:
            stack.stop()
        except StackError as exc:
            problems.append(f"the stack did not stop cleanly: {str(exc).splitlines()[0]}")
            print(exc)
        if args.keep:
            print(f"state kept in {tmp}")
        else:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)

    if problems:
        print("INCORRECT: " + "; ".join(" ".join(p.split()) for p in problems))
        return 1
    print("CORRECT" + (f" ({shed} of {args.n} shed with 503)" if shed else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
