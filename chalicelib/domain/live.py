"""The live room's rules: what a participant's notebook reports (batches of events), folded into
one small state per seat, and the row a facilitator reads from it.

A batch comes from the hub (which authenticated the student's own token) and names the student;
its events are ``opened`` (a notebook), ``executed`` (a cell: its place in the notebook, when the
saved notebook has it; without a place, activity only), ``check``
(an exercise check ran: passed or not), ``idle`` and ``hand`` (help asked). The state keeps only
what the room shows: the current notebook and step, each check's last result, how often a check
failed in a row, the last activity, the last progress (a new step or a passed check) and a raised
hand. A participant is **stuck** when nothing progressed for ``stuck_minutes`` while they are
active, or when one check failed ``stuck_failures`` times in a row.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from chalicelib.domain.checks import GRADE_ID
from chalicelib.domain.errors import InvalidInput

KINDS = ("opened", "executed", "check", "idle", "hand")
MAX_EVENTS = 50  # in one batch
MAX_NOTEBOOK = 200  # characters of a notebook's path
MAX_CHECKS = 200  # checks remembered for one participant
STUDENT = re.compile(r"[A-Za-z0-9_-]{1,80}")
SOURCE = re.compile(r"[A-Za-z0-9_-]{1,40}")  # one kernel: its events are sent in order, and again after a timeout
SOURCES_KEPT = 8
EARLIEST = timedelta(minutes=15)  # an event older than this (a kernel that queued) counts as of then
STUCK_MINUTES = 10
STUCK_FAILURES = 3
QUIET_MINUTES = 5  # no event for this long: the server shows as idle


@dataclass(frozen=True)
class Event:
    kind: str
    at: datetime
    notebook: str | None = None
    cell: int | None = None
    cells: int | None = None
    check: str | None = None
    passed: bool | None = None
    sent: float = 0.0  # the time the kernel gave it, as sent: a resent event is known by it


def _int(value: Any, low: int, high: int) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high else None


def parse_batch(data: Any, now: datetime) -> tuple[str, int, str | None, list[Event]]:
    """``{student, seq, source?, events: [...]}`` -> (student, seq, source, events); every problem named
    (:class:`InvalidInput`). An event's time is kept within the last :data:`EARLIEST` and not past
    ``now``."""
    if not isinstance(data, Mapping):
        raise InvalidInput({"body": "expected a JSON object"})
    problems: dict[str, str] = {}
    student, seq, raw = data.get("student"), data.get("seq"), data.get("events")
    if not isinstance(student, str) or not STUDENT.fullmatch(student):
        problems["student"] = "a student name of letters, digits, - and _"
    if _int(seq, 1, 2**62) is None:
        problems["seq"] = "a positive whole number, larger than the last batch's"
    source = data.get("source")
    if source is not None and (not isinstance(source, str) or not SOURCE.fullmatch(source)):
        problems["source"] = "the kernel's id: 1 to 40 letters, digits, - and _"
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_EVENTS:
        problems["events"] = f"a list of 1 to {MAX_EVENTS} events"
        raw = []
    events: list[Event] = []
    for index, item in enumerate(raw):
        try:
            events.append(_event(item, now))
        except ValueError as exc:
            problems[f"events[{index}]"] = str(exc)
    if problems:
        raise InvalidInput(problems, "The events are not as the platform takes them.")
    return str(student), int(seq or 0), source, events


def _event(item: Any, now: datetime) -> Event:
    if not isinstance(item, Mapping):
        raise ValueError("an event is an object")
    kind = item.get("kind")
    if kind not in KINDS:
        raise ValueError(f"kind is one of {', '.join(KINDS)}")
    at = item.get("at")
    if not isinstance(at, (int, float)) or isinstance(at, bool) or at != at:
        raise ValueError("at: the event's time in epoch seconds")
    try:
        when = datetime.fromtimestamp(float(at), now.tzinfo)
    except (OverflowError, OSError, ValueError):
        raise ValueError("at: the event's time in epoch seconds") from None
    when = min(max(when, now - EARLIEST), now)
    notebook = item.get("notebook")
    if notebook is not None and (not isinstance(notebook, str) or not 0 < len(notebook) <= MAX_NOTEBOOK
                                 or not notebook.isprintable()):
        raise ValueError(f"notebook: a path of at most {MAX_NOTEBOOK} printable characters")
    cells = _int(item.get("cells"), 1, 10_000) if item.get("cells") is not None else None
    cell = _int(item.get("cell"), 0, 9_999) if item.get("cell") is not None else None
    if (item.get("cells") is not None and cells is None) or (item.get("cell") is not None and cell is None):
        raise ValueError("cell and cells: whole numbers, the cell's place (from 0) and the notebook's cells")
    check, passed = item.get("check"), item.get("passed")
    if kind == "check":
        if not isinstance(check, str) or not GRADE_ID.fullmatch(check):
            raise ValueError("check: the check's grade_id")
        if not isinstance(passed, bool):
            raise ValueError("passed: true or false")
    return Event(kind, when, notebook, cell, cells, check if kind == "check" else None,
                 passed if kind == "check" else None, float(at))


def fold(state: Mapping[str, Any] | None, registration_id: str, events: Sequence[Event],
         source: str | None = None, checks_total: int | None = None) -> dict[str, Any]:
    """The participant's state after ``events`` (a state of another registration starts over). Of a
    ``source`` (a kernel), an event sent no later than the last one taken is a resend and is left
    out; a hand raised before the facilitator answered the last one stays down. At most
    ``checks_total`` (the workshop's checks; None: :data:`MAX_CHECKS`) different checks are kept: a
    kernel cannot make up more, and a workshop without checks keeps none."""
    most = MAX_CHECKS if checks_total is None else min(MAX_CHECKS, checks_total)
    live: dict[str, Any] = dict(state) if state and state.get("registration") == registration_id else {
        "registration": registration_id, "checks": {}, "fails": {}, "events": 0}
    checks, fails = dict(live.get("checks") or {}), dict(live.get("fails") or {})
    if source:
        sources = dict(live.get("sources") or {})
        last = float(sources.get(source) or 0)
        events = [e for e in events if e.sent > last]
        if events:
            sources[source] = max(e.sent for e in events)
            live["sources"] = dict(sorted(sources.items(), key=lambda kv: kv[1])[-SOURCES_KEPT:])
    answered = live.get("answered")
    for event in sorted(events, key=lambda e: e.at):
        stamp = event.at.isoformat()
        live["last_event"] = max(live.get("last_event") or stamp, stamp)
        live["first_event"] = min(live.get("first_event") or stamp, stamp)
        live["events"] = int(live.get("events") or 0) + 1
        live["idle"] = event.kind == "idle"
        if event.notebook and event.kind != "hand":
            if event.notebook != live.get("notebook"):
                live.update(notebook=event.notebook, step=None, steps=None)
        if event.kind == "executed" and event.cell is not None:
            step = event.cell + 1
            if step > int(live.get("step") or 0):
                live["last_progress"] = stamp
            live.update(step=step, steps=event.cells or live.get("steps"))
        elif event.kind == "check" and event.check:
            if event.check not in checks and len(checks) >= most:
                continue
            if event.passed:
                if checks.get(event.check) is not True:
                    live["last_progress"] = stamp
                fails[event.check] = 0
            else:
                fails[event.check] = int(fails.get(event.check) or 0) + 1
            checks[event.check] = checks.get(event.check) is True or bool(event.passed)
            live["last_check"] = {"id": event.check, "passed": bool(event.passed)}
        elif event.kind == "hand" and not live.get("hand") and (not answered or stamp > answered):
            live["hand"] = stamp
        live.setdefault("last_progress", stamp)
    live.update(checks=checks, fails={k: v for k, v in fails.items() if v})
    return live


def answer_hand(state: Mapping[str, Any] | None, now: datetime) -> dict[str, Any] | None:
    """The state with its hand lowered (None when there was nothing to lower)."""
    if not state or not state.get("hand"):
        return None
    return {**state, "hand": None, "answered": now.isoformat()}


def changed_checks(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[tuple[str, bool]]:
    """The checks whose result a batch changed (first run, or passed since): what a webhook tells."""
    old, new = before.get("checks") or {}, after.get("checks") or {}
    return [(check, bool(passed)) for check, passed in new.items() if old.get(check) != passed]


def _since(stamp: str | None, now: datetime) -> float | None:
    return (now - datetime.fromisoformat(stamp)).total_seconds() if stamp else None


def row(student: Mapping[str, Any], registration: Mapping[str, Any] | None, checks_total: int, now: datetime,
        stuck_minutes: int = STUCK_MINUTES, stuck_failures: int = STUCK_FAILURES,
        hub_server: str | None = None) -> dict[str, Any]:
    """What the live room shows of one seat. ``student``: ``id``, ``status``, ``registration_id`` and
    ``live`` (the folded state); ``registration``: its registration's ``id``, ``name``, ``status``,
    ``ends_at`` (None for a free seat); ``hub_server``: what the hub said of the student's server
    (``ready``, ``pending``, ``none``: stopped — by the idle culler, or never started), when asked."""
    live = student.get("live") or {}
    if registration is None or live.get("registration") != registration.get("id"):
        live = {}
    checks = live.get("checks") or {}
    passed = sum(1 for ok in checks.values() if ok)
    if checks_total:  # reported by the participant's kernel: never more than the workshop has
        passed = min(passed, checks_total)
    quiet = _since(live.get("last_event"), now)
    active = registration is not None and registration.get("status") == "active"
    if active and hub_server == "none":
        server = "stopped" if live else "not started"
    elif active and hub_server in ("ready", "pending") and not live:
        server = "running" if hub_server == "ready" else "starting"
    elif not live:
        server = "not started" if active else "—"
    elif live.get("idle") or (quiet is not None and quiet > QUIET_MINUTES * 60):
        server = "idle"
    else:
        server = "running"
    stuck = None
    if active:
        failing = max((live.get("fails") or {}).items(), key=lambda kv: kv[1], default=(None, 0))
        unmoved = _since(live.get("last_progress"), now)
        if failing[1] >= stuck_failures:
            stuck = f"check {failing[0]} failed {failing[1]} times in a row"
        elif unmoved is not None and unmoved > stuck_minutes * 60:
            stuck = f"no progress for {int(unmoved // 60)} min"
    return {
        "student": student.get("id"), "registration": (registration or {}).get("id"),
        "name": (registration or {}).get("name") or "", "status": (registration or {}).get("status") or "free",
        "ends_at": (registration or {}).get("ends_at"), "server": server, "notebook": live.get("notebook"),
        "step": live.get("step"), "steps": live.get("steps"), "checks_passed": passed, "checks_total": checks_total,
        "last_check": live.get("last_check"), "last_activity": live.get("last_event"),
        "quiet_seconds": int(quiet) if quiet is not None else None, "stuck": stuck, "hand": live.get("hand"),
    }


def quiet(row: Mapping[str, Any]) -> bool:
    """A running participant whose notebook reported before, then nothing for a while: whether their
    server is still there is worth asking the hub (its idle culler may have stopped it)."""
    return row.get("status") == "active" and row.get("server") == "idle"


def order(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Hands first (the longest waiting first), then the stuck, then the others; free seats last."""
    def key(r: Mapping[str, Any]) -> tuple:
        return (0 if r.get("hand") else 1 if r.get("stuck") else 2 if r.get("registration") else 3,
                r.get("hand") or "", str(r.get("student") or ""))
    return sorted(rows, key=key)
