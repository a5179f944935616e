"""The live room during a workshop: participants' notebook events coming in while a facilitator
watches the room.

    python bench/live_room.py [--participants 300] [--minutes 3] [--every 20-60]

Starts its own ``python -m local`` (tests/stack.py) with one workshop of ``--participants`` seats,
registers that many participants and makes each one active with the backend's signed ``ready``
callback (no notebook servers are started: what is measured is the platform's side). Then, for
``--minutes``, each participant sends a batch of events every 20–60 s (uniformly drawn: a cell
run, one time in four a check, one in fifty a raised hand) to ``POST /api/events``, signed as the
hub's relay signs it, while a signed-in facilitator's page reads ``/admin/live/<workshop>/data``
every 5 s, as ``live.js`` does.

Printed: event ingestion p50/p95/p99, the room's refresh p50/p95/p99, how old the room's data is
for the facilitator (from an event's answer to the first refresh that shows it: p99 and max), and
the DynamoDB requests one batch costs (counted on the same code in this process, moto in memory,
by every operation pynamodb sends, over 40 batches sent within two seconds: the workshops' copy
every process keeps for 2 s is read once). Targets: ingestion p99 ≤ 200 ms, refresh p99 ≤ 500 ms, data
≤ 10 s old. The last line is ``MET`` or ``NOT MET: <which>``.
"""
from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests

from tests.factory import signed_callback, write_checks, write_workshop
from tests.stack import LocalStack, StackError

WORKSHOP = "WKSHP-LIVEBENCH"
CHECKS = 6  # exercise checks in the workshop's notebooks, which the events report on
REFRESH_SECONDS = 5.0
TARGETS = {"ingestion p99 (ms)": 200, "refresh p99 (ms)": 500, "data age max (s)": 10}
_local = threading.local()


def session() -> requests.Session:
    if not hasattr(_local, "session"):
        _local.session = requests.Session()
    return _local.session


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[max(0, -(-len(ordered) * p // 100) - 1).__int__()]


class Relay:
    """Signs batches as the hub's relay does (infra/jupyterhub/wod_events.py)."""

    def __init__(self, key: str):
        self.key, self.lock, self.last = key.encode(), threading.Lock(), 0

    def body(self, student: str, events: list[dict]) -> tuple[bytes, dict[str, str]]:
        with self.lock:
            self.last = max(int(time.time() * 1_000_000), self.last + 1)
            seq = self.last
        body = json.dumps({"student": student, "seq": seq, "issued_at": int(time.time()), "events": events}).encode()
        return body, {"Content-Type": "application/json",
                      "X-WOD-Signature": "v1=" + hmac.new(self.key, body, hashlib.sha256).hexdigest()}


def requests_per_batch(batches: int = 40) -> float:
    """DynamoDB operations per ingested batch, counted in this process on moto in memory."""
    from moto import mock_aws
    from pynamodb.connection.base import Connection

    from chalicelib.adapters.workshop_folders import load_catalog
    from chalicelib.services import bootstrap, live, registrations
    from chalicelib.services.catalog import sync_workshop
    from chalicelib.settings import Settings
    from chalicelib.store.models import StudentModel
    from local.config import ensure_secrets
    from local.tables import create_tables

    counted: list[str] = []
    original = Connection.dispatch

    def counting(self, operation_name, operation_kwargs):
        counted.append(operation_name)
        return original(self, operation_name, operation_kwargs)

    with tempfile.TemporaryDirectory() as tmp, mock_aws():
        import boto3

        secrets = Path(tmp) / "secrets.json"
        ensure_secrets(secrets)
        # the workshops as the stack's processes keep them (WOD_WORKSHOP_CACHE_SECONDS, 2 s): one scan of
        # the small workshops table per process every 2 s, shared by every request, not one per batch
        settings = Settings(table_prefix="count", secrets_file=str(secrets), public_url="https://wod.example",
                            confirm_minutes=0, outbox_dispatch="inline", region="us-east-1")
        create_tables(boto3.client("dynamodb", region_name="us-east-1"), settings.table_prefix)
        ctx = bootstrap.build(settings)
        write_workshop(Path(tmp) / "workshops", WORKSHOP, seats=2)
        loaded, problems = load_catalog(Path(tmp) / "workshops", settings.locations.keys())
        assert not problems, problems
        for folder in loaded:
            sync_workshop(ctx, folder)
        created = registrations.register(ctx, {"workshop": WORKSHOP, "email": "count@example.com",
                                               "first_name": "Co", "last_name": "Unt", "company": "Bench",
                                               "accept_terms": True})
        ctx.stores.tables.students(created["student"]).update(actions=[
            StudentModel.status.set("active"), StudentModel.registration_id.set(created["id"])])
        Connection.dispatch = counting
        try:
            for n in range(batches):
                live.ingest(ctx, {"student": created["student"], "seq": n + 1,
                                  "events": [{"kind": "executed", "at": time.time(), "cell": n % 9}]})
        finally:
            Connection.dispatch = original
    return len(counted) / batches


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--participants", type=int, default=300)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--every", default="20-60", help="seconds between a participant's batches (low-high)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary state dir (logs) and print its path")
    args = parser.parse_args(argv)
    low, high = (float(x) for x in args.every.split("-"))

    tmp = Path(tempfile.mkdtemp(prefix="wod-live-"))
    folder = write_workshop(tmp / "workshops", WORKSHOP, seats=args.participants, title="Live room benchmark",
                            description="Written by bench/live_room.py.", duration=240)
    write_checks(folder, [f"q{n}" for n in range(CHECKS)], "1-Exercises.ipynb")  # as the events name them
    print(f"live_room: participants={args.participants} minutes={args.minutes} every={args.every}s "
          f"(cpus={os.cpu_count()}, python {sys.version.split()[0]})")
    try:
        stack = LocalStack(tmp / "workshops", tmp / "state",
                           env={"WOD_LOCAL_BACKEND": "0", "WOD_CONFIRM_MINUTES": "0"}).start()
    except StackError as exc:
        print(f"NOT MET: the local stack did not start\n{exc}")
        return 2
    try:
        return run(stack, args, low, high)
    finally:
        stack.stop()
        if args.keep:
            print(f"state and logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def run(stack: LocalStack, args, low: float, high: float) -> int:
    app = stack.app_url
    keys = json.loads((stack.state_dir / "secrets.json").read_text())
    callback_key = next(v for k, v in keys.items() if k.startswith("callback_key/")).encode()  # one location
    students: list[str] = []

    def seat(n: int) -> None:
        email = f"live-{n:04d}@example.com"
        response = session().post(f"{app}/api/registrations", timeout=60, json={
            "workshop": WORKSHOP, "email": email, "first_name": f"P{n}", "last_name": "Live", "company": "Bench",
            "accept_terms": True})
        response.raise_for_status()
        reg = stack.registration(email)
        body, headers = signed_callback({"registration": reg["id"], "student": reg["student"], "outcome": "ready",
                                         "password": "Pw123456789x", "hub_url": stack.hub_url}, callback_key)
        session().post(f"{app}/api/callbacks/provision", data=body, headers=headers, timeout=60).raise_for_status()
        students.append(reg["student"])

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=10) as pool:
        list(pool.map(seat, range(args.participants)))
    print(f"{len(students)} participants active in {time.monotonic() - started:.0f} s")

    facilitator = requests.Session()
    response = facilitator.post(f"{app}/admin/login", allow_redirects=False, timeout=30,
                                headers={"Content-Type": "application/x-www-form-urlencoded"},
                                data=urlencode({"name": "Bench Facilitator", "token": stack.secret("admin_token"),
                                                "next": "/admin"}))
    assert response.status_code == 303, response.text

    relay = Relay(stack.secret("events_key"))
    ingestion: list[float] = []
    refreshes: list[float] = []
    statuses: dict[int, int] = {}
    pending: dict[str, list[float]] = {}  # student -> answer times of events not yet seen in the room
    ages: list[float] = []
    lock = threading.Lock()
    stop = threading.Event()
    rng = random.Random(7)

    def participant(student: str) -> None:
        cell = 0
        stop.wait(rng.uniform(0, high))
        while not stop.is_set():
            cell += 1
            events = [{"kind": "executed", "at": time.time(), "notebook": "1-Exercises.ipynb", "cell": cell,
                       "cells": 40}]
            draw = rng.random()
            if draw < 0.25:
                events.append({"kind": "check", "at": time.time(), "notebook": "1-Exercises.ipynb",
                               "check": f"q{cell % CHECKS}", "passed": draw < 0.18})
            elif draw > 0.98:
                events.append({"kind": "hand", "at": time.time()})
            body, headers = relay.body(student, events)
            t0 = time.perf_counter()
            try:
                code = session().post(f"{app}/api/events", data=body, headers=headers, timeout=60).status_code
            except requests.RequestException:
                code = 0
            answered = time.time()
            with lock:
                ingestion.append((time.perf_counter() - t0) * 1000)
                statuses[code] = statuses.get(code, 0) + 1
                if code == 200:
                    pending.setdefault(student, []).append(answered)
            stop.wait(rng.uniform(low, high))

    def watch() -> None:
        while not stop.is_set():
            t0 = time.perf_counter()
            try:
                response = facilitator.get(f"{app}/admin/live/{WORKSHOP}/data", timeout=60)
            except requests.ConnectionError:  # the server closed a kept-alive connection as we sent: again
                response = facilitator.get(f"{app}/admin/live/{WORKSHOP}/data", timeout=60)
            seen_at = time.time()
            refreshes.append((time.perf_counter() - t0) * 1000)
            if response.status_code == 200:
                room = response.json()
                generated = time.mktime(time.strptime(room["generated_at"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
                with lock:
                    for row in room["rows"]:
                        waiting = pending.get(row["student"])
                        if not waiting or not row.get("last_activity"):
                            continue
                        shown = [t for t in waiting if t <= generated + 1]
                        ages.extend(seen_at - t for t in shown if row["last_activity"])
                        pending[row["student"]] = [t for t in waiting if t > generated + 1]
            stop.wait(REFRESH_SECONDS)

    threads = [threading.Thread(target=participant, args=(s,), daemon=True) for s in students]
    threads.append(threading.Thread(target=watch, daemon=True))
    for thread in threads:
        thread.start()
    time.sleep(args.minutes * 60)
    stop.set()
    for thread in threads:
        thread.join(timeout=90)
    unseen = sum(len(v) for v in pending.values())

    per_batch = requests_per_batch()
    figures = {
        "ingestion p99 (ms)": percentile(ingestion, 99),
        "refresh p99 (ms)": percentile(refreshes, 99),
        "data age max (s)": max(ages) if ages else float("inf"),
    }
    rows = [
        ("batches sent", f"{len(ingestion)}  ({', '.join(f'{k}: {v}' for k, v in sorted(statuses.items()))})"),
        ("ingestion p50/p95/p99", " / ".join(f"{percentile(ingestion, p):.0f}" for p in (50, 95, 99)) + " ms"),
        ("room refreshes", f"{len(refreshes)}, {args.participants} rows each"),
        ("refresh p50/p95/p99", " / ".join(f"{percentile(refreshes, p):.0f}" for p in (50, 95, 99)) + " ms"
         + (f" (slowest: refresh {refreshes.index(max(refreshes)) + 1} of {len(refreshes)})" if refreshes else "")),
        ("data age p99 / max", f"{percentile(ages, 99):.1f} / {figures['data age max (s)']:.1f} s "
                               f"({len(ages)} events seen, {unseen} still waiting for the next refresh)"),
        ("DynamoDB requests per batch", f"{per_batch:.2f}"),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    missed = [f"{k} = {figures[k]:.1f} > {TARGETS[k]}" for k in TARGETS if not figures[k] <= TARGETS[k]]
    errors = sum(v for k, v in statuses.items() if k != 200)
    if errors:
        missed.append(f"{errors} batches not taken")
    print("MET" if not missed else "NOT MET: " + "; ".join(missed))
    return 0 if not missed else 1


if __name__ == "__main__":
    sys.exit(main())
