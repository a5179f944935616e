"""State changes of provisioning, each one conditional so retries and duplicates are harmless."""
from __future__ import annotations

from datetime import datetime, timedelta

from pynamodb.exceptions import PutError, TransactWriteError, UpdateError
from pynamodb.transactions import TransactWrite

from chalicelib.domain.errors import Conflict, Unavailable
from chalicelib.domain.lifecycle import DUE_ACTIVE, reminder_at
from chalicelib.domain.registration import personal_data_expiry, ACTIVE, FAILED, PENDING, PROVISIONING
from chalicelib.store.errors import translated
from chalicelib.store.models import NonceModel, RegistrationModel, StudentModel, WorkshopModel, connection
from chalicelib.store.outbox import queue_actions
from chalicelib.store.seats import return_seat

IN_FLIGHT = (PENDING, PROVISIONING)


@translated
def remember_nonce(nonce: str, expires: datetime) -> bool:
    """True the first time a nonce is seen, False for a replay."""
    try:
        NonceModel(nonce, expires=int(expires.timestamp())).save(condition=NonceModel.nonce.does_not_exist())
    except PutError as exc:
        if exc.cause_response_code == "ConditionalCheckFailedException":
            return False
        raise
    return True


@translated
def forget_nonce(nonce: str) -> None:
    NonceModel(nonce).delete()


@translated
def record_progress(registration_id: str, step: str) -> bool:
    """Show a provisioning step; False when the registration is no longer being provisioned."""
    try:
        RegistrationModel(registration_id).update(
            actions=[RegistrationModel.status.set(PROVISIONING), RegistrationModel.progress.set(step)],
            condition=RegistrationModel.status.is_in(*IN_FLIGHT),
        )
    except UpdateError:
        return False
    return True


@translated
def store_password_hash(student_id: str, registration_id: str, password_hash: str, hub_url: str) -> None:
    StudentModel(student_id).update(
        actions=[StudentModel.password_hash.set(password_hash), StudentModel.hub_url.set(hub_url)],
        condition=StudentModel.registration_id == registration_id,
    )


@translated
def activate(registration_id: str, now: datetime, reminder: timedelta) -> tuple[RegistrationModel, bool]:
    """Start the clock: registration and student become active together.

    Returns the registration and whether this call activated it (a repeated
    success callback finds it active and changes nothing).
    """
    reg = RegistrationModel.get(registration_id, consistent_read=True)
    if reg.status == ACTIVE:
        return reg, False
    if reg.status not in IN_FLIGHT:
        raise Conflict(f"registration {registration_id} is {reg.status}, not waiting for its environment")
    workshop = WorkshopModel.get(reg.workshop_id)
    ends = now + timedelta(minutes=int(workshop.duration_minutes))
    with TransactWrite(connection=connection()) as tx:
        tx.update(RegistrationModel(registration_id),
                  actions=[RegistrationModel.status.set(ACTIVE), RegistrationModel.started_at.set(now),
                           RegistrationModel.ends_at.set(ends), RegistrationModel.progress.set("ready"),
                           RegistrationModel.due_state.set(DUE_ACTIVE),
                           RegistrationModel.due_at.set(reminder_at(ends, now, reminder))],
                  condition=RegistrationModel.status.is_in(*IN_FLIGHT))
        tx.update(StudentModel(reg.student_id),
                  actions=[StudentModel.status.set(ACTIVE), StudentModel.expires_at.set(ends)],
                  condition=StudentModel.registration_id == registration_id)
    return RegistrationModel.get(registration_id, consistent_read=True), True


@translated
def release(registration_id: str, reason: str, now: datetime, outbox_entry: str) -> RegistrationModel | None:
    """Provisioning failed: free the seat and queue the apology, in one transaction.

    Returns the failed registration, or None when it was not in flight (already
    released, or active), so a repeated failure callback changes nothing.
    """
    reg = RegistrationModel.get(registration_id, consistent_read=True)
    if reg.status not in IN_FLIGHT or not reg.student_id:
        return None
    try:
        with TransactWrite(connection=connection()) as tx:
            tx.update(RegistrationModel(registration_id),
                      actions=[RegistrationModel.status.set(FAILED), RegistrationModel.failure.set(reason[:500]),
                               RegistrationModel.ttl.set(personal_data_expiry(now)),
                               RegistrationModel.progress.remove(), RegistrationModel.due_state.remove(),
                               RegistrationModel.due_at.remove(),
                               *queue_actions([outbox_entry], now)],
                      condition=RegistrationModel.status.is_in(*IN_FLIGHT))
            return_seat(tx, reg)
    except TransactWriteError as exc:
        if RegistrationModel.get(registration_id, consistent_read=True).status not in IN_FLIGHT:
            return None  # released meanwhile: a repeated callback
        raise Unavailable("the seat could not be released yet; retry") from exc
    return RegistrationModel.get(registration_id, consistent_read=True)
