"""A live event against a running ``make run``: participants arrive, confirm, watch their pages,
log in and open the notebook, while the whole stack provisions them.

    python bench/event_day.py [--n 300] [--seats 100] [--arrivals poisson|burst] [--over 60]
                              [--confirm-within 60] [--workshop WKSHP-PY101]

It starts no stack: it measures the one you run, found at ``--app-url``/``--inbox-url``/
``--state-dir``, else the ``WOD_*`` variables ``make run`` reads, else http://127.0.0.1:8000, :8025
and ``.wod/``. The admin token is ``admin_token`` in ``<state dir>/secrets.json`` (or
``--admin-token``). Run the stack as an event would: confirmation on, the app's rate limits on, the
bench's address a venue (``WOD_VENUE_NETWORKS=127.0.0.0/8``: many people behind one address).

1. Resizes the workshop to ``--seats`` through the admin API.
2. ``--n`` participants (``bench/participants.py``) arrive as a Poisson process over ``--over``
   seconds (``--arrivals burst``: all at the same instant), register through the form, confirm
   0 to ``--confirm-within`` seconds after their confirmation email, keep their status page open,
   and, once their credentials arrive, log in to JupyterHub and open ``0-ReadMeFirst.ipynb``
   (its contents and a kernel). Every request has a ``--timeout`` (30 s) client timeout.
3. It ends when every seated participant works in their notebook or failed, or ``--wait`` seconds
   after the last confirmation; memory is sampled all along.

It prints latency per kind of request (register, confirm, status, hub login, notebook), timeouts and
5xx, failed provisionings, the time from the last confirmation to the last credentials and to the
last notebook opened, and peak memory, each against its target. Missing a target is a result: the
exit code is 0 for a complete run, 2 when the run could not start, 3 when the stack stopped
answering, 1 if the bench itself crashed.
"""
from __future__ import annotations

import argparse
import gc
import json
import math
import os
import random
import sys
import threading
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests

from bench.participants import KINDS, Calls, Event, Inbox, Participant, arrivals, run_event, summary
from bench.stack_memory import Memory, argv_of, find_stack, mem_available_kb
from local.config import LocalConfig

SEATED = ("pending", "provisioning", "active", "expiring", "finished")  # a seat was given
SERVER_KB = 190 * 1024  # a student server with its kernel, about (bench/memory.py)
ADMIN_PAGE = 1000  # the admin search's largest page (LIMIT_MAX)
FOLLOW_EVERY = 15  # s between two looks at the registrations (an organiser's dashboard, not a load of its own)
FAST = ("register", "confirm", "status")  # the platform's own pages
TARGETS = {  # the event-day targets (bench/README.md, "Latest figures")
    "poisson": {"p99_ms": 1000, "last_credentials_s": 240},
    "burst": {"p99_ms": 5000, "last_credentials_s": 240},
}


class Broken(Exception):
    """The run cannot go on (exit code 2 before it starts, 3 during it)."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return {"raw": response.text[:200]}


class Admin:
    """The organiser's API of the running stack."""

    def __init__(self, app_url: str, token: str):
        self.app_url = app_url.rstrip("/")
        self.http = requests.Session()
        self.http.headers.update({"Authorization": f"Bearer {token}", "X-WOD-Actor": "bench/event_day.py"})

    def call(self, method: str, path: str, **kwargs) -> requests.Response:
        """One admin request; a 429 (the organiser's address shares the app's rate limit) is asked
        again after its Retry-After, for a minute at most."""
        give_up = time.monotonic() + 60
        while True:
            response = self.http.request(method, f"{self.app_url}{path}", timeout=60, **kwargs)
            if response.status_code != 429 or time.monotonic() >= give_up:
                return response
            time.sleep(min(10.0, float(response.headers.get("Retry-After") or 1)))

    def workshop(self, workshop_id: str) -> dict:
        response = self.call("GET", "/api/admin/workshops")
        if response.status_code in (401, 403):
            raise Broken(f"the admin API refused the token ({response.status_code} {_json(response)})")
        response.raise_for_status()
        found = [w for w in response.json() if w.get("id") == workshop_id]
        if not found:
            raise Broken(f"no workshop {workshop_id} in GET /api/admin/workshops")
        return found[0]

    def resize(self, workshop_id: str, seats: int) -> dict:
        response = self.call("PATCH", f"/api/admin/workshops/{workshop_id}", json={"capacity": seats})
        if response.status_code != 200:
            raise Broken(f"PATCH /api/admin/workshops/{workshop_id} {{capacity: {seats}}} answered "
                         f"{response.status_code}: {_json(response)}")
        return response.json()

    def expect(self, workshop_id: str, turnout: int | None) -> dict:
        """The organiser's expected turnout (warmed at once: no scheduled start)."""
        response = self.call("PATCH", f"/api/admin/workshops/{workshop_id}", json={"expected": turnout})
        if response.status_code != 200:
            raise Broken(f"PATCH /api/admin/workshops/{workshop_id} {{expected: {turnout}}} answered "
                         f"{response.status_code}: {_json(response)}")
        return response.json()

    def warm_up(self, workshop_id: str, turnout: int, patience: float) -> float:
        """Expect ``turnout`` and wait until that many servers are warm; the seconds it took."""
        started = time.monotonic()
        self.expect(workshop_id, turnout)
        shown = warm = 0
        while time.monotonic() - started < patience:
            warm = self.workshop(workshop_id)["seats_warm"]
            if warm >= turnout:
                break
            if time.monotonic() - started >= shown:
                print(f"  warming: {warm} of {turnout} servers after {time.monotonic() - started:.0f} s", flush=True)
                shown += 30
            time.sleep(2)
        took = time.monotonic() - started
        print(f"{workshop_id}: {warm} of {turnout} servers warm after {took:.0f} s", flush=True)
        return took

    def registrations(self, prefix: str, n: int) -> dict[str, dict]:
        """This run's registrations by email (``<prefix><n:05d>@...``: one search per thousand)."""
        found: dict[str, dict] = {}
        for bucket in range((n - 1) // ADMIN_PAGE + 1):
            response = self.call("GET", "/api/admin/registrations", params={"q": f"{prefix}{bucket:02d}",
                                                                            "limit": ADMIN_PAGE})
            response.raise_for_status()
            for record in response.json()["registrations"]:
                found.setdefault(record["email"].lower(), record)
        return found

    def alive(self) -> bool:
        try:
            return requests.get(f"{self.app_url}/api/workshops", timeout=30).status_code == 200
        except requests.RequestException:
            return False


def percentile(ordered: list[float], p: float) -> float:
    return ordered[max(1, math.ceil(len(ordered) * p / 100)) - 1] if ordered else math.nan


def ms(value: float) -> str:
    return "n/a" if math.isnan(value) else "(none)" if math.isinf(value) else f"{value:.0f}"


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def mb(kb: int) -> str:
    return f"{kb / 1024:,.0f} MB"


def main(argv: list[str] | None = None) -> int:
    config = LocalConfig.from_env()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--app-url", default=config.app_url, help=f"default {config.app_url}")
    parser.add_argument("--inbox-url", default=config.inbox_url, help=f"default {config.inbox_url}")
    parser.add_argument("--state-dir", type=Path, default=config.state_dir,
                        help=f"where secrets.json is (default {config.state_dir})")
    parser.add_argument("--admin-token", help="default: admin_token in <state dir>/secrets.json")
    parser.add_argument("--workshop", default="WKSHP-PY101")
    parser.add_argument("--n", type=int, default=300, help="participants (default 300)")
    parser.add_argument("--seats", type=int, default=100, help="capacity set before the event (default 100)")
    parser.add_argument("--arrivals", choices=("poisson", "burst"), default="poisson",
                        help="poisson: spread over --over seconds (default); burst: all at once")
    parser.add_argument("--over", type=float, default=60, help="seconds the arrivals spread over (default 60)")
    parser.add_argument("--confirm-within", type=float, default=60,
                        help="each participant confirms 0..this many seconds after the email (default 60)")
    parser.add_argument("--timeout", type=float, default=30, help="client timeout per request, s (default 30)")
    parser.add_argument("--wait", type=float, default=420,
                        help="longest wait after the last confirmation, s (default 420)")
    parser.add_argument("--expect", action="store_true",
                        help="the organiser expects --seats people: warm that many servers before the doors open")
    parser.add_argument("--warm-wait", type=float, default=900,
                        help="longest wait for the warm servers with --expect, s (default 900)")
    parser.add_argument("--seed", type=int, default=1, help="random seed of arrivals and confirmations")
    parser.add_argument("--interval", type=float, default=2, help="memory sampling interval, s (default 2)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if not 1 <= args.n <= 99_999 or args.seats < 1:
        parser.error("need 1 <= --n <= 99999 and --seats >= 1")
    try:
        return run(args)
    except Broken as exc:
        print(f"BROKEN RUN: {exc}")
        return exc.code
    except requests.RequestException as exc:
        print(f"BROKEN RUN: {type(exc).__name__}: {exc}")
        return 3
    except Exception:
        traceback.print_exc()
        return 1


def _token(args: argparse.Namespace) -> str:
    if args.admin_token:
        return args.admin_token
    secrets_file = args.state_dir / "secrets.json"
    try:
        return json.loads(secrets_file.read_text())["admin_token"]
    except (OSError, ValueError, KeyError) as exc:
        raise Broken(f"no admin token: cannot read admin_token from {secrets_file} ({exc}); "
                     "pass --state-dir or --admin-token") from None


CLIENT_GROUP = Path("/sys/fs/cgroup/wod-bench")
CLIENT_WEIGHT = 1000  # ten platform processes: the simulated browsers are not the platform's to slow down


def client_first() -> str:
    """Put this process (its simulated browsers) ahead of the stack for the CPU. In a room, every
    participant's browser runs on their own machine; here they share the stack's two cores, and a
    browser that waits for the CPU would add its own wait to the platform's latency. Root with
    cgroup v2's cpu controller only (else the figures include the client's wait, said so)."""
    try:
        CLIENT_GROUP.mkdir(exist_ok=True)
        (CLIENT_GROUP / "cpu.weight").write_text(str(CLIENT_WEIGHT))
        (CLIENT_GROUP / "cgroup.procs").write_text(str(os.getpid()))
    except OSError as exc:
        return f"the client shares the CPU with the stack ({exc.strerror or exc}): its waits are in the figures"
    return f"the client ahead of the stack for the CPU (cgroup {CLIENT_GROUP}, cpu.weight {CLIENT_WEIGHT})"


class Pauses:
    """The client's own garbage-collection pauses: while one runs, every simulated browser waits, and
    its wait would count as the platform's. Objects made before the event are frozen out of the
    collections (``gc.freeze``), and the pauses left are timed and printed."""

    def __init__(self) -> None:
        self.longest, self.count, self._began = 0.0, 0, 0.0

    def __enter__(self) -> Pauses:
        gc.collect()
        gc.freeze()
        gc.callbacks.append(self._seen)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._seen)
        gc.unfreeze()

    def _seen(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        elif info.get("generation") == 2:
            self.count += 1
            self.longest = max(self.longest, time.perf_counter() - self._began)


def run(args: argparse.Namespace) -> int:
    admin = Admin(args.app_url, _token(args))
    if not admin.alive():
        raise Broken(f"nothing answers GET {admin.app_url}/api/workshops: is `make run` running?")
    try:
        inbox = Inbox(args.inbox_url)
    except requests.RequestException as exc:
        raise Broken(f"the inbox at {args.inbox_url} does not answer: {exc}") from None
    before = admin.workshop(args.workshop)
    prefix = f"eday{int(time.time()) % 1_000_000:06d}-"
    rng = random.Random(args.seed)
    over = args.over if args.arrivals == "poisson" else 0
    print(f"event_day: {args.n} participants for {args.workshop} resized to {args.seats} seats, arriving "
          f"{'over ' + format(over, 'g') + ' s (Poisson)' if over else 'all at once'}, confirming within "
          f"{args.confirm_within:g} s; client timeout {args.timeout:g} s (cpus={os.cpu_count()}, load "
          f"{os.getloadavg()[0]:.2f}, emails {prefix}*)")
    print(client_first())
    if before["seats_taken"] or before["waitlist"]:
        print(f"note: {args.workshop} already has {before['seats_taken']} seat(s) taken and {before['waitlist']} "
              "waiting; the figures count this run's participants only")
    available = mem_available_kb()
    if available and available < args.seats * SERVER_KB + (1 << 20):
        print(f"note: MemAvailable is {mb(available)}, less than {args.seats} servers with a kernel need")
    root = find_stack(urlsplit(admin.app_url).port or 80)
    memory = Memory(root, args.interval).start() if root else None
    print(f"stack process tree: pid {root} ({' '.join(argv_of(root))[:80]})" if root else
          "note: the stack's processes were not found on this machine: memory not measured")

    resized = admin.resize(args.workshop, args.seats)
    print(f"{args.workshop}: capacity {before['seats_total']} -> {resized['seats_total']}, "
          f"{resized['seats_free']} free, {resized['waitlist']} waiting", flush=True)
    if args.expect:
        admin.warm_up(args.workshop, args.seats, args.warm_wait)
    inbox.start()
    stop = threading.Event()
    calls = Calls()
    began = time.time() + 2
    people = [Participant(n, f"{prefix}{n:05d}@example.com", at, rng.uniform(0, args.confirm_within))
              for n, at in enumerate(arrivals(args.n, over, began, rng))]
    event = Event(admin.app_url, inbox, args.workshop, calls, args.timeout, mail_wait=args.wait, stop=stop)
    cpu_began, wall_began = time.process_time(), time.monotonic()
    records: dict[str, dict] = {}
    with Pauses() as pauses:
        threads = run_event(event, people)
        try:
            records = follow(admin, prefix, people, began, args.wait)
        finally:
            stop.set()
            for thread in threads:
                thread.join(args.timeout + 5)
            inbox.stop()
            if memory:
                memory.stop()
    client_cpu = (time.process_time() - cpu_began) / max(1e-9, time.monotonic() - wall_began)
    figures = report(args, people, calls, records, began, memory, inbox)
    figures["client_cpu"] = round(client_cpu, 3)
    figures["client_gc_longest_ms"] = round(pauses.longest * 1000, 1)
    print(f"the client itself used {client_cpu:.0%} of one core over the event (the simulated browsers); "
          f"{pauses.count} full garbage collections, the longest {pauses.longest * 1000:.0f} ms")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1, default=str))
    handback = '{"capacity": null, "expected": null}' if args.expect else '{"capacity": null}'
    print(f"hand the capacity back with: PATCH /api/admin/workshops/{args.workshop} {handback}")
    if not admin.alive():
        print("BROKEN RUN: the stack stopped answering during the run")
        return 3
    return 0


def follow(admin: Admin, prefix: str, people: list[Participant], began: float, wait: float) -> dict[str, dict]:
    """Until every seated participant works in the notebook (or failed), every confirmation is in
    and nobody is being provisioned; at most ``wait`` s after the last confirmation."""
    records: dict[str, dict] = {}
    last_print = time.time()
    while True:
        time.sleep(FOLLOW_EVERY)
        try:
            records = admin.registrations(prefix, len(people))
        except requests.RequestException as exc:
            print(f"  admin search failed: {type(exc).__name__}", flush=True)
            continue
        statuses = Counter(r["status"] for r in records.values())
        by_email = {p.email: p for p in people}
        arrived = all(time.time() > p.arrives for p in people)
        settled = all(not math.isnan(p.confirmed_at) or p.problem for p in people if p.email in records or
                      time.time() < p.arrives) and arrived
        seated = [e for e, r in records.items() if r["status"] in SEATED]
        done = all(not math.isnan(by_email[e].notebook_at) or by_email[e].problem for e in seated if e in by_email)
        if settled and done and not statuses.get("pending") and not statuses.get("provisioning") \
                and not statuses.get("unconfirmed"):
            return records
        confirmed = [p.confirmed_at for p in people if not math.isnan(p.confirmed_at)]
        if arrived and time.time() > max(confirmed + [p.arrives for p in people]) + wait:
            print(f"  giving up {wait:.0f} s after the last arrival or confirmation", flush=True)
            return records
        if time.time() - last_print >= 30:
            working = sum(not math.isnan(p.notebook_at) for p in people)
            print(f"  {time.time() - began:5.0f} s: {dict(sorted(statuses.items()))}; "
                  f"{working} working in the notebook", flush=True)
            last_print = time.time()


def report(args: argparse.Namespace, people: list[Participant], calls: Calls, records: dict[str, dict],
           began: float, memory: Memory | None, inbox: Inbox) -> dict[str, Any]:
    targets = TARGETS[args.arrivals]
    by_kind = {kind: summary(calls.by_kind.get(kind, [])) for kind in KINDS}
    statuses = Counter(r["status"] for r in records.values())
    seated = [p for p in people if records.get(p.email, {}).get("status") in SEATED]
    failed = [r for r in records.values() if r["status"] == "failed"]
    confirmed = [p.confirmed_at for p in people if not math.isnan(p.confirmed_at)]
    last_confirmed = max(confirmed) if confirmed else math.nan
    credentials = [p.credentials_at for p in seated if not math.isnan(p.credentials_at)]
    working = [p for p in seated if not math.isnan(p.notebook_at)]
    last_credentials = max(credentials) - last_confirmed if credentials and confirmed else math.nan
    last_notebook = max(p.notebook_at for p in working) - last_confirmed if working and confirmed else math.nan
    all_credentials = len(credentials) == len(seated) and last_credentials <= targets["last_credentials_s"]
    timeouts = sum(s["timeouts"] for s in by_kind.values())
    server_errors = sum(s["5xx"] for s in by_kind.values())
    worst_p99 = max((by_kind[k]["p99"] for k in FAST if by_kind[k]["count"]), default=math.nan)
    looks = sum(p.looks for p in people)
    print("-" * 100)
    print(f"{'request':<10} {'count':>6} {'timeouts':>8} {'5xx':>4} {'4xx':>4} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'max ms':>8}")
    for kind, s in by_kind.items():
        print(f"{kind:<10} {s['count']:>6} {s['timeouts']:>8} {s['5xx']:>4} {s['4xx']:>4} {ms(s['p50']):>8} "
              f"{ms(s['p99']):>8} {ms(s['max']):>8}")
    print("-" * 100)
    rows = [
        ("client timeouts", f"{timeouts}   target 0: {verdict(timeouts == 0)}"),
        ("5xx answers", f"{server_errors}   target 0: {verdict(server_errors == 0)}"),
        ("register/confirm/status p99", f"{ms(worst_p99)} ms   target <= {targets['p99_ms']} ms: "
                                        f"{verdict(worst_p99 <= targets['p99_ms'])}"),
        ("registrations", f"{len(records)} of {len(people)}: {dict(sorted(statuses.items()))}"),
        ("confirmed", f"{len(confirmed)}; the last {last_confirmed - began:.0f} s after the first arrival"
         if confirmed else "0"),
        ("failed provisionings", f"{len(failed)}   target 0: {verdict(not failed)}"
         + (f" (e.g. {failed[0].get('failure')!r})" if failed else "")),
        ("credentials", f"{len(credentials)} of {len(seated)} seated; the last {last_credentials:.0f} s after the "
                        f"last confirmation   target <= {targets['last_credentials_s']} s: "
                        f"{verdict(all_credentials)}"
         if credentials else f"0 of {len(seated)} seated: MISSED"),
        ("working in the notebook", f"{len(working)} of {len(seated)} seated (logged in, notebook and kernel "
                                    f"open); the last {last_notebook:.0f} s after the last confirmation: "
                                    f"{verdict(len(working) == len(seated) and bool(seated))}"
         if working else f"0 of {len(seated)}: MISSED"),
        ("status page", f"{looks} looks by {len(people)} open pages, {sum(p.unchanged for p in people)} "
                        f"answered 304 ({looks / max(1.0, time.time() - began):.1f}/s over the run)"),
    ]
    problems = Counter(p.problem.split(":")[0] for p in people if p.problem)
    if problems:
        rows.append(("participants' problems", ", ".join(f"{k}: {v}" for k, v in problems.most_common(6))))
    if inbox.errors:
        rows.append(("inbox polls that failed", str(inbox.errors)))
    if memory and memory.samples:
        peak_platform = max(memory.samples, key=lambda s: s.platform_kb)
        peak_hub = max(memory.samples, key=lambda s: s.hub_kb)
        lowest = min(memory.samples, key=lambda s: s.available_kb)
        rows += [("peak memory, platform", mb(peak_platform.platform_kb)),
                 ("peak memory, hub + servers", f"{mb(peak_hub.hub_kb)} with {peak_hub.servers} servers"),
                 ("lowest MemAvailable", mb(lowest.available_kb))]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    print("-" * 100)
    slow = sorted(((c.kind, round(c.ms), round(c.at, 3), c.status) for cs in calls.by_kind.values() for c in cs
                   if c.ms > 1000), key=lambda c: c[2])  # (kind, ms, sent at, status): when the slow ones came
    return {"slow": slow, "requests": by_kind, "statuses": dict(statuses), "failed": len(failed), "timeouts": timeouts,
            "5xx": server_errors, "last_credentials_s": last_credentials, "last_notebook_s": last_notebook,
            "working": len(working), "seated": len(seated), "problems": dict(problems)}


if __name__ == "__main__":
    sys.exit(main())
