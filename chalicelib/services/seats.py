"""The two ways a seat comes back after provisioning began: a registration that fails (with an
apology) and one that finishes (with its thank-you and badges). Each is one event committed
(:mod:`chalicelib.services.commit`), which also lets the waitlist take the seat."""
from __future__ import annotations

from datetime import datetime

from chalicelib.domain.checks import earned
from chalicelib.domain.errors import InvalidInput, NotFound
from chalicelib.domain.lifecycle import FAIL, FINISH, RELEASE
from chalicelib.domain.registration import ACTIVE, FAILED
from chalicelib.domain.values import Registration
from chalicelib.observability import logger
from chalicelib.services.commit import commit
from chalicelib.services.context import Context


def fail(ctx: Context, reg: Registration, reason: str = "", *, compensated: bool = False,
         order_action: str = "CLEANUP") -> Registration | None:
    """The one failure sequence: the registration fails, the participant gets an apology, the
    ``failed`` webhook fires, and the seat comes back.

    ``compensated``: the backend already undid its work (a ``failed`` callback), so the seat is
    released at once; otherwise (stuck provisioning, a failure after activation, a purge) the
    environment is torn down first by a CLEANUP (or PURGE) order and the seat comes back with
    its report. None when the registration had already moved on (a repeat changes nothing).
    """
    if compensated and reg.status != ACTIVE:
        failed = commit(ctx, reg, RELEASE, reason=reason)
    else:
        failed = commit(ctx, reg, FAIL, reason=reason, cleanup=order_action)
    if failed is not None:
        logger.warning("registration failed", extra={"registration": reg.id, "workshop": reg.workshop_id,
                                                      "student": reg.student_id, "reason": reason[:200]})
    return failed


def _badge(ctx: Context, workshop_id: str, completion: float | None, checks_passed: int | None,
           badge_earned: bool | None = None) -> bool:
    """Whether a finished registration earned its workshop's badge (every check passed): only those
    count towards a level badge. A workshop no longer in the catalog counts as it was finished."""
    try:
        checks = ctx.stores.recent.get(workshop_id).checks
    except NotFound:
        return True
    return earned(badge_earned, checks, completion, checks_passed)


def _first_seen(ctx: Context, reg: Registration) -> datetime | None:
    """When the participant's notebook first reported (kept on the registration: the seat's state
    goes with the seat)."""
    if not reg.student_id or reg.first_seen_at is not None:
        return None
    try:
        live = ctx.stores.seats.get_student(reg.student_id).live or {}
    except NotFound:
        return None
    stamp = live.get("first_event") or live.get("last_event")
    if live.get("registration") != reg.id or not isinstance(stamp, str):
        return None
    try:
        return datetime.fromisoformat(stamp)
    except ValueError:
        return None


def finish(ctx: Context, registration_id: str, completion: float | None,
           checks_passed: int | None = None) -> Registration | None:
    """The environment is clean: the seat comes back, the registration closes with its completion
    and, for a workshop that ran, the thank-you (and a level badge reached now: workshops whose badge
    the address earned, this one included) is sent; then the
    waitlist takes the seat. None for a repeated report, or the purge of a student that had no
    registration."""
    if not (completion is None or (isinstance(completion, (int, float)) and 0 <= completion <= 100)):
        raise InvalidInput({"completion": "a percentage or null"})
    if not (checks_passed is None or (type(checks_passed) is int and 0 <= checks_passed <= 10_000)):
        raise InvalidInput({"checks_passed": "a number of checks (0 or more) or null"})
    store = ctx.stores.registrations
    try:
        before = store.get(registration_id)
    except NotFound:
        return None
    finished_before: int | None = None
    earned = before.status != FAILED and _badge(ctx, before.workshop_id, completion, checks_passed)
    if earned:
        done_before = {r.workshop_id for r in store.finished(before.email)
                       if _badge(ctx, r.workshop_id, r.completion, r.checks_passed, r.badge_earned)}
        if before.workshop_id not in done_before:  # a workshop taken again reaches no new level
            finished_before = len(done_before)
    done = commit(ctx, before, FINISH, completion=completion, checks_passed=checks_passed,
                  finished_before=finished_before, first_seen=_first_seen(ctx, before), earned=earned)
    if done is not None:
        logger.info("registration finished, seat freed",
                    extra={"registration": registration_id, "workshop": done.workshop_id, "student": done.student_id,
                           "completion": completion, "status": done.status})
    return done
