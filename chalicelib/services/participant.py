"""A registration once claimed, as its participant sees it and acts on it: its status, confirming a
hold (or the hold released when nobody did), extending, resetting, ending, leaving, asking for help;
and, once it finished, the survey."""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from chalicelib import observability
from chalicelib.domain import survey as surveys
from chalicelib.domain.errors import Conflict, HoldExpired, NotFound
from chalicelib.domain.languages import localized
from chalicelib.domain.lifecycle import (
    CONFIRM,
    DUE_SCHEDULED,
    END,
    EXTEND,
    HOLD_EXPIRED,
    LEAVE,
    RESET,
    SURVEY,
    extension_refusal,
)
from chalicelib.domain.registration import (
    ACTIVE,
    CANCELLED,
    EXPIRED,
    EXPIRING,
    FAILED,
    FINISHED,
    UNCONFIRMED,
    WAITLISTED,
    is_registration_id,
)
from chalicelib.domain.text import N_
from chalicelib.domain.values import Registration, Workshop
from chalicelib.observability import logger
from chalicelib.services import links, live
from chalicelib.services.commit import commit
from chalicelib.services.context import Context

NEVER_RAN = (FAILED, CANCELLED, EXPIRED)  # registrations without a survey


def registration(ctx: Context, registration_id: str) -> Registration:
    """The registration of a well-formed id; NotFound otherwise."""
    if not is_registration_id(registration_id):
        raise NotFound(N_("No registration has this id."))
    return ctx.stores.registrations.get(registration_id)


def workshop_of(ctx: Context, reg: Registration) -> Workshop | None:
    try:
        return ctx.stores.recent.get(reg.workshop_id)
    except NotFound:
        return None


def _actions(reg: Registration, workshop: Workshop | None) -> list[str]:
    if reg.status == WAITLISTED:
        return ["leave"]
    if reg.status != ACTIVE:
        return []
    can_extend = workshop is not None and reg.extensions_used < workshop.extension_max
    return (["extend"] if can_extend else []) + ["reset", "hand", "end"]


def registration_view(ctx: Context, reg: Registration, workshop: Workshop | None = None,
                      position: int | None = None, language: str | None = None) -> dict[str, Any]:
    """A registration as its participant sees it; the workshop's title in ``language`` (by default
    the registration's)."""
    def iso(value):
        return value.isoformat() if value else None

    title = localized(workshop, language or reg.language).title if workshop else None
    return {
        "id": reg.id,
        "status": reg.status,
        "workshop": {"id": reg.workshop_id, "title": title},
        "student": reg.student_id,
        "position": position if position is not None else ctx.stores.registrations.waitlist_position(reg),
        "created_at": iso(reg.created_at),
        "started_at": iso(reg.started_at),
        "ends_at": iso(reg.ends_at),
        "finished_at": iso(reg.finished_at),
        "confirm_by": iso(reg.confirm_by) if reg.status == UNCONFIRMED else None,
        "completion": reg.completion,
        "progress": reg.progress,
        "scheduled_start": iso(workshop.starts_at) if workshop is not None and reg.due_state == DUE_SCHEDULED else None,
        "extensions_used": reg.extensions_used,
        "extension_minutes": workshop.extension_minutes if workshop else None,
        "actions": _actions(reg, workshop),
        "message": workshop.message if workshop is not None and reg.status == ACTIVE else None,
        "status_url": links.status_url(ctx, reg.id),
        "survey": _survey_link(ctx, reg),
        "verifiable_badge": links.verifiable_badge(ctx, reg, workshop),
    }


def _survey_link(ctx: Context, reg: Registration) -> dict[str, Any] | None:
    """Where a finished participant answers the survey, while it is open."""
    closes = surveys.closes(reg.status, reg.finished_at)
    if closes is None or ctx.clock() >= closes:
        return None
    return {"url": links.page_url(ctx, reg.id, "survey"), "answered": reg.survey is not None,
            "open_until": closes.isoformat()}


def status(ctx: Context, registration_id: str, language: str | None = None) -> dict[str, Any]:
    reg = registration(ctx, registration_id)
    return registration_view(ctx, reg, workshop_of(ctx, reg), language=language)


def _scheduled_start(ctx: Context, workshop_id: str) -> datetime | None:
    try:
        return ctx.stores.recent.get(workshop_id).starts_at
    except NotFound:
        return None


def confirm(ctx: Context, registration_id: str) -> dict[str, Any]:
    """The address confirmed its hold (the link of the confirmation email, then a POST): the hold
    becomes a registration like one that needs no confirmation, owing what that one owes.
    Repeating it is harmless; after the hold's time :class:`HoldExpired` (and the hold is released
    now if the time checks have not yet done it)."""
    reg = registration(ctx, registration_id)
    if reg.status == UNCONFIRMED:
        # a place confirmed takes a seat freed meanwhile; a seat of a scheduled session waits for it
        confirmed = commit(ctx, reg, CONFIRM, scheduled=_scheduled_start(ctx, reg.workshop_id))
        if confirmed is not None:
            observability.count("Confirmed")
            logger.info("registration confirmed", extra={"registration": reg.id, "workshop": reg.workshop_id,
                                                         "student": reg.student_id, "status": confirmed.status})
            reg = confirmed if confirmed.status != WAITLISTED else registration(ctx, registration_id)  # promoted?
        else:  # past its time (released now if the time checks have not yet done it), or confirmed meanwhile
            release_hold(ctx, registration(ctx, registration_id))
            reg = registration(ctx, registration_id)
    if reg.status == EXPIRED:
        raise HoldExpired(reg.workshop_id)
    return registration_view(ctx, reg, workshop_of(ctx, reg))


def confirmation(ctx: Context, registration_id: str, language: str | None = None) -> dict[str, Any]:
    """What the confirmation page shows, changing nothing (mail scanners open links): ``state``
    ``hold`` (confirm by ``hold.confirm_by``), ``expired`` or ``confirmed``, and the workshop."""
    reg = registration(ctx, registration_id)
    found = workshop_of(ctx, reg)
    view = registration_view(ctx, reg, found, language=language)
    expired = reg.status == EXPIRED or (reg.status == UNCONFIRMED and reg.confirm_by is not None
                                        and reg.confirm_by <= ctx.clock())
    state = "expired" if expired else "hold" if reg.status == UNCONFIRMED else "confirmed"
    return {"state": state, "hold": view, "workshop": {"id": reg.workshop_id, "title": view["workshop"]["title"] or ""}}


def release_hold(ctx: Context, reg: Registration) -> bool:
    """Give back what an unconfirmed hold past its time held (its seat, which the waitlist takes; or
    its waitlist place). False when it is not one (confirmed, released, or not yet due)."""
    if commit(ctx, reg, HOLD_EXPIRED) is None:
        return False
    observability.count("HoldsExpired")
    logger.info("unconfirmed hold released", extra={"registration": reg.id, "workshop": reg.workshop_id,
                                                    "student": reg.student_id})
    return True


NOT_RUNNING = {"ended": N_("Only a running workshop can be ended; this one is %(status)s."),
               "extended": N_("Only a running workshop can be extended; this one is %(status)s."),
               "reset": N_("Only a running workshop can be reset; this one is %(status)s.")}


def _active(reg: Registration, verb: str) -> None:
    if reg.status != ACTIVE:
        raise Conflict(NOT_RUNNING[verb].filled(status=reg.status))


def end(ctx: Context, registration_id: str) -> dict[str, Any]:
    """End now: login is refused from this instant and the cleanup is ordered. Repeating is harmless."""
    reg = registration(ctx, registration_id)
    if reg.status not in (EXPIRING, FINISHED):
        _active(reg, "ended")
        commit(ctx, reg, END)
    return status(ctx, registration_id)


def extend(ctx: Context, registration_id: str, minutes: int | None = None, organiser: bool = False) -> dict[str, Any]:
    """Push the end back by the workshop's extension (or ``minutes``). An organiser may extend
    past the participant's limit and while people wait; that extension does not use up the
    participant's own. Only a running workshop is ever extended."""
    reg = registration(ctx, registration_id)
    _active(reg, "extended")
    workshop = ctx.stores.seats.get_workshop(reg.workshop_id)
    if not organiser:
        waiting = ctx.stores.registrations.waitlist_length(reg.workshop_id)
        refusal = extension_refusal(reg.extensions_used, workshop.extension_max, waiting)
        if refusal:
            raise Conflict(refusal)
    if commit(ctx, reg, EXTEND, minutes=minutes or workshop.extension_minutes, counted=not organiser) is None:
        raise Conflict(N_("The workshop changed meanwhile (ended or extended); please reload and try again."))
    return status(ctx, registration_id)


def reset(ctx: Context, registration_id: str, notebooks: bool = True) -> dict[str, Any]:
    """Fresh notebooks and a new password, emailed, without touching the clock; with
    ``notebooks=False`` only the password is renewed (the organiser resending credentials)."""
    reg = registration(ctx, registration_id)
    _active(reg, "reset")
    if commit(ctx, reg, RESET, scope="all" if notebooks else "password") is None:
        raise Conflict(N_("The workshop changed meanwhile (ended or reset); please reload and try again."))
    return status(ctx, registration_id)


def leave(ctx: Context, registration_id: str) -> dict[str, Any]:
    reg = registration(ctx, registration_id)
    if reg.status != WAITLISTED:
        raise Conflict(N_("Only a place in the waitlist can be left."))
    commit(ctx, reg, LEAVE)
    return status(ctx, registration_id)


def hand(ctx: Context, registration_id: str) -> dict[str, Any]:
    """Ask the facilitator for help (the live room shows the hand first)."""
    live.raise_hand(ctx, registration_id)
    return status(ctx, registration_id)


PERFORM: dict[str, Callable[[Context, str], dict[str, Any]]] = {
    "confirm": confirm, "extend": extend, "reset": reset, "end": end, "leave": leave, "hand": hand}


def perform(ctx: Context, action: str, registration_id: str) -> dict[str, Any]:
    if action not in PERFORM:
        raise NotFound(N_("Unknown action %(action)s.", action=repr(action)))
    return PERFORM[action](ctx, registration_id)


def _survey_view(ctx: Context, reg: Registration, workshop: Workshop | None,
                 language: str | None = None) -> dict[str, Any]:
    closes = surveys.closes(reg.status, reg.finished_at)
    return {"title": localized(workshop, language or reg.language).title if workshop else reg.workshop_id,
            "questions": list(workshop.survey or []) if workshop else [], "answer": dict(reg.survey or {}),
            "answered_at": reg.survey_at.isoformat() if reg.survey_at else None,
            "open_until": closes.isoformat() if closes else None,
            "open": closes is not None and ctx.clock() < closes, "status": reg.status,
            "status_url": links.status_url(ctx, reg.id)}


def survey(ctx: Context, registration_id: str, language: str | None = None) -> dict[str, Any]:
    """The survey page: the questions, the answer given so far, whether it may still be given; the
    workshop's title in ``language`` (by default the registration's)."""
    reg = registration(ctx, registration_id)
    return _survey_view(ctx, reg, workshop_of(ctx, reg), language)


def answer_survey(ctx: Context, registration_id: str, form: Any) -> dict[str, Any]:
    """Keep the participant's answer (a new one replaces theirs); InvalidInput names each wrong field,
    Conflict when the workshop did not finish or the survey closed."""
    reg = registration(ctx, registration_id)
    workshop = workshop_of(ctx, reg)
    view = _survey_view(ctx, reg, workshop)
    if not view["open"]:
        if view["open_until"] is not None:
            raise Conflict(N_("The survey for this workshop has closed."))
        if reg.status in NEVER_RAN:
            raise Conflict(N_("This registration did not run a workshop: it has no survey."))
        raise Conflict(N_("The survey opens when your workshop has finished, and closes %(days)s days after.",
                          days=surveys.OPEN_DAYS))
    answer = surveys.parse(form if isinstance(form, dict) else {}, view["questions"])
    if commit(ctx, reg, SURVEY, answer=answer) is None:
        raise Conflict(N_("The survey for this workshop has closed."))
    return survey(ctx, registration_id)
