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
from chalicelib.domain.errors import Conflict, InvalidInput, NotFound, Unavailable, WodError
from chalicelib.domain.orders import OrderRejected
from chalicelib.domain.registration import ACTIVE
from chalicelib.domain.text import N_
from chalicelib.domain.values import Student, Workshop
from chalicelib.observability import count, logger
from chalicelib.services import webhooks
from chalicelib.services.context import Context

ATTEMPTS = 4  # a batch that meets another one being written reads the seat again
ROOM_CACHE_SECONDS = 2.0  # several facilitators watching one room cost one read of it
MESSAGE_MAX = 280
MAX_HOOKED_CHECKS = 3  # check results a batch may send to webhooks (only results that changed)
_rooms: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}
_rooms_lock = threading.Lock()
_servers: dict[tuple[str, str], tuple[float, str]] = {}  # (stack, student) -> (when asked, what the hub said)
_hub_quiet_until: dict[str, float] = {}  # a stack's hub that did not answer is not asked again until then
HUB_CACHE_SECONDS = 30.0
HUB_BUDGET_SECONDS = 0.3
# a seat's status as the room says it (the registration's is the same while it runs)
SEAT_STATUS = {"reserved": "starting", "active": ACTIVE, "cleaning": "ending"}


def signer_location(ctx: Context, student_id: object) -> str:
    """The location whose hub may report on ``student_id``; an unknown student is refused as a bad
    signature would be (nothing tells a stranger which students exist)."""
    if not isinstance(student_id, str) or not rules.STUDENT.fullmatch(student_id):
        raise OrderRejected("bad_signature", "the signature is missing or does not match")
    try:
        return ctx.stores.seats.get_student(student_id).location
    except NotFound as exc:
        raise OrderRejected("bad_signature", "the signature is missing or does not match") from exc


def _running(seat: Student) -> str:
    if seat.status != "active" or not seat.registration_id:
        raise Conflict(f"{seat.id} holds no running workshop: its events are not taken.")
    return seat.registration_id


def _apply(ctx: Context, student_id: str, seq: int | None, change) -> tuple[Student, dict[str, Any], dict[str, Any]]:
    """Read the seat, ``change(live_before, registration_id, seat)`` -> the new state, write it under the
    expected sequence; (the seat as read, before, after). ``seq`` None: the seat's own next one."""
    for _ in range(ATTEMPTS):
        seat = ctx.stores.seats.get_student(student_id)
        registration_id = _running(seat)
        if seq is not None and seat.live_seq is not None and seq <= seat.live_seq:
            count("LiveEventsReplayed")
            raise Conflict("These events were already taken (a replay, or older than the last batch).")
        before = dict(seat.live) if seat.live and seat.live.get("registration") == registration_id else {}
        after = change(before, registration_id, seat)
        if after is None:
            return seat, before, before
        if ctx.stores.live.record(seat, seq if seq is not None else (seat.live_seq or 0) + 1, after):
            return seat, before, after
    raise Unavailable("This participant's events are being written by another request; send them again.")


def _workshop(ctx: Context, workshop_id: str) -> Workshop | None:
    """From the pages' copy (no read of its own)."""
    try:
        return ctx.stores.recent.get(workshop_id)
    except NotFound:
        return None


def ingest(ctx: Context, data: Any) -> dict[str, Any]:
    """Take one batch ``{student, seq, source?, events}`` (already verified as the hub's). The answer
    carries the facilitator's current message, which the participant's kernel shows once."""
    student_id, seq, source, events = rules.parse_batch(data, ctx.clock())
    seen: dict[str, Workshop | None] = {}

    def fold(state: dict[str, Any], registration_id: str, seat: Student) -> dict[str, Any]:
        seen["workshop"] = _workshop(ctx, seat.workshop_id)
        checks = seen["workshop"].checks if seen["workshop"] is not None else None
        return rules.fold(state, registration_id, events, source, checks)

    seat, before, after = _apply(ctx, student_id, seq, fold)
    workshop = seen.get("workshop")
    registration_id = str(seat.registration_id)
    count("LiveEvents", len(events))
    notebook = next((e.notebook for e in events if e.kind == "check"), None)
    for check, passed in rules.changed_checks(before, after)[:MAX_HOOKED_CHECKS]:
        webhooks.emit_live(ctx, "check", registration_id, {"check": {
            "id": check, "passed": passed, "notebook": notebook, "at": after.get("last_event")}})
    if after.get("hand") and not before.get("hand"):
        webhooks.emit_live(ctx, "help_requested", registration_id,
                           {"help": {"since": after["hand"], "from": "notebook"}})
    message = {"text": workshop.message, "at": workshop.message_at.isoformat()} \
        if workshop is not None and workshop.message and workshop.message_at else None
    return {"taken": len(events), "registration": registration_id, "message": message}


def raise_hand(ctx: Context, registration_id: str) -> dict[str, Any]:
    """A participant asks for help from the status page (their workshop must be running)."""
    reg = ctx.stores.registrations.get(registration_id)
    if reg.status != ACTIVE or not reg.student_id:
        raise Conflict(N_("You can ask for help while your workshop is running."))
    event = rules.Event("hand", ctx.clock())
    _, before, after = _apply(ctx, reg.student_id, None,
                              lambda state, r, _: rules.fold(state, r, [event]) if r == registration_id else None)
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
                              lambda state, r, _: rules.answer_hand(state, now) if r == registration_id else None)
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


def _hub_servers(ctx: Context, students: list[str]) -> dict[str, str]:
    """What the hub says of these students' servers (``ready``, ``pending``, ``none``), each asked at
    most every :data:`HUB_CACHE_SECONDS`, all within :data:`HUB_BUDGET_SECONDS`; a hub that does not
    answer is left alone for as long, and the rows say what the events say."""
    found: dict[str, str] = {}
    prefix = ctx.settings.table_prefix
    deadline = time.monotonic() + HUB_BUDGET_SECONDS
    for student in students:
        cached = _servers.get((prefix, student))
        if cached and time.monotonic() - cached[0] < HUB_CACHE_SECONDS:
            found[student] = cached[1]
            continue
        if time.monotonic() > deadline or time.monotonic() < _hub_quiet_until.get(prefix, 0.0):
            continue
        try:
            state = ctx.hub.server_state(student)
        except (WodError, LookupError) as exc:
            _hub_quiet_until[prefix] = time.monotonic() + HUB_CACHE_SECONDS
            logger.warning("the hub did not say whether servers run; the live room shows what the events say",
                           extra={"student": student, "error": str(getattr(exc, "message", exc))})
            break
        _servers[(prefix, student)] = (time.monotonic(), state)
        found[student] = state
    return found


def room(ctx: Context, workshop_id: str, fresh: bool = False) -> dict[str, Any]:
    """Every seat of the workshop as the live room shows it, hands and the stuck first. At most
    :data:`ROOM_CACHE_SECONDS` old unless ``fresh``."""
    key = (ctx.settings.table_prefix, workshop_id)
    with _rooms_lock:
        cached = _rooms.get(key)
    if cached and not fresh and time.monotonic() - cached[0] < ROOM_CACHE_SECONDS:
        return cached[1]
    workshop = ctx.stores.seats.get_workshop(workshop_id)
    seats = ctx.stores.organiser.students_of(workshop_id)  # one query: holder, status, ends, events are on the seat
    now = ctx.clock()
    rows = []
    shown: dict[str, dict[str, Any] | None] = {}
    for seat in seats:
        shown[seat.id] = {"id": seat.registration_id, "name": seat.holder or "",
                          "status": SEAT_STATUS.get(seat.status, seat.status),
                          "ends_at": seat.expires_at.isoformat() if seat.expires_at else None} \
            if seat.registration_id else None
        rows.append(rules.row({"id": seat.id, "live": seat.live}, shown[seat.id], workshop.checks, now))
    # on one machine the platform holds its hub's token, and the hub says which quiet servers stopped;
    # on AWS the API function holds no hub token (only the events keys): the rows say what the events say
    if workshop.location == ctx.settings.location and ctx.settings.secrets_file:
        servers = _hub_servers(ctx, [r["student"] for r in rows if rules.quiet(r)])
        by_id = {seat.id: seat for seat in seats}
        rows = [rules.row({"id": r["student"], "live": by_id[r["student"]].live}, shown[r["student"]],
                          workshop.checks, now, hub_server=servers[r["student"]]) if r["student"] in servers else r
                for r in rows]
    ordered = rules.order(rows)
    data = {
        "workshop": {"id": workshop.id, "title": workshop.title, "checks": workshop.checks,
                     "message": workshop.message, "extension_minutes": workshop.extension_minutes,
                     "extend_round": workshop.extend_round or ""},
        "generated_at": now.isoformat(),
        "counts": {"seats": len(rows), "running": sum(1 for r in rows if r["status"] == ACTIVE),
                   "hands": sum(1 for r in rows if r["hand"]), "stuck": sum(1 for r in rows if r["stuck"])},
        "rows": ordered,
    }
    with _rooms_lock:
        _rooms[key] = (time.monotonic(), data)
    return data
