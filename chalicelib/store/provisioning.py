"""State changes of provisioning, each one conditional so retries and duplicates are harmless."""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from pynamodb.exceptions import PutError, TransactWriteError, UpdateError
from pynamodb.expressions.update import Action
from pynamodb.transactions import TransactWrite

from chalicelib.domain.errors import Conflict, Unavailable
from chalicelib.domain.lifecycle import DUE_ACTIVE, DUE_PROVISIONING, reminder_at
from chalicelib.domain.outbox import Entry, parse
from chalicelib.domain.registration import ACTIVE, FAILED, PENDING, PROVISIONING, personal_data_expiry
from chalicelib.domain.values import Registration, Student
from chalicelib.store import values
from chalicelib.store.errors import translated
from chalicelib.store.models import NonceModel, RegistrationModel, StudentModel
from chalicelib.store.outbox import PENDING as OUTBOX_PENDING
from chalicelib.store.outbox import queue_actions
from chalicelib.store.seats import load_student, return_seat
from chalicelib.store.tables import Tables

IN_FLIGHT = (PENDING, PROVISIONING)
REDRIVE_ATTEMPTS = 5


def _is(stored: str, entry: Entry) -> bool:
    """Whether a stored outbox string is ``entry`` (in any spelling)."""
    try:
        return stored == entry.format() or parse(stored) == entry
    except ValueError:
        return False


class Provisioning:
    def __init__(self, tables: Tables):
        self.t = tables

    def _read(self, registration_id: str) -> Registration:
        return values.registration(self.t.customers.get(registration_id, consistent_read=True))

    @translated
    def remember_nonce(self, nonce: str, expires: datetime) -> bool:
        """True the first time a nonce is seen, False for a replay."""
        try:
            self.t.nonces(nonce, expires=int(expires.timestamp())).save(condition=NonceModel.nonce.does_not_exist())
        except PutError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True

    @translated
    def student(self, student_id: str) -> Student:
        """NotFound for an unknown id."""
        return load_student(self.t, student_id)

    @translated
    def record_progress(self, registration_id: str, step: str) -> bool:
        """Show a provisioning step; False when the registration is no longer being provisioned."""
        try:
            self.t.customers(registration_id).update(
                actions=[RegistrationModel.status.set(PROVISIONING), RegistrationModel.progress.set(step)],
                condition=RegistrationModel.status.is_in(*IN_FLIGHT),
            )
        except UpdateError:
            return False
        return True

    @translated
    def redrive(self, registration_id: str, now: datetime, deadline: datetime,
                entry: Entry | None = None) -> Registration | None:
        """Provisioning whose workflow was lost (a restarted local stack): give it until
        ``deadline`` before the time checks call it stuck and, with ``entry``, owe its order again
        (unless the outbox holds it already), due now. One write, conditional on the registration
        as read (still in flight, same deadline, same outbox), read again after a concurrent
        change. None when it is no longer in flight."""
        for _ in range(REDRIVE_ATTEMPTS):
            try:
                item = self.t.customers.get(registration_id, consistent_read=True)
            except RegistrationModel.DoesNotExist:
                return None
            if item.status not in IN_FLIGHT or item.due_state != DUE_PROVISIONING:
                return None
            condition = ((RegistrationModel.status == item.status) & (RegistrationModel.due_state == DUE_PROVISIONING)
                         & (RegistrationModel.due_at == item.due_at if item.due_at is not None
                            else RegistrationModel.due_at.does_not_exist())
                         & (RegistrationModel.outbox == item.outbox if item.outbox is not None
                            else RegistrationModel.outbox.does_not_exist()))
            actions: list[Action] = [RegistrationModel.due_at.set(deadline)]
            if entry is not None:
                stored: list[Any] = list(item.outbox or [])  # the stored strings
                if not any(_is(str(text), entry) for text in stored):
                    stored.append(entry.format())
                actions += [RegistrationModel.outbox.set(stored), RegistrationModel.outbox_state.set(OUTBOX_PENDING),
                            RegistrationModel.outbox_due_at.set(now)]
            try:
                item.update(actions=actions, condition=condition)
            except UpdateError:
                continue  # changed since it was read: read again
            return values.registration(item)
        raise Unavailable(f"registration {registration_id} keeps changing; its recovery is left to a later run")

    @translated
    def store_password_hash(self, student_id: str, registration_id: str, password_hash: str, hub_url: str) -> None:
        self.t.students(student_id).update(
            actions=[StudentModel.password_hash.set(password_hash), StudentModel.hub_url.set(hub_url)],
            condition=StudentModel.registration_id == registration_id,
        )

    @translated
    def activate(self, registration_id: str, now: datetime, reminder: timedelta,
                 entries: Sequence[Entry] = ()) -> tuple[Registration, bool]:
        """Start the clock: registration and student become active together.

        Returns the registration and whether this call activated it (a repeated
        success callback finds it active and changes nothing). ``entries`` are queued in
        the activating transaction only.
        """
        reg = self._read(registration_id)
        if reg.status == ACTIVE:
            return reg, False
        if reg.status not in IN_FLIGHT:
            raise Conflict(f"registration {registration_id} is {reg.status}, not waiting for its environment")
        workshop = self.t.workshops.get(reg.workshop_id)
        ends = now + timedelta(minutes=int(workshop.duration_minutes))
        actions: list[Action] = [RegistrationModel.status.set(ACTIVE), RegistrationModel.started_at.set(now),
                   RegistrationModel.ends_at.set(ends), RegistrationModel.progress.set("ready"),
                   RegistrationModel.due_state.set(DUE_ACTIVE),
                   RegistrationModel.due_at.set(reminder_at(ends, now, reminder))]
        if entries:
            actions += queue_actions(entries, now)
        with TransactWrite(connection=self.t.connection) as tx:
            tx.update(self.t.customers(registration_id), actions=actions,
                      condition=RegistrationModel.status.is_in(*IN_FLIGHT))
            tx.update(self.t.students(reg.student_id),
                      actions=[StudentModel.status.set(ACTIVE), StudentModel.expires_at.set(ends)],
                      condition=StudentModel.registration_id == registration_id)
        return self._read(registration_id), True

    @translated
    def release(self, registration_id: str, reason: str, now: datetime,
                entries: Sequence[Entry]) -> Registration | None:
        """Provisioning failed: free the seat and queue the apology (``entries``), in one transaction.

        Returns the failed registration, or None when it was not in flight (already
        released, or active), so a repeated failure callback changes nothing.
        """
        reg = self._read(registration_id)
        if reg.status not in IN_FLIGHT or not reg.student_id:
            return None
        try:
            with TransactWrite(connection=self.t.connection) as tx:
                tx.update(self.t.customers(registration_id),
                          actions=[RegistrationModel.status.set(FAILED), RegistrationModel.failure.set(reason[:500]),
                                   RegistrationModel.ttl.set(personal_data_expiry(now)),
                                   RegistrationModel.progress.remove(), RegistrationModel.due_state.remove(),
                                   RegistrationModel.due_at.remove(),
                                   *queue_actions(entries, now)],
                          condition=RegistrationModel.status.is_in(*IN_FLIGHT))
                return_seat(tx, self.t, reg)
        except TransactWriteError as exc:
            if self._read(registration_id).status not in IN_FLIGHT:
                return None  # released meanwhile: a repeated callback
            raise Unavailable("the seat could not be released yet; retry") from exc
        return self._read(registration_id)
