"""What a participant can do with a held, running or waiting registration: confirm, extend, reset,
end, leave, ask for help; and, once it finished, answer the survey."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chalicelib.domain import survey as surveys
from chalicelib.domain.errors import Conflict, NotFound
from chalicelib.domain.languages import localized
from chalicelib.domain.lifecycle import END, EXTEND, LEAVE, RESET, SURVEY, extension_refusal
from chalicelib.domain.registration import ACTIVE, CANCELLED, EXPIRED, EXPIRING, FAILED, FINISHED, WAITLISTED
from chalicelib.domain.text import N_
from chalicelib.domain.values import Registration, Workshop
from chalicelib.services import links, live, registrations
from chalicelib.services.commit import commit
from chalicelib.services.context import Context

NEVER_RAN = (FAILED, CANCELLED, EXPIRED)  # registrations without a survey
ACTIONS = ("confirm", "extend", "reset", "end", "leave", "hand")


NOT_RUNNING = {"ended": N_("Only a running workshop can be ended; this one is %(status)s."),
               "extended": N_("Only a running workshop can be extended; this one is %(status)s."),
               "reset": N_("Only a running workshop can be reset; this one is %(status)s.")}


def _active(reg: Registration, verb: str) -> None:
    if reg.status != ACTIVE:
        raise Conflict(NOT_RUNNING[verb].filled(status=reg.status))


def end(ctx: Context, registration_id: str) -> dict[str, Any]:
    """End now: login is refused from this instant and the cleanup is ordered. Repeating is harmless."""
    reg = registrations.registration(ctx, registration_id)
    if reg.status not in (EXPIRING, FINISHED):
        _active(reg, "ended")
        commit(ctx, reg, END)
    return registrations.status(ctx, registration_id)


def extend(ctx: Context, registration_id: str, minutes: int | None = None, organiser: bool = False) -> dict[str, Any]:
    """Push the end back by the workshop's extension (or ``minutes``). An organiser may extend
    past the participant's limit and while people wait; that extension does not use up the
    participant's own. Only a running workshop is ever extended."""
    reg = registrations.registration(ctx, registration_id)
    _active(reg, "extended")
    workshop = ctx.stores.seats.get_workshop(reg.workshop_id)
    if not organiser:
        waiting = ctx.stores.registrations.waitlist_length(reg.workshop_id)
        refusal = extension_refusal(reg.extensions_used, workshop.extension_max, waiting)
        if refusal:
            raise Conflict(refusal)
    if commit(ctx, reg, EXTEND, minutes=minutes or workshop.extension_minutes, counted=not organiser) is None:
        raise Conflict(N_("The workshop changed meanwhile (ended or extended); please reload and try again."))
    return registrations.status(ctx, registration_id)


def reset(ctx: Context, registration_id: str, notebooks: bool = True) -> dict[str, Any]:
    """Fresh notebooks and a new password, emailed, without touching the clock; with
    ``notebooks=False`` only the password is renewed (the organiser resending credentials)."""
    reg = registrations.registration(ctx, registration_id)
    _active(reg, "reset")
    if commit(ctx, reg, RESET, scope="all" if notebooks else "password") is None:
        raise Conflict(N_("The workshop changed meanwhile (ended or reset); please reload and try again."))
    return registrations.status(ctx, registration_id)


def leave(ctx: Context, registration_id: str) -> dict[str, Any]:
    reg = registrations.registration(ctx, registration_id)
    if reg.status != WAITLISTED:
        raise Conflict(N_("Only a place in the waitlist can be left."))
    commit(ctx, reg, LEAVE)
    return registrations.status(ctx, registration_id)


def hand(ctx: Context, registration_id: str) -> dict[str, Any]:
    """Ask the facilitator for help (the live room shows the hand first)."""
    live.raise_hand(ctx, registration_id)
    return registrations.status(ctx, registration_id)


PERFORM: dict[str, Callable[[Context, str], dict[str, Any]]] = {
    "confirm": registrations.confirm, "extend": extend, "reset": reset, "end": end, "leave": leave, "hand": hand}


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
    reg = registrations.registration(ctx, registration_id)
    return _survey_view(ctx, reg, registrations.workshop_of(ctx, reg), language)


def answer_survey(ctx: Context, registration_id: str, form: Any) -> dict[str, Any]:
    """Keep the participant's answer (a new one replaces theirs); InvalidInput names each wrong field,
    Conflict when the workshop did not finish or the survey closed."""
    reg = registrations.registration(ctx, registration_id)
    workshop = registrations.workshop_of(ctx, reg)
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
