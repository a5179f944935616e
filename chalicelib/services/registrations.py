"""Registration use cases shared by the JSON API and the HTML pages."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from chalicelib import observability
from chalicelib.services import outbox
from chalicelib.services import webhooks
from chalicelib.services.context import current
from chalicelib.domain.errors import InvalidInput, NotFound
from chalicelib.domain.registration import (
    WAITLISTED, is_registration_id, is_workshop_id, new_registration_id, validate_applicant,
)
from chalicelib.store import seats
from chalicelib.store.models import RegistrationModel, WorkshopModel

SEATED_OUTBOX = ["welcome", "order:CREATE"]
WAITLISTED_OUTBOX = ["waitlisted"]


def workshop_view(w: WorkshopModel) -> dict[str, Any]:
    return {
        "id": w.id,
        "title": w.title,
        "description": w.description,
        "category": w.category,
        "duration_minutes": int(w.duration_minutes),
        "seats_total": int(w.seats_total),
        "seats_free": max(0, int(w.seats_free)),
        "waitlist_open": int(w.seats_free) <= 0,
        "active": bool(w.active),
        "beta": bool(w.beta),
        "presenter": w.presenter or {},
        "location": w.location,
        "replay_url": w.replay_url,
        "badge": w.badge,
        "priority": int(w.priority),
    }


def catalog(include_inactive: bool = False) -> list[dict[str, Any]]:
    current()
    return [workshop_view(w) for w in seats.list_workshops() if include_inactive or w.active]


def _open_workshop(workshop_id: str) -> WorkshopModel:
    current()
    if not is_workshop_id(workshop_id):
        raise NotFound("There is no such workshop.")
    return seats.open_workshop(workshop_id)


def workshop(workshop_id: str) -> dict[str, Any]:
    return workshop_view(_open_workshop(workshop_id))


def _actions(reg: RegistrationModel, workshop: WorkshopModel | None) -> list[str]:
    if reg.status == "waitlisted":
        return ["leave"]
    if reg.status != "active":
        return []
    can_extend = workshop is not None and int(reg.extensions_used or 0) < int(workshop.extension_max)
    return (["extend"] if can_extend else []) + ["reset", "end"]


def registration_view(reg: RegistrationModel, workshop: WorkshopModel | None = None) -> dict[str, Any]:
    def iso(value):
        return value.isoformat() if value else None

    workshop_title = workshop.title if workshop else None
    return {
        "id": reg.id,
        "status": reg.status,
        "workshop": {"id": reg.workshop_id, "title": workshop_title},
        "student": reg.student_id,
        "position": seats.waitlist_position(reg),
        "created_at": iso(reg.created_at),
        "started_at": iso(reg.started_at),
        "ends_at": iso(reg.ends_at),
        "finished_at": iso(reg.finished_at),
        "completion": reg.completion,
        "progress": reg.progress,
        "extensions_used": int(reg.extensions_used or 0),
        "extension_minutes": int(workshop.extension_minutes) if workshop else None,
        "actions": _actions(reg, workshop),
        "status_url": outbox.status_url(current(), reg.id),
    }


def register(data: Any, workshop_id: Any = None) -> dict[str, Any]:
    """Validate, claim a seat (or a waitlist place) atomically, then send what is due."""
    context = current()
    if workshop_id is None:
        workshop_id = data.get("workshop") if isinstance(data, dict) else None
        if workshop_id is None or (isinstance(workshop_id, str) and not workshop_id.strip()):
            raise InvalidInput({"workshop": "Choose a workshop."})
        if not isinstance(workshop_id, str):
            raise InvalidInput({"workshop": "The workshop must be given by its id, as text."})
    applicant = validate_applicant(data, context.settings.deny_domains)
    reg, found = seats.register(applicant, workshop_id, new_registration_id(), context.clock(),
                                SEATED_OUTBOX, WAITLISTED_OUTBOX, _open_workshop(workshop_id),
                                timedelta(minutes=context.settings.stuck_minutes))
    outbox.deliver(reg, context, found, leased=True)  # created with the lease held
    webhooks.emit("registered", reg, context)
    observability.count("Waitlisted" if reg.status == WAITLISTED else "Registrations")
    observability.gauge("SeatsFree", int(found.seats_free), workshop=found.id)
    return registration_view(reg, found)


def status(registration_id: str) -> dict[str, Any]:
    current()
    if not is_registration_id(registration_id):
        raise NotFound("No registration has this id.")
    reg = seats.get_registration(registration_id)
    try:
        found = seats.get_workshop(reg.workshop_id)
    except NotFound:
        found = None
    return registration_view(reg, found)


def workshop_badge(workshop_id: str) -> tuple[bytes, str] | None:
    """The badge file of a workshop (bytes, suffix), read from the content folder."""
    current()
    if not is_workshop_id(workshop_id):
        return None
    found = seats.get_workshop(workshop_id)
    if not found.badge or "://" in found.badge:
        return None
    folder = Path(current().settings.workshops_dir) / found.id
    path = (folder / found.badge).resolve()
    if folder.resolve() not in path.parents or path.suffix.lower() not in (".svg", ".png") or not path.is_file():
        return None
    return path.read_bytes(), path.suffix.lower()
