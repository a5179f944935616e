"""Run-phase state changes. Each is conditional on what the caller saw, so two overlapping
time checks, a retried tick or a double click change things once."""
from __future__ import annotations

from datetime import datetime, timedelta

from pynamodb.exceptions import TransactWriteError, UpdateError
from pynamodb.transactions import TransactWrite

from chalicelib.domain.errors import Conflict, Unavailable
from chalicelib.domain.lifecycle import DUE_CLEANING, reminder_at
from chalicelib.domain.registration import personal_data_expiry, ACTIVE, CANCELLED, FAILED, FINISHED, PENDING, PROVISIONING, WAITLISTED
from chalicelib.store.errors import translated
from chalicelib.store.models import EmailClaimModel, RegistrationModel, StudentModel, WorkshopModel, connection
from chalicelib.store.outbox import queue_actions
from chalicelib.store.seats import get_registration, return_seat

@translated
def due(state: str, now: datetime, limit: int = 100) -> list[str]:
    """Ids of registrations in ``state`` whose time has come: an index query, never a scan."""
    return [key.id for key in RegistrationModel.due_index.query(state, RegistrationModel.due_at <= now, limit=limit)]


get = get_registration  # raises NotFound for an unknown id


@translated
def mark_reminded(reg: RegistrationModel, now: datetime) -> bool:
    """Queue the reminder once; the next due time becomes the end."""
    try:
        reg.update(actions=[RegistrationModel.reminder_sent.set(True), RegistrationModel.due_at.set(reg.ends_at),
                            *queue_actions(["reminder"], now)],
                   condition=(RegistrationModel.status == ACTIVE) & (RegistrationModel.due_at == reg.due_at)
                   & (RegistrationModel.reminder_sent == False))  # noqa: E712
    except UpdateError:
        return False
    return True


@translated
def begin_cleanup(reg: RegistrationModel, now: datetime, retry: timedelta, status: str,
                  extra_outbox: tuple[str, ...] = (), order: str = "CLEANUP") -> bool:
    """Stop the session now (login refused from this instant) and order its cleanup.

    ``status`` is ``expiring`` for an end (time up, or the participant's choice) and
    ``failed`` for provisioning stuck past its deadline or purged; ``order`` is CLEANUP, or
    PURGE when nothing is to be measured.
    """
    try:
        with TransactWrite(connection=connection()) as tx:
            tx.update(RegistrationModel(reg.id), actions=[
                RegistrationModel.status.set(status), RegistrationModel.due_state.set(DUE_CLEANING),
                RegistrationModel.due_at.set(now + retry), RegistrationModel.progress.remove(),
                *queue_actions([f"order:{order}", *extra_outbox], now)],
                condition=RegistrationModel.status.is_in(PENDING, PROVISIONING, ACTIVE)
                & (RegistrationModel.status == reg.status)
                & (RegistrationModel.ends_at == reg.ends_at if reg.ends_at else RegistrationModel.ends_at.does_not_exist()))
            tx.update(StudentModel(reg.student_id), actions=[StudentModel.expires_at.set(now),
                                                             StudentModel.status.set("cleaning")],
                      condition=StudentModel.registration_id == reg.id)
    except TransactWriteError:
        return False
    return True


@translated
def retry_cleanup(reg: RegistrationModel, now: datetime, retry: timedelta) -> bool:
    attempt = int(reg.cleanup_attempts or 0) + 1
    try:
        reg.update(actions=[RegistrationModel.cleanup_attempts.set(attempt),
                            RegistrationModel.due_at.set(now + retry), *queue_actions([f"order:CLEANUP:{attempt}"], now)],
                   condition=(RegistrationModel.due_state == DUE_CLEANING) & (RegistrationModel.due_at == reg.due_at))
    except UpdateError:
        return False
    return True


@translated
def finish(registration_id: str, completion: float | None, now: datetime,
           thanks: list[str]) -> RegistrationModel | None:
    """The environment is clean: free the student and the seat, close the registration.

    One transaction; ``thanks`` is queued for a workshop that ran (not for a failed one).
    None when it was already finished (a repeated callback).
    """
    try:
        reg = RegistrationModel.get(registration_id, consistent_read=True)
    except RegistrationModel.DoesNotExist:
        return None  # a purge of a student that had no registration
    if reg.due_state != DUE_CLEANING:
        return None
    final = FAILED if reg.status == FAILED else FINISHED
    outbox = thanks if final == FINISHED else []
    actions = [RegistrationModel.status.set(final), RegistrationModel.finished_at.set(now),
               RegistrationModel.ttl.set(personal_data_expiry(now)),
               RegistrationModel.due_state.remove(), RegistrationModel.due_at.remove(), *queue_actions(outbox, now)]
    if completion is not None:
        actions.append(RegistrationModel.completion.set(completion))
    try:
        with TransactWrite(connection=connection()) as tx:
            tx.update(RegistrationModel(registration_id), actions=actions,
                      condition=RegistrationModel.due_state == DUE_CLEANING)
            return_seat(tx, reg)
    except TransactWriteError as exc:
        if RegistrationModel.get(registration_id, consistent_read=True).due_state != DUE_CLEANING:
            return None  # finished meanwhile: a repeated callback
        raise Unavailable("the seat could not be freed yet; retry") from exc
    return RegistrationModel.get(registration_id, consistent_read=True)


@translated
def extend(reg: RegistrationModel, minutes: int, reminder: timedelta, counted: bool = True) -> RegistrationModel:
    """Push the end back; the caller checked the rules, the conditions re-check the state.
    ``counted``: the extension uses up one of the participant's own."""
    ends = reg.ends_at + timedelta(minutes=minutes)
    try:
        with TransactWrite(connection=connection()) as tx:
            tx.update(RegistrationModel(reg.id), actions=[
                RegistrationModel.ends_at.set(ends), RegistrationModel.extensions_used.add(1 if counted else 0),
                RegistrationModel.reminder_sent.set(False),
                RegistrationModel.due_at.set(reminder_at(ends, reg.started_at, reminder))],
                condition=(RegistrationModel.status == ACTIVE) & (RegistrationModel.ends_at == reg.ends_at))
            tx.update(StudentModel(reg.student_id), actions=[StudentModel.expires_at.set(ends)],
                      condition=StudentModel.registration_id == reg.id)
    except TransactWriteError as exc:
        raise Conflict("The workshop changed meanwhile (ended or extended); please reload and try again.") from exc
    return RegistrationModel.get(reg.id, consistent_read=True)


@translated
def queue(reg: RegistrationModel, entries: list[str], now: datetime) -> None:
    """Add outbox entries to a registration."""
    reg.update(actions=queue_actions(entries, now))


@translated
def order_reset(reg: RegistrationModel, now: datetime, scope: str = "all") -> None:
    """Order fresh notebooks (scope ``all``) or a new password alone (``password``): the attempt
    number names the workflow, so two clicks make two distinct resets and never the same one
    twice; a session that ended meanwhile gets none."""
    used = int(reg.resets_used or 0)
    unchanged = RegistrationModel.resets_used == used
    if not used:
        unchanged = unchanged | RegistrationModel.resets_used.does_not_exist()
    attempt = used + 1
    try:
        reg.update(actions=[RegistrationModel.resets_used.set(attempt),
                            *queue_actions([f"order:RESET:{attempt}" + ("" if scope == "all" else f":{scope}")],
                                           now)],
                   condition=(RegistrationModel.status == ACTIVE) & unchanged)
    except UpdateError as exc:
        raise Conflict("The workshop changed meanwhile (ended or reset); please reload and try again.") from exc


@translated
def leave_waitlist(reg: RegistrationModel, now: datetime) -> bool:
    try:
        with TransactWrite(connection=connection()) as tx:
            tx.update(RegistrationModel(reg.id), actions=[
                RegistrationModel.status.set(CANCELLED), RegistrationModel.finished_at.set(now),
                RegistrationModel.ttl.set(personal_data_expiry(now)),
                RegistrationModel.waitlist_workshop.remove(), RegistrationModel.waitlist_seq.remove()],
                condition=RegistrationModel.status == WAITLISTED)
            tx.delete(EmailClaimModel(reg.email.lower()), condition=EmailClaimModel.registration_id == reg.id)
    except TransactWriteError:
        return False
    return True


@translated
def finished_workshops(email: str) -> int:
    """Distinct workshops this address has finished."""
    return len({r.workshop_id for r in RegistrationModel.email_index.query(email) if r.status == FINISHED})


@translated
def free_orphan(student_id: str) -> bool:
    """Free a student that holds no registration but is not free (a lost state): seat back."""
    student = StudentModel.get(student_id, consistent_read=True)
    if student.status == "free" or student.registration_id:
        return False
    try:
        with TransactWrite(connection=connection()) as tx:
            tx.update(StudentModel(student_id),
                      actions=[StudentModel.status.set("free"), StudentModel.free_workshop.set(student.workshop_id),
                               StudentModel.password_hash.remove(), StudentModel.expires_at.remove(),
                               StudentModel.warm.remove(), StudentModel.warming_since.remove()],
                      condition=(StudentModel.status == student.status) & StudentModel.registration_id.does_not_exist())
            tx.update(WorkshopModel(student.workshop_id), actions=[WorkshopModel.seats_free.add(1)])
    except TransactWriteError:
        return False
    return True
