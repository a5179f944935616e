"""The facilitator's live room: participants' notebook events taken in (signed batches relayed by
the hub), a raised hand, and the room's rows (:mod:`chalicelib.domain.live` decides what they say).

A batch costs one read and one conditional write of the student item, whatever its size; a
replayed or older batch is refused (:class:`Conflict`), and so is a batch for a student that holds
no running registration."""
from __future__ import annotations

import threading
import time
from typing import Any

from chalicelib.domain import live as rules
from chalicelib.domain.errors import Conflict, InvalidInput, NotFound, Unavailable
from chalicelib.domain.orders import OrderRejected
from chalicelib.domain.registration import ACTIVE
from chalicelib.domain.values import Student
from chalicelib.observability import count
from chalicelib.services import webhooks
from chalicelib.services.context import Context

ATTEMPTS = 4  # a batch that meets another one being written reads the seat again
ROOM_CACHE_SECONDS = 2.0  # several facilitators watching one room cost one read of it
MESSAGE_MAX = 280
MAX_HOOKED_CHECKS = 3  # check results a batch may send to webhooks (only results that changed)
_rooms: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}
_rooms_lock = threading.Lock()
_names: dict[str, str] = {}
NAMES_KEPT = 20_000
# a seat's status as the room says it (the registration's is the same while it runs)
SEAT_STATUS = {"reserved": "starting", "active": ACTIVE, "cleaning": "ending"}


def signer_location(ctx: Context, student_id: object) -> str:
    """The location whose hub may report on ``student_id``; an unknown student is refused as a bad
    signature would be (nothing tells a stranger which students exist)."""
    if not isinstance(student_id, str) or not rules.STUDENT.fullmatch(student_id):
        raise OrderRejected("bad_signature", "the signature is missing or does not match")
    try:
        return ctx.stores.live.seat(student_id).location
    except NotFound as exc:
        raise OrderRejected("bad_signature", "the signature is missing or does not match") from exc


def _running(seat: Student) -> str:
    if seat.status != "active" or not seat.registration_id:
        raise Conflict(f"{seat.id} holds no running workshop: its events are not taken.")
    return seat.registration_id


def _apply(ctx: Context, student_id: str, seq: int | None, change) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """Read the seat, ``change(live_before, registration_id)`` -> the new state, write it under the
    expected sequence; (registration, before, after). ``seq`` None: the seat's own next one."""
    for _ in range(ATTEMPTS):
        seat = ctx.stores.live.seat(student_id)
        registration_id = _running(seat)
        if seq is not None and seat.live_seq is not None and seq <= seat.live_seq:
            count("LiveEventsReplayed")
            raise Conflict("These events were already taken (a replay, or older than the last batch).")
        before = dict(seat.live) if seat.live and seat.live.get("registration") == registration_id else {}
        after = change(before, registration_id)
        if after is None:
            return registration_id, before, before
        if ctx.stores.live.record(seat, seq if seq is not None else (seat.live_seq or 0) + 1, after):
            return registration_id, before, after
    raise Unavailable("This participant's events are being written by another request; send them again.")


def ingest(ctx: Context, data: Any) -> dict[str, Any]:
    """Take one batch ``{student, seq, source?, events}`` (already verified as the hub's)."""
    student_id, seq, source, events = rules.parse_batch(data, ctx.clock())
    registration_id, before, after = _apply(ctx, student_id, seq,
                                            lambda state, reg: rules.fold(state, reg, events, source))
    count("LiveEvents", len(events))
    notebook = next((e.notebook for e in events if e.kind == "check"), None)
    for check, passed in rules.changed_checks(before, after)[:MAX_HOOKED_CHECKS]:
        webhooks.emit_live(ctx, "check", registration_id, {"check": {
            "id": check, "passed": passed, "notebook": notebook, "at": after.get("last_event")}})
    if after.get("hand") and not before.get("hand"):
        webhooks.emit_live(ctx, "help_requested", registration_id,
                           {"help": {"since": after["hand"], "from": "notebook"}})
    return {"taken": len(events), "registration": registration_id}


def raise_hand(ctx: Context, registration_id: str) -> dict[str, Any]:
    """A participant asks for help from the status page (their workshop must be running)."""
    reg = ctx.stores.registrations.get(registration_id)
    if reg.status != ACTIVE or not reg.student_id:
        raise Conflict("You can ask for help while your workshop is running.")
    event = rules.Event("hand", ctx.clock())
    _, before, after = _apply(ctx, reg.student_id, None,
                              lambda state, r: rules.fold(state, r, [event]) if r == registration_id else None)
    if after.get("hand") and not before.get("hand"):
        webhooks.emit_live(ctx, "help_requested", registration_id, {"help": {"since": after["hand"],
                                                                             "from": "status page"}})
    return {"hand": after.get("hand")}


def answer_hand(ctx: Context, actor: str, workshop_id: str, registration_id: str) -> str:
    """The facilitator took a raised hand (of this registration: a row the seat's next participant
    took meanwhile is refused); returns the student's id."""
    from chalicelib.services import audit
    reg = ctx.stores.registrations.get(registration_id)
    if reg.workshop_id != workshop_id or not reg.student_id:
        raise NotFound(f"Registration {registration_id} holds no seat of {workshop_id}.")
    with audit.audited(ctx, actor, "registration.answer_hand", registration_id) as detail:
        detail.update(student=reg.student_id, workshop=workshop_id)
        now = ctx.clock()
        _, before, _ = _apply(ctx, reg.student_id, None,
                              lambda state, r: rules.answer_hand(state, now) if r == registration_id else None)
        if not before.get("hand"):
            raise Conflict(f"{reg.student_id} has no hand raised.")
    forget(workshop_id)
    return reg.student_id


def set_message(ctx: Context, actor: str, workshop_id: str, text: Any) -> str | None:
    """The message every participant of ``workshop_id`` sees on their status page (empty: none)."""
    from chalicelib.services import audit
    if not isinstance(text, str):
        raise InvalidInput({"message": "Plain text."})
    text = " ".join(text.split())
    if len(text) > MESSAGE_MAX or any(ord(ch) < 32 for ch in text):
        raise InvalidInput({"message": f"Plain text of at most {MESSAGE_MAX} characters."})
    with audit.audited(ctx, actor, "workshop.message", workshop_id) as detail:
        ctx.stores.live.set_message(workshop_id, text or None, ctx.clock())
        detail.update(length=len(text))
    forget(workshop_id)
    return text or None


def forget(workshop_id: str) -> None:
    """The room is read again at its next look (something changed)."""
    with _rooms_lock:
        for key in [k for k in _rooms if k[1] == workshop_id]:
            del _rooms[key]


def _names_of(ctx: Context, registration_ids: list[str]) -> dict[str, str]:
    """Participants' names by registration (a registration's name never changes: each is read once
    per process, so a refresh reads only the seats)."""
    missing = [rid for rid in registration_ids if rid not in _names]
    if missing:
        if len(_names) + len(missing) > NAMES_KEPT:
            _names.clear()
        for rid, reg in ctx.stores.live.registrations(missing).items():
            _names[rid] = f"{reg.first_name} {reg.last_name}".strip()
    return {rid: _names.get(rid, "") for rid in registration_ids}


def room(ctx: Context, workshop_id: str, fresh: bool = False) -> dict[str, Any]:
    """Every seat of the workshop as the live room shows it, hands and the stuck first. At most
    :data:`ROOM_CACHE_SECONDS` old unless ``fresh``."""
    key = (ctx.settings.table_prefix, workshop_id)
    with _rooms_lock:
        cached = _rooms.get(key)
    if cached and not fresh and time.monotonic() - cached[0] < ROOM_CACHE_SECONDS:
        return cached[1]
    workshop = ctx.stores.seats.get_workshop(workshop_id)
    seats = ctx.stores.organiser.students_of(workshop_id)  # one query: status, ends and events are on the seat
    names = _names_of(ctx, [s.registration_id for s in seats if s.registration_id])
    now = ctx.clock()
    rows = []
    for seat in seats:
        shown = {"id": seat.registration_id, "name": names.get(seat.registration_id, ""),
                 "status": SEAT_STATUS.get(seat.status, seat.status),
                 "ends_at": seat.expires_at.isoformat() if seat.expires_at else None} if seat.registration_id else None
        rows.append(rules.row({"id": seat.id, "live": seat.live}, shown, workshop.checks, now))
    ordered = rules.order(rows)
    data = {
        "workshop": {"id": workshop.id, "title": workshop.title, "checks": workshop.checks,
                     "message": workshop.message, "extension_minutes": workshop.extension_minutes},
        "generated_at": now.isoformat(),
        "counts": {"seats": len(rows), "running": sum(1 for r in rows if r["status"] == ACTIVE),
                   "hands": sum(1 for r in rows if r["hand"]), "stuck": sum(1 for r in rows if r["stuck"])},
        "rows": ordered,
    }
    with _rooms_lock:
        _rooms[key] = (time.monotonic(), data)
    return data
