"""What a participant can do with a running (or waiting) registration: extend, reset, end, leave."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from chalicelib.services import outbox
from chalicelib.services import registrations
from chalicelib.services import webhooks
from chalicelib.services.context import current
from chalicelib.domain.errors import Conflict, NotFound
from chalicelib.domain.lifecycle import extension_refusal
from chalicelib.domain.registration import ACTIVE, EXPIRING, FINISHED, WAITLISTED, is_registration_id
from chalicelib.store import lifecycle as store
from chalicelib.store.models import RegistrationModel
from chalicelib.store.seats import get_workshop

ACTIONS = ("extend", "reset", "end", "leave")


def _load(registration_id: str) -> RegistrationModel:
    current()
    if not is_registration_id(registration_id):
        raise NotFound("No registration has this id.")
    return store.get(registration_id)


def _active(reg: RegistrationModel, verb: str) -> None:
    if reg.status != ACTIVE:
        raise Conflict(f"Only a running workshop can be {verb}; this one is {reg.status}.")


def end(registration_id: str) -> dict[str, Any]:
    """End now: login is refused from this instant and the cleanup is ordered. Repeating is harmless."""
    context = current()
    reg = _load(registration_id)
    if reg.status not in (EXPIRING, FINISHED):
        _active(reg, "ended")
        retry = timedelta(minutes=context.settings.cleanup_retry_minutes)
        if store.begin_cleanup(reg, context.clock(), retry, EXPIRING):
            outbox.deliver(store.get(registration_id), context)
    return registrations.status(registration_id)


def extend(registration_id: str, minutes: int | None = None, organiser: bool = False) -> dict[str, Any]:
    """Push the end back by the workshop's extension (or ``minutes``). An organiser may extend
    past the participant's limit and while people wait; that extension does not use up the
    participant's own. Only a running workshop is ever extended."""
    context = current()
    reg = _load(registration_id)
    _active(reg, "extended")
    workshop = get_workshop(reg.workshop_id)
    if not organiser:
        waiting = RegistrationModel.waitlist_index.count(reg.workshop_id)
        refusal = extension_refusal(int(reg.extensions_used or 0), int(workshop.extension_max), waiting)
        if refusal:
            raise Conflict(refusal)
    extended = store.extend(reg, minutes or int(workshop.extension_minutes),
                            timedelta(minutes=context.settings.reminder_minutes), counted=not organiser)
    webhooks.emit("extended", extended, context)
    return registrations.status(registration_id)


def reset(registration_id: str, notebooks: bool = True) -> dict[str, Any]:
    """Fresh notebooks and a new password, emailed, without touching the clock; with
    ``notebooks=False`` only the password is renewed (the organiser resending credentials)."""
    context = current()
    reg = _load(registration_id)
    _active(reg, "reset")
    store.order_reset(reg, context.clock(), "all" if notebooks else "password")
    outbox.deliver(store.get(registration_id), context)
    return registrations.status(registration_id)


def leave(registration_id: str) -> dict[str, Any]:
    context = current()
    reg = _load(registration_id)
    if reg.status != WAITLISTED:
        raise Conflict("Only a place in the waitlist can be left.")
    store.leave_waitlist(reg, context.clock())
    return registrations.status(registration_id)


def perform(action: str, registration_id: str) -> dict[str, Any]:
    if action not in ACTIONS:
        raise NotFound(f"Unknown action {action!r}.")
    return globals()[action](registration_id)
