"""Event day against a running ``make run``: the opening burst of a live audience, the whole
stack provisioning, and the memory it takes.

    python bench/event_day.py [--n 300] [--seats 100] [--concurrency N] [--workshop WKSHP-PY101]

Unlike the other benchmarks it starts no stack: it measures the one you run (``make run`` in
another terminal), found where the README says: ``--app-url``/``--inbox-url``/``--state-dir``,
else the ``WOD_*`` variables (``WOD_HOST``, ``WOD_APP_PORT``, ``WOD_INBOX_PORT``,
``WOD_STATE_DIR``), else the defaults (http://127.0.0.1:8000, :8025, ``.wod/``). The admin
token is ``admin_token`` in ``<state dir>/secrets.json`` (or ``--admin-token``).

1. Resizes the workshop to ``--seats`` through the admin API (``PATCH /api/admin/workshops/<id>``).
2. Fires ``--n`` registrations with distinct emails from ``--concurrency`` client threads (default:
   all at once), each with a 30 s client timeout.
3. Waits (at most ``--wait`` seconds after the burst) until every seated participant has their
   credentials email ("Your workshop is ready: ...") in the local inbox, or their provisioning failed,
   while sampling the resident memory of the platform's processes and of JupyterHub + the student
   servers.

It prints answers by status code, client timeouts, API latency p50/p90/p99/max, seated/waitlisted, the time
from the burst's start to the last seated participant's credentials email, failed provisionings and
peak memory, each next to its event-day target. Missing a target is a result, not an error: the exit
code is 0 for a complete run, 2 when the run could not start (stack unreachable, token refused,
workshop unknown, resize refused), 3 when the stack stopped answering during the run, 1 if the bench
itself crashed.
"""
from __future__ import annotations

import argparse
import grp
import json
import math
import os
import pwd
import sys
import threading
import time
import traceback
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests
from urllib3.util import Timeout

from chalicelib.adapters.appliances import listeners
from local.config import LocalConfig

CREDENTIALS_SUBJECT = "Your workshop is ready"
STUDENT_GROUP = "wod-students"
SEATED = ("pending", "provisioning", "active", "expiring", "finished")  # a seat was given
IN_FLIGHT = ("pending", "provisioning")
SERVER_KB = 150 * 1024  # a student server with its kernel, about (README's figures)
ADMIN_PAGE = 1000  # the admin search's largest page (LIMIT_MAX)
TARGETS = {  # the event-day targets (README, Benchmarks)
    "timeouts": 0, "5xx": 0, "p50_ms": 300, "p99_ms": 2000, "last_credentials_s": 240, "failed": 0,
}


class Broken(Exception):
    """The run cannot go on (exit code 2 before the burst, 3 during it)."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


# -- HTTP ------------------------------------------------------------------------------------------

_local = threading.local()


def session() -> requests.Session:
    """One HTTP session per client thread (its own keep-alive connection)."""
    if not hasattr(_local, "session"):
        _local.session = requests.Session()
    return _local.session


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return {"raw": response.text[:200]}


class Platform:
    """The running stack, through its public HTTP interfaces."""

    def __init__(self, app_url: str, inbox_url: str, token: str):
        self.app_url, self.inbox_url = app_url.rstrip("/"), inbox_url.rstrip("/")
        self.admin = requests.Session()
        self.admin.headers.update({"Authorization": f"Bearer {token}", "X-WOD-Actor": "bench/event_day.py"})
        self.plain = requests.Session()

    def admin_call(self, method: str, path: str, timeout: float = 60, **kwargs) -> requests.Response:
        return self.admin.request(method, f"{self.app_url}{path}", timeout=timeout, **kwargs)

    def workshop(self, workshop_id: str) -> dict:
        response = self.admin_call("GET", "/api/admin/workshops")
        if response.status_code in (401, 403):
            raise Broken(f"the admin API refused the token ({response.status_code} {_json(response)})")
        response.raise_for_status()
        found = [w for w in response.json() if w.get("id") == workshop_id]
        if not found:
            raise Broken(f"no workshop {workshop_id} in GET /api/admin/workshops")
        return found[0]

    def resize(self, workshop_id: str, seats: int) -> dict:
        response = self.admin_call("PATCH", f"/api/admin/workshops/{workshop_id}", json={"capacity": seats})
        if response.status_code != 200:
            raise Broken(f"PATCH /api/admin/workshops/{workshop_id} {{capacity: {seats}}} answered "
                         f"{response.status_code}: {_json(response)}")
        return response.json()

    def registrations(self, prefix: str, n: int) -> dict[str, dict]:
        """This run's registrations by email. Emails are ``<prefix><n:05d>@...``, so one search per
        thousand (``q=<prefix><n // 1000:02d>``) stays within the search's page."""
        found: dict[str, dict] = {}
        for bucket in range((n - 1) // ADMIN_PAGE + 1):
            response = self.admin_call("GET", "/api/admin/registrations",
                                       params={"q": f"{prefix}{bucket:02d}", "limit": ADMIN_PAGE})
            response.raise_for_status()
            for record in response.json()["registrations"]:
                found.setdefault(record["email"].lower(), record)
        return found

    def credentials(self) -> dict[str, float]:
        """Recipient -> arrival (epoch seconds) of the first credentials email in the inbox."""
        response = self.plain.get(f"{self.inbox_url}/api/messages", params={"subject": CREDENTIALS_SUBJECT},
                                  timeout=60)
        response.raise_for_status()
        arrived: dict[str, float] = {}
        for message in response.json():
            if not message["subject"].startswith(CREDENTIALS_SUBJECT):
                continue
            at = datetime.fromisoformat(message["date"]).timestamp()
            for to in message["to"]:
                arrived[to.lower()] = min(at, arrived.get(to.lower(), at))
        return arrived

    def alive(self) -> bool:
        try:
            return self.plain.get(f"{self.app_url}/api/workshops", timeout=30).status_code == 200
        except requests.RequestException:
            return False


# -- the burst -------------------------------------------------------------------------------------

@dataclass
class Answer:
    n: int
    email: str
    status: int | None = None  # HTTP status, None without an answer
    error: str | None = None  # "timeout" or the exception's type
    ms: float = math.inf
    body: Any = None


def burst(platform: Platform, workshop: str, emails: list[str], concurrency: int, timeout: float) -> tuple[
        list[Answer], float, float]:
    """Every registration, the wall-clock start of the burst and its duration (s)."""
    ready = threading.Semaphore(0)
    go = threading.Event()

    def register(n: int) -> Answer:
        answer = Answer(n, emails[n])
        if not go.is_set():  # a pool thread's first request waits for the start signal
            ready.release()
            go.wait(120)
        body = {"workshop": workshop, "email": emails[n], "first_name": "Event", "last_name": f"Day{n}",
                "company": "Bench & Co", "accept_terms": True}
        started = time.perf_counter()
        try:
            response = session().post(f"{platform.app_url}/api/registrations", json=body,
                                      timeout=Timeout(total=timeout))
            answer.status, answer.body = response.status_code, _json(response)
            answer.ms = (time.perf_counter() - started) * 1000
        except requests.Timeout:
            answer.error = "timeout"
        except requests.RequestException as exc:
            answer.error = type(exc).__name__
            answer.body = str(exc)[:300]
        return answer

    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="client") as pool:
        futures = [pool.submit(register, n) for n in range(len(emails))]
        for _ in range(min(concurrency, len(emails))):  # every client thread is at the line
            ready.acquire(timeout=30)
        began, wall = time.time(), time.perf_counter()
        go.set()
        answers = [f.result() for f in futures]
        return answers, began, time.perf_counter() - wall


# -- memory ----------------------------------------------------------------------------------------

def _argv(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode("utf-8", "replace").split("\0")
    except OSError:
        return []


def _ppid(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def _is_stack(argv: list[str]) -> bool:
    """``python -m local ...`` or one of its ``python -m local.<part>`` processes."""
    return any(a == "-m" and i + 1 < len(argv) and (argv[i + 1] == "local" or argv[i + 1].startswith("local."))
               for i, a in enumerate(argv))


def find_stack(port: int) -> int | None:
    """The root of the stack serving ``port``: from the process that listens on it, the highest
    ancestor that is a ``python -m local`` process (else the listener itself)."""
    inodes = {f"socket:[{inode}]" for _, inode in listeners(port)}
    if not inodes:
        return None
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            links = {os.readlink(fd) for fd in (entry / "fd").iterdir()}
        except OSError:
            continue
        if links & inodes:
            pid, root = int(entry.name), int(entry.name)
            while pid > 1:
                if _is_stack(_argv(pid)):
                    root = pid
                pid = _ppid(pid)
            return root
    return None


def _mem_available_kb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1])
    return 0


def _is_hub(argv: list[str]) -> bool:
    return any(os.path.basename(a) == "jupyterhub" for a in argv[:3])


@dataclass
class Sample:
    at: float
    platform_kb: int = 0
    hub_kb: int = 0  # JupyterHub, its proxy, student servers and kernels
    servers: int = 0  # jupyterhub-singleuser processes among them
    foreign_students: int = 0  # processes of wod-students users that are not this stack's
    available_kb: int = 0


@dataclass
class Memory:
    """Samples the stack's process tree in a thread: platform vs JupyterHub + student servers."""

    root: int
    interval: float
    students: set[str] = field(default_factory=set)  # this run's student names (orphan servers count)
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @staticmethod
    def _student_uids() -> dict[int, str]:
        try:
            group = grp.getgrnam(STUDENT_GROUP)
        except KeyError:
            return {}
        return {u.pw_uid: u.pw_name for u in pwd.getpwall()
                if u.pw_gid == group.gr_gid or u.pw_name in group.gr_mem}

    def sample(self) -> Sample:
        procs: dict[int, tuple[int, int, int]] = {}  # pid -> (ppid, uid, rss kB)
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                status = (entry / "status").read_text()
            except OSError:
                continue
            values = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
            if "VmRSS" not in values:
                continue  # a kernel thread, or a zombie
            procs[int(entry.name)] = (int(values["PPid"]), int(values["Uid"].split()[0]),
                                      int(values["VmRSS"].split()[0]))
        children: dict[int, list[int]] = {}
        for pid, (ppid, _, _) in procs.items():
            children.setdefault(ppid, []).append(pid)

        def subtree(top: int) -> list[int]:
            found, todo = [], [top]
            while todo:
                pid = todo.pop()
                found.append(pid)
                todo.extend(children.get(pid, []))
            return found

        tree = set(subtree(self.root)) if self.root in procs else set()
        hub_side: set[int] = set()
        for pid in tree:
            if pid not in hub_side and _is_hub(_argv(pid)):
                hub_side.update(subtree(pid))
        student_uids = self._student_uids()
        result = Sample(time.time())
        for pid, (_, uid, rss) in procs.items():
            if pid in tree:
                if pid in hub_side or uid in student_uids:
                    result.hub_kb += rss
                    result.servers += any("jupyterhub-singleuser" in a for a in _argv(pid)[:3])
                else:
                    result.platform_kb += rss
            elif uid in student_uids:
                if student_uids[uid] in self.students:  # this stack's, left outside its tree
                    result.hub_kb += rss
                    result.servers += any("jupyterhub-singleuser" in a for a in _argv(pid)[:3])
                else:
                    result.foreign_students += 1
        result.available_kb = _mem_available_kb()
        return result

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append(self.sample())
            except Exception:  # a sample is best effort; the run goes on
                traceback.print_exc()
            self._stop.wait(self.interval)

    def start(self) -> Memory:
        self._thread = threading.Thread(target=self._run, name="memory", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(30)


# -- report ----------------------------------------------------------------------------------------

def percentile(ordered: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not ordered:
        return math.nan
    return ordered[max(1, math.ceil(len(ordered) * p / 100)) - 1]


def ms(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    return "(no answer)" if math.isinf(value) else f"{value:.0f}"


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
    parser.add_argument("--n", type=int, default=300, help="registrations (default 300)")
    parser.add_argument("--seats", type=int, default=100, help="capacity set before the burst (default 100)")
    parser.add_argument("--concurrency", type=int, help="client threads (default: --n, all at once)")
    parser.add_argument("--timeout", type=float, default=30, help="client timeout per request, s (default 30)")
    parser.add_argument("--wait", type=float, default=360,
                        help="longest wait for the credentials after the burst, s (default 360)")
    parser.add_argument("--interval", type=float, default=2, help="memory sampling interval, s (default 2)")
    parser.add_argument("--stack-pid", type=int, help="root of the stack's process tree (default: found from "
                                                      "the process listening on the app's port)")
    args = parser.parse_args(argv)
    concurrency = args.concurrency or args.n
    if not 1 <= args.n <= 99_999 or args.seats < 1 or concurrency < 1:
        parser.error("need 1 <= --n <= 99999, --seats >= 1, --concurrency >= 1")
    try:
        return run(args, concurrency)
    except Broken as exc:
        print(f"BROKEN RUN: {exc}")
        return exc.code
    except requests.RequestException as exc:
        print(f"BROKEN RUN: {type(exc).__name__}: {exc}")
        return 3
    except Exception:
        traceback.print_exc()
        return 1


def run(args: argparse.Namespace, concurrency: int) -> int:
    token = args.admin_token
    if not token:
        secrets_file = args.state_dir / "secrets.json"
        try:
            token = json.loads(secrets_file.read_text())["admin_token"]
        except (OSError, ValueError, KeyError) as exc:
            raise Broken(f"no admin token: cannot read admin_token from {secrets_file} ({exc}); "
                         "pass --state-dir or --admin-token") from None
    platform = Platform(args.app_url, args.inbox_url, token)
    if not platform.alive():
        raise Broken(f"nothing answers GET {platform.app_url}/api/workshops: is `make run` running?")
    try:
        platform.credentials()
    except requests.RequestException as exc:
        raise Broken(f"the inbox at {platform.inbox_url} does not answer: {exc}") from None

    before = platform.workshop(args.workshop)
    run_id = f"{int(time.time()) % 1_000_000:06d}"
    prefix = f"eday{run_id}-"
    emails = [f"{prefix}{n:05d}@example.com" for n in range(args.n)]
    emails_set = set(emails)
    print(f"event_day: {args.n} registrations into {args.workshop} resized to {args.seats} seats, "
          f"{concurrency} at once, client timeout {args.timeout:.0f} s (cpus={os.cpu_count()}, "
          f"load {os.getloadavg()[0]:.2f}, app {platform.app_url}, emails {prefix}*)")
    if before["seats_taken"] or before["waitlist"]:
        print(f"note: {args.workshop} already has {before['seats_taken']} seat(s) taken and {before['waitlist']} "
              "waiting; the figures below count this run's registrations only")

    available = _mem_available_kb()
    if available and available < args.seats * SERVER_KB + (1 << 20):
        print(f"note: MemAvailable is {mb(available)}, less than {args.seats} student servers at about "
              f"{mb(SERVER_KB)} each need: the machine may run out of memory during this run")
    root = args.stack_pid or find_stack(urlsplit(platform.app_url).port or 80)
    memory = Memory(root, args.interval).start() if root else None
    if memory is None:
        print("note: the stack's processes were not found on this machine (pass --stack-pid): memory not measured")
    else:
        print(f"stack process tree: pid {root} ({' '.join(_argv(root))[:100]})")
    try:
        resized = platform.resize(args.workshop, args.seats)
        print(f"{args.workshop}: capacity {before['seats_total']} -> {resized['seats_total']}, "
              f"{resized['seats_free']} free, {resized['waitlist']} waiting")
        time.sleep(2 * args.interval)  # a baseline memory sample or two before the burst
        baseline = memory.samples[-1] if memory and memory.samples else None

        answers, began, wall = burst(platform, args.workshop, emails, concurrency, args.timeout)
        print(f"burst done in {wall:.1f} s; following the registrations through the admin API ...", flush=True)

        # -- the wait for credentials (bounded) ----------------------------------------------------
        # Statuses come from the admin search (every 15 s, and again to confirm the end), the
        # credentials from the inbox (every 2 s); a poll that fails is retried, not fatal.
        deadline = time.monotonic() + args.wait
        records: dict[str, dict] = {}
        seated: set[str] = set()  # given a seat at any point (failed ones included)
        arrived: dict[str, float] = {}
        poll_errors: Counter[str] = Counter()
        next_status, next_print = 0.0, time.monotonic() + 30
        while True:
            now, fresh = time.monotonic(), False
            if now >= next_status:
                try:
                    records = platform.registrations(prefix, args.n)
                    fresh = True
                except requests.RequestException as exc:
                    poll_errors[f"admin search: {type(exc).__name__}"] += 1
                next_status = now + 15
                seated |= {e for e, r in records.items() if r["status"] in SEATED or r["status"] == "failed"}
                if memory:
                    memory.students = {r["student"] for r in records.values() if r.get("student")}
            try:
                arrived.update({e: t for e, t in platform.credentials().items() if e in emails_set
                                and e not in arrived})
            except requests.RequestException as exc:
                poll_errors[f"inbox: {type(exc).__name__}"] += 1
            live = [e for e, r in records.items() if r["status"] in SEATED]
            if records and all(e in arrived for e in live):
                if fresh:
                    break  # everyone seated has credentials, and nobody is in flight any more
                next_status = 0.0  # looks done: confirm with a fresh read of the statuses
                continue
            if now >= deadline:
                break
            if now >= next_print:
                print(f"  {time.time() - began:5.0f} s after the burst began: {len(arrived)} credentials emails, "
                      f"{sum(r['status'] in IN_FLIGHT for r in records.values())} being provisioned, "
                      f"{sum(r['status'] == 'failed' for r in records.values())} failed", flush=True)
                next_print = now + 30
            time.sleep(2)
        waited = time.time() - began
    finally:
        if memory:
            memory.stop()
    stack_up = platform.alive()

    # -- figures -----------------------------------------------------------------------------------
    by_status = Counter(str(a.status) for a in answers if a.status is not None)
    timeouts = [a for a in answers if a.error == "timeout"]
    errors = Counter(a.error for a in answers if a.error and a.error != "timeout")
    server_errors = sum(v for k, v in by_status.items() if k.startswith("5"))
    unanswered_created = [a for a in answers if a.status is None and a.email in records]
    unconfirmed = [e for e, r in records.items() if r["status"] == "unconfirmed"]
    latencies = sorted(a.ms for a in answers)
    statuses = Counter(r["status"] for r in records.values())
    failed = [r for r in records.values() if r["status"] == "failed"]
    accepted = sum(1 for a in answers if a.status == 202)  # the answer names no registration: see "stored"
    got = {e: t for e, t in arrived.items() if e in seated}
    last = max(got.values()) - began if got else math.nan
    still_missing = sorted(e for e in seated if e not in got and records.get(e, {}).get("status") != "failed")

    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    answered_ms = [v for v in latencies if not math.isinf(v)]
    created = [datetime.fromisoformat(r["created_at"]).timestamp() for r in records.values() if r.get("created_at")]
    latency = " / ".join(ms(percentile(latencies, q)) for q in (50, 90, 99, 100))
    latency_met = verdict(p50 <= TARGETS["p50_ms"] and p99 <= TARGETS["p99_ms"])
    last_text = "n/a" if math.isnan(last) else f"{last:.0f} s"
    last_met = verdict(not still_missing and not math.isnan(last) and last <= TARGETS["last_credentials_s"])
    missing_text = f" ({len(still_missing)} still missing after {waited:.0f} s)" if still_missing else ""
    failure_text = f" (e.g. {failed[0].get('failure')!r})" if failed else ""
    rows: list[tuple[str, str]] = [
        ("burst", f"{args.n} registrations in {wall:.1f} s ({args.n / wall:.1f}/s), {concurrency} at once"),
        ("answers by status", ", ".join(f"{k}: {v}" for k, v in sorted(by_status.items())) or "none"),
        ("client timeouts", f"{len(timeouts)} (> {args.timeout:.0f} s)   target {TARGETS['timeouts']}: "
                            f"{verdict(len(timeouts) <= TARGETS['timeouts'])}"),
        ("other client errors", ", ".join(f"{k}: {v}" for k, v in errors.items()) or "0"),
        ("5xx answers", f"{server_errors}   target {TARGETS['5xx']}: {verdict(server_errors <= TARGETS['5xx'])}"),
        ("created without an answer", f"{len(unanswered_created)} of {args.n - sum(by_status.values())} "
                                      "unanswered requests"),
        ("API latency p50/p90/p99/max", f"{latency} ms   target p50 <= {TARGETS['p50_ms']}, "
                                        f"p99 <= {TARGETS['p99_ms']}: {latency_met}"),
        ("answered requests only", f"{len(answered_ms)}: p50 {ms(percentile(answered_ms, 50))} / p99 "
                                   f"{ms(percentile(answered_ms, 99))} / max {ms(percentile(answered_ms, 100))} ms"),
        ("latest created_at", f"{max(created) - began:.1f} s after the burst began (the app's clock as it took "
                              "the request; answers may leave later)" if created else "n/a"),
        ("accepted (202)", f"{accepted} of {args.n}"),
        ("seated / waitlisted (stored)", f"{len(seated)} / {statuses.get('waitlisted', 0)} of {len(records)} "
                                         f"registrations created; now {dict(sorted(statuses.items()))}"),
        ("credentials emails", f"{len(got)} of {len(seated)} seated participants ({len(failed)} failed){missing_text}"),
        ("last credentials after start", f"{last_text}{' (not everyone yet)' if still_missing else ''}   "
                                         f"target <= {TARGETS['last_credentials_s']} s: {last_met}"),
        ("failed provisionings", f"{len(failed)}   target {TARGETS['failed']}: "
                                 f"{verdict(len(failed) <= TARGETS['failed'])}{failure_text}"),
    ]
    if got:
        per_participant = sorted(t - began for t in got.values())
        rows.append(("credentials after start p50/p90", f"{percentile(per_participant, 50):.0f} / "
                                                        f"{percentile(per_participant, 90):.0f} s"))
    if poll_errors:
        rows.append(("polls that failed", ", ".join(f"{k}: {v}" for k, v in poll_errors.items())))
    limited = [a for a in answers if a.status == 429]
    if limited:
        rows.append(("rate limited (429)", f"{len(limited)}: start the stack with WOD_RATE_LIMIT_PER_MINUTE=0 "
                                           "for this bench"))
    if unconfirmed:
        rows.append(("awaiting confirmation", f"{len(unconfirmed)} registrations hold a seat unconfirmed: start "
                                              "the stack with WOD_CONFIRM_MINUTES=0 for this bench"))
    if memory and memory.samples:
        peak_platform = max(memory.samples, key=lambda s: s.platform_kb)
        peak_hub = max(memory.samples, key=lambda s: s.hub_kb)
        peak_total = max(memory.samples, key=lambda s: s.platform_kb + s.hub_kb)
        lowest = min(memory.samples, key=lambda s: s.available_kb)
        if baseline:
            rows.append(("memory before the burst", f"platform {mb(baseline.platform_kb)}, JupyterHub + student "
                                                    f"servers {mb(baseline.hub_kb)} ({baseline.servers} servers)"))
        rows += [
            ("peak memory, platform", f"{mb(peak_platform.platform_kb)} at {peak_platform.at - began:.0f} s"),
            ("peak memory, hub + servers", f"{mb(peak_hub.hub_kb)} at {peak_hub.at - began:.0f} s with "
                                           f"{peak_hub.servers} student servers running"),
            ("peak memory, both", f"{mb(peak_total.platform_kb + peak_total.hub_kb)} "
                                  f"(RSS sums, {len(memory.samples)} samples every {args.interval:g} s)"),
            ("lowest MemAvailable", f"{mb(lowest.available_kb)} at {lowest.at - began:.0f} s"),
        ]
        foreign = max(s.foreign_students for s in memory.samples)
        if foreign:
            rows.append(("not counted", f"up to {foreign} processes of other {STUDENT_GROUP} users (another stack)"))
    width = max(len(k) for k, _ in rows)
    print("-" * 100)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    print("-" * 100)
    print(f"hand the capacity back to the folder with: PATCH /api/admin/workshops/{args.workshop} "
          '{"capacity": null} (applied by the next `make sync`)')
    if not stack_up:
        print("BROKEN RUN: the stack stopped answering during the run")
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
