"""Organiser operations, shared by the admin API and the dashboard; each change is audited."""
from __future__ import annotations

import re
import secrets
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from chalicelib.domain import reports
from chalicelib.domain.errors import Conflict, NotFound, Unavailable, WodError
from chalicelib.domain.lifecycle import DUE_SCHEDULED, EXTEND, RESCHEDULE
from chalicelib.domain.organiser import ORGANISER_ONLY, validate_minutes, validate_workshop_edit
from chalicelib.domain.registration import (
    ACTIVE,
    EXPIRING,
    PENDING,
    PROVISIONING,
    is_registration_id,
    is_workshop_id,
)
from chalicelib.domain.values import Workshop
from chalicelib.observability import logger
from chalicelib.services import audit, live, outbox, pacing, participant, registrations, seats
from chalicelib.services.commit import commit, refill
from chalicelib.services.context import Context
from chalicelib.store.catalog import SyncReport

ACTIONS = ("resend-credentials", "extend", "reset", "end")
STUDENT_ID = re.compile(r"^[a-z][a-z0-9-]{0,15}[0-9]{1,6}$")
SEAT_NUMBER = re.compile(r"[0-9]+$")


PURGE_ATTEMPTS = 3  # reads and conditional writes, when the registration changes in between


def purge_student(ctx: Context, student_id: str) -> str:
    """Force-free a student whatever its state: its registration (if live) fails with an
    apology, a PURGE order tears the environment down, and the seat comes back. The cleanup is a
    conditional write on what was read: if the registration changed meanwhile (an extension, the
    end of its provisioning), it is read again and the purge tried again."""
    if not STUDENT_ID.fullmatch(student_id or ""):
        raise NotFound(f"There is no student {student_id}.")
    for _ in range(PURGE_ATTEMPTS):
        student = ctx.stores.seats.get_student(student_id)
        if student.registration_id:
            reg = ctx.stores.registrations.get(student.registration_id)
            if reg.status not in (PENDING, PROVISIONING, ACTIVE):
                return "cleaning"  # already on its way back: the cleanup retries take it from here
            try:
                failed = seats.fail(ctx, reg, "purged by an organiser", order_action="PURGE")
            except Unavailable:
                failed = None  # the write lost a race on the seat: read it again
            if failed is None:
                continue  # changed between the read and the write: read it again
            return "purging"
        if ctx.stores.seats.free_orphan(student_id):
            pacing.send(ctx, outbox.order_email(ctx, "PURGE", 0, ctx.stores.seats.get_workshop(student.workshop_id),
                                                student_id, f"purge-{student_id}"), urgent=True)
            return "freed"
        return "free"
    raise Conflict(f"{student_id}'s registration kept changing while it was being purged; nothing was done. "
                   "Try again in a moment.")


def purge(ctx: Context, actor: str, student_id: str) -> dict[str, Any]:
    with audit.audited(ctx, actor, "student.purge", student_id) as detail:
        detail["result"] = purge_student(ctx, student_id)
    return {"student": student_id, "result": detail["result"]}


# -- workshops -------------------------------------------------------------------------------

def _workshop_view(ctx: Context, w: Workshop) -> dict[str, Any]:
    warm, waiting = ctx.stores.organiser.seat_figures(w.id)
    view = registrations.workshop_view(w)
    return view | {"seats_taken": view["seats_total"] - view["seats_free"], "seats_warm": warm, "waitlist": waiting,
                   "extension_minutes": w.extension_minutes, "extension_max": w.extension_max,
                   "overrides": dict(w.overrides or {}), "handed_back": list(w.handed_back or []),
                   "expected": w.expected or None}


def workshops(ctx: Context) -> list[dict[str, Any]]:
    return [_workshop_view(ctx, w) for w in ctx.stores.seats.list_workshops()]


def _workshop(ctx: Context, workshop_id: str) -> Workshop:
    if not is_workshop_id(workshop_id):
        raise NotFound("There is no such workshop.")
    return ctx.stores.seats.get_workshop(workshop_id)


def _seat(student_id: str, first: int) -> int:
    """The capacity that keeps ``student_id``: its place in the range, counting from 1."""
    number = SEAT_NUMBER.search(student_id)
    if number is None:
        raise ValueError(f"{student_id} has no seat number")
    return int(number.group()) - first + 1


def _resize(ctx: Context, workshop: Workshop, capacity: int) -> dict[str, Any]:
    """Students added or removed to match ``capacity``, like a catalog sync would; only free
    seats are removed (a taken or warm one refuses the whole change). Seats are removed from the
    top down, each under the condition that it is still free and not warm: one taken or warmed
    meanwhile stops the removal there, and ``capacity`` in the answer is what was reached."""
    first, prefix = workshop.student_from, workshop.student_prefix
    wanted = [f"{prefix}{n}" for n in range(first, first + capacity)]
    existing = {s.id: s for s in ctx.stores.organiser.students_of(workshop.id)}
    extra = sorted((s for sid, s in existing.items() if sid not in set(wanted)),
                   key=lambda s: _seat(s.id, first), reverse=True)
    busy = [s for s in extra if s.status != "free" or s.warm or s.warming_since]
    if busy:
        lowest = max(_seat(s.id, first) for s in busy)
        raise Conflict(f"{len(busy)} of the {len(extra)} seats to remove are taken or kept warm; "
                       f"the capacity can go down to {lowest} now, and lower once they are free.")
    report = SyncReport(workshop.id)
    ctx.stores.catalog.add_students(workshop.id, workshop.location, [sid for sid in wanted if sid not in existing],
                                    report)
    for student in extra:
        ctx.stores.catalog.remove_students(workshop.id, [student], report)
        if report.kept_busy:  # taken or warmed since it was read: it and the seats below it stay
            capacity = _seat(report.kept_busy[0], first)
            break
    return {"capacity": capacity, "seats_total": capacity - len(report.skipped), "student_to": first + capacity - 1,
            "added": report.added, "removed": report.removed, "kept_busy": report.kept_busy,
            "skipped": report.skipped}


def _reschedule(ctx: Context, workshop_id: str, start: datetime | None) -> int:
    """The seats waiting for the workshop's scheduled session follow its new start (None: on-demand,
    ordered by the next time checks), each told by a mail with the moved invitation."""
    moved = 0
    for registration_id in ctx.stores.registrations.in_phase(DUE_SCHEDULED):
        try:
            reg = ctx.stores.registrations.get(registration_id)
        except NotFound:
            continue
        if reg.workshop_id == workshop_id and commit(ctx, reg, RESCHEDULE, scheduled=start) is not None:
            moved += 1
    if moved:
        logger.info("scheduled seats follow the new start", extra={"workshop": workshop_id, "seats": moved})
    return moved


def update_workshop(ctx: Context, actor: str, workshop_id: str, data: Any) -> dict[str, Any]:
    """Open or close a workshop, change its duration (new sessions) or its capacity. The change
    is kept as an override: a later catalog sync keeps it. ``null`` hands a field back to the
    folder: the workshop keeps its current value until the next sync applies the folder's (this
    side does not read the folders), and the field is listed in ``handed_back`` until then."""
    with audit.audited(ctx, actor, "workshop.update", workshop_id) as detail:
        changes = validate_workshop_edit(data)
        detail["changes"] = {name: value.isoformat() if isinstance(value, datetime) else value
                             for name, value in changes.items()}
        workshop = _workshop(ctx, workshop_id)
        detail["before"] = {"active": workshop.active, "duration_minutes": workshop.duration_minutes,
                            "capacity": workshop.seats_total, "expected": workshop.expected,
                            "starts_at": workshop.starts_at.isoformat() if workshop.starts_at else None}
        overrides: dict[str, Any] = dict(workshop.overrides or {})
        sets: dict[str, Any] = {}
        handed_back = set(workshop.handed_back or [])
        shortfall = None
        for name, value in changes.items():
            if name in ORGANISER_ONLY:  # the organiser's alone: no folder value to hand back to
                sets[name] = value
                continue
            if value is None:
                if name in overrides:
                    overrides.pop(name)
                    handed_back.add(name)
                continue
            handed_back.discard(name)
            if name == "capacity":
                resized = _resize(ctx, workshop, value)
                detail["seats"] = {k: resized[k] for k in ("added", "removed", "kept_busy", "skipped")}
                sets.update(seats_total=resized["seats_total"], student_to=resized["student_to"])
                overrides[name] = resized["capacity"]
                if resized["capacity"] != value:
                    shortfall = Conflict(
                        f"{resized['kept_busy'][0]} was taken or warmed while the capacity was being lowered: "
                        f"it went down to {resized['capacity']} only (any other change is saved), and can go "
                        "lower once that seat is free.")
            else:
                sets[name] = overrides[name] = value
        ctx.stores.organiser.update_workshop(workshop, sets, overrides, sorted(handed_back))
        if shortfall:
            raise shortfall
    if changes.get("capacity"):
        refill(ctx, workshop_id)  # new seats go to whoever waits
    if "starts_at" in changes:
        _reschedule(ctx, workshop_id, changes["starts_at"])
    return _workshop_view(ctx, ctx.stores.seats.get_workshop(workshop_id))


# -- registrations ---------------------------------------------------------------------------

def _admin_actions(record: Mapping[str, Any]) -> list[str]:
    actions = list(ACTIONS) if record["status"] == ACTIVE else []
    if record["student"] and record["status"] in (PENDING, PROVISIONING, ACTIVE, EXPIRING):
        actions.append("purge")
    return actions


def _with_actions(record: Mapping[str, Any]) -> dict[str, Any]:
    return {**record, "actions": _admin_actions(record)}


def search(ctx: Context, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Registrations matching ``q`` (name, email, id, student, company, workshop), ``status`` and
    ``workshop``, newest first."""
    wanted = reports.search_filter(params)
    found = [r for r in reports.newest_first(ctx.stores.organiser.all_registrations()) if reports.matches(r, wanted)]
    return {"total": len(found), "registrations": [_with_actions(r) for r in found[:wanted["limit"]]]}


def registration(ctx: Context, registration_id: str) -> dict[str, Any]:
    if not is_registration_id(registration_id):
        raise NotFound("No registration has this id.")
    return _with_actions(ctx.stores.organiser.registration(registration_id))


def perform(ctx: Context, actor: str, action: str, registration_id: str,
            data: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """resend-credentials (a new password, notebooks kept) | extend | reset | end."""
    if action not in ACTIONS:
        raise NotFound(f"Unknown action {action!r}; one of {', '.join(ACTIONS)}.")
    with audit.audited(ctx, actor, f"registration.{action}", registration_id) as detail:
        minutes = validate_minutes((data or {}).get("minutes")) if action == "extend" else None
        before = registration(ctx, registration_id)
        detail.update(student=before["student"], workshop=before["workshop"])  # ids only: no personal data
        if action == "extend":
            after = participant.extend(ctx, registration_id, minutes, organiser=True)
            detail.update(ends_before=before["ends_at"], ends_after=after["ends_at"])
        elif action == "resend-credentials":
            participant.reset(ctx, registration_id, notebooks=False)
        else:
            participant.perform(ctx, action, registration_id)
    return registration(ctx, registration_id)


EXTEND_ALL_WORKERS = 8  # registrations extended at once (each its own transaction)
EXTEND_ALL_SECONDS = 20.0  # then the answer says how many are left (the API's limit is 29 s)


def extend_all(ctx: Context, actor: str, workshop_id: str, minutes: Any,
               seen_round: str | None = None) -> dict[str, int]:
    """Extend every running registration of the workshop by ``minutes`` (the live room's button):
    one audit entry, the registrations in parallel, the participants' own extensions untouched.
    Counted: extended, refused (ended or changed meanwhile), left (not reached in
    :data:`EXTEND_ALL_SECONDS`). ``seen_round``: the round the room's form was rendered with; the
    same form sent again (a double click, a resent POST) is refused and extends nothing."""
    with audit.audited(ctx, actor, "workshop.extend_all", workshop_id) as detail:
        # a bad value is refused before anything is extended; none: the workshop's own extension
        wanted = validate_minutes(minutes) or ctx.stores.seats.get_workshop(workshop_id).extension_minutes
        if seen_round is not None and not ctx.stores.live.next_extend_round(workshop_id, seen_round or None,
                                                                            secrets.token_hex(8)):
            raise Conflict("Every running workshop was already extended from this page (the form was sent "
                           "twice). Reload the live room to extend them again.")
        running = [r["registration"] for r in live.room(ctx, workshop_id, fresh=True)["rows"]
                   if r["status"] == ACTIVE]
        deadline = time.monotonic() + EXTEND_ALL_SECONDS

        def one(registration_id: str) -> str:
            if time.monotonic() > deadline:
                return "left"
            try:
                reg = ctx.stores.registrations.get(registration_id)
                if reg.status != ACTIVE or commit(ctx, reg, EXTEND, minutes=wanted, counted=False) is None:
                    return "refused"
            except WodError:
                return "refused"
            return "extended"

        with ThreadPoolExecutor(max_workers=EXTEND_ALL_WORKERS) as pool:
            outcomes = list(pool.map(one, running))
        counted = {kind: outcomes.count(kind) for kind in ("extended", "refused", "left")}
        detail.update(minutes=wanted, **counted)
    live.forget(workshop_id)
    return counted


def export_csv(ctx: Context, actor: str, params: Mapping[str, Any] | None = None) -> str:
    """Every matching registration (no page limit), as CSV; the export is audited (its filters,
    not the searched text: the audit log holds no personal data)."""
    with audit.audited(ctx, actor, "registrations.export", "csv") as detail:
        wanted = reports.search_filter(params)
        detail["filter"] = {k: wanted[k] for k in ("status", "workshop") if wanted[k]}
        if wanted["q"]:
            detail["text_search"] = True
        found = [r for r in reports.newest_first(ctx.stores.organiser.all_registrations())
                 if reports.matches(r, wanted)]
        detail["rows"] = len(found)
    return reports.to_csv(found)


def stats(ctx: Context, hours: int = 24) -> dict[str, Any]:
    """What the dashboard draws (:func:`chalicelib.domain.reports.dashboard`)."""
    return reports.dashboard(ctx.stores.organiser.all_registrations(), workshops(ctx), ctx.clock(), hours)
