"""Run-phase state changes. Each is conditional on what the caller saw, so two overlapping
time checks, a retried tick or a double click change things once."""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from pynamodb.exceptions import TransactWriteError, UpdateError
from pynamodb.expressions.update import Action
from pynamodb.transactions import TransactWrite

from chalicelib.domain.errors import Conflict, Unavailable
from chalicelib.domain.lifecycle import DUE_CLEANING, reminder_at
from chalicelib.domain.outbox import Entry
from chalicelib.domain.outbox import order as order_entry
from chalicelib.domain.registration import (
    ACTIVE,
    CANCELLED,
    FAILED,
    FINISHED,
    PENDING,
    PROVISIONING,
    WAITLISTED,
    personal_data_expiry,
)
from chalicelib.domain.values import Registration
from chalicelib.store import values
from chalicelib.store.errors import translated
from chalicelib.store.models import EmailClaimModel, RegistrationModel, StudentModel, WorkshopModel
from chalicelib.store.outbox import queue_actions
from chalicelib.store.seats import load_registration, return_seat
from chalicelib.store.tables import Tables


class Lifecycle:
    def __init__(self, tables: Tables):
        self.t = tables

    def _read(self, registration_id: str) -> Registration:
        return values.registration(self.t.customers.get(registration_id, consistent_read=True))

    @translated
    def due(self, state: str, now: datetime, limit: int = 100) -> list[str]:
        """Ids of registrations in ``state`` whose time has come: an index query, never a scan."""
        return [key.id for key in self.t.customers.due_index.query(state, RegistrationModel.due_at <= now,
                                                                   limit=limit)]

    @translated
    def in_phase(self, state: str) -> list[str]:
        """Ids of every registration in ``state`` of the ``due`` index, whatever its due time (every
        page): what a restarted local stack must pick up again (``services/recovery``)."""
        return [key.id for key in self.t.customers.due_index.query(state)]

    @translated
    def get(self, registration_id: str) -> Registration:
        """Raises NotFound for an unknown id."""
        return values.registration(load_registration(self.t, registration_id))

    @translated
    def mark_reminded(self, reg: Registration, now: datetime, entries: Sequence[Entry]) -> bool:
        """Queue the reminder (``entries``) once; the next due time becomes the end."""
        if reg.ends_at is None:
            return False  # not running: nothing to remind of
        try:
            self.t.customers(reg.id).update(
                actions=[RegistrationModel.reminder_sent.set(True), RegistrationModel.due_at.set(reg.ends_at),
                         *queue_actions(entries, now)],
                condition=(RegistrationModel.status == ACTIVE) & (RegistrationModel.due_at == reg.due_at)
                & RegistrationModel.reminder_sent.is_in(False))
        except UpdateError:
            return False
        return True

    @translated
    def begin_cleanup(self, reg: Registration, now: datetime, retry: timedelta, status: str,
                      entries: Sequence[Entry] = (), order: str = "CLEANUP") -> bool:
        """Stop the session now (login refused from this instant) and order its cleanup.

        ``status`` is ``expiring`` for an end (time up, or the participant's choice) and
        ``failed`` for provisioning stuck past its deadline or purged; ``order`` is CLEANUP, or
        PURGE when nothing is to be measured. The order is queued first, then ``entries``.
        """
        try:
            with TransactWrite(connection=self.t.connection) as tx:
                tx.update(self.t.customers(reg.id), actions=[
                    RegistrationModel.status.set(status), RegistrationModel.due_state.set(DUE_CLEANING),
                    RegistrationModel.due_at.set(now + retry), RegistrationModel.progress.remove(),
                    *queue_actions([order_entry(order), *entries], now)],
                    condition=RegistrationModel.status.is_in(PENDING, PROVISIONING, ACTIVE)
                    & (RegistrationModel.status == reg.status)
                    & (RegistrationModel.ends_at == reg.ends_at if reg.ends_at
                       else RegistrationModel.ends_at.does_not_exist()))
                tx.update(self.t.students(reg.student_id), actions=[StudentModel.expires_at.set(now),
                                                                    StudentModel.status.set("cleaning")],
                          condition=StudentModel.registration_id == reg.id)
        except TransactWriteError:
            return False
        return True

    @translated
    def retry_cleanup(self, reg: Registration, now: datetime, retry: timedelta) -> bool:
        attempt = int(reg.cleanup_attempts or 0) + 1
        try:
            self.t.customers(reg.id).update(
                actions=[RegistrationModel.cleanup_attempts.set(attempt), RegistrationModel.due_at.set(now + retry),
                         *queue_actions([order_entry("CLEANUP", attempt)], now)],
                condition=(RegistrationModel.due_state == DUE_CLEANING) & (RegistrationModel.due_at == reg.due_at))
        except UpdateError:
            return False
        return True

    @translated
    def finish(self, registration_id: str, completion: float | None, now: datetime,
               entries: Sequence[Entry]) -> Registration | None:
        """The environment is clean: free the student and the seat, close the registration.

        One transaction; ``entries`` are queued for a workshop that ran (not for a failed one).
        None when it was already finished (a repeated callback).
        """
        try:
            reg = self._read(registration_id)
        except RegistrationModel.DoesNotExist:
            return None  # a purge of a student that had no registration
        if reg.due_state != DUE_CLEANING:
            return None
        final = FAILED if reg.status == FAILED else FINISHED
        owed = list(entries) if final == FINISHED else []
        actions: list[Action] = [RegistrationModel.status.set(final), RegistrationModel.finished_at.set(now),
                   RegistrationModel.ttl.set(personal_data_expiry(now)),
                   RegistrationModel.due_state.remove(), RegistrationModel.due_at.remove(),
                   *queue_actions(owed, now)]
        if completion is not None:
            actions.append(RegistrationModel.completion.set(completion))
        try:
            with TransactWrite(connection=self.t.connection) as tx:
                tx.update(self.t.customers(registration_id), actions=actions,
                          condition=RegistrationModel.due_state == DUE_CLEANING)
                return_seat(tx, self.t, reg)
        except TransactWriteError as exc:
            if self._read(registration_id).due_state != DUE_CLEANING:
                return None  # finished meanwhile: a repeated callback
            raise Unavailable("the seat could not be freed yet; retry") from exc
        return self._read(registration_id)

    @translated
    def extend(self, reg: Registration, minutes: int, reminder: timedelta, counted: bool = True,
               entries: Sequence[Entry] = (), now: datetime | None = None) -> Registration:
        """Push the end back; the caller checked the rules, the conditions re-check the state.
        ``counted``: the extension uses up one of the participant's own. ``entries`` are queued
        with it, due at ``now`` (without it: already due, since the session's start)."""
        if reg.ends_at is None or reg.started_at is None:
            raise Conflict("Only a running workshop can be extended.")
        ends = reg.ends_at + timedelta(minutes=minutes)
        actions: list[Action] = [
            RegistrationModel.ends_at.set(ends), RegistrationModel.extensions_used.add(1 if counted else 0),
            RegistrationModel.reminder_sent.set(False),
            RegistrationModel.due_at.set(reminder_at(ends, reg.started_at, reminder))]
        if entries:
            actions += queue_actions(entries, now or reg.started_at)
        try:
            with TransactWrite(connection=self.t.connection) as tx:
                tx.update(self.t.customers(reg.id), actions=actions,
                          condition=(RegistrationModel.status == ACTIVE) & (RegistrationModel.ends_at == reg.ends_at))
                tx.update(self.t.students(reg.student_id), actions=[StudentModel.expires_at.set(ends)],
                          condition=StudentModel.registration_id == reg.id)
        except TransactWriteError as exc:
            raise Conflict("The workshop changed meanwhile (ended or extended); please reload and try again.") from exc
        return self._read(reg.id)

    @translated
    def queue(self, registration_id: str, entries: Sequence[Entry], now: datetime) -> None:
        """Add outbox entries to a registration."""
        self.t.customers(registration_id).update(actions=queue_actions(entries, now))

    @translated
    def order_reset(self, reg: Registration, now: datetime, scope: str = "all") -> None:
        """Order fresh notebooks (scope ``all``) or a new password alone (``password``): the attempt
        number names the workflow, so two clicks make two distinct resets and never the same one
        twice; a session that ended meanwhile gets none."""
        used = int(reg.resets_used or 0)
        unchanged = RegistrationModel.resets_used == used
        if not used:
            unchanged = unchanged | RegistrationModel.resets_used.does_not_exist()
        attempt = used + 1
        try:
            self.t.customers(reg.id).update(
                actions=[RegistrationModel.resets_used.set(attempt),
                         *queue_actions([order_entry("RESET", attempt, scope)], now)],
                condition=(RegistrationModel.status == ACTIVE) & unchanged)
        except UpdateError as exc:
            raise Conflict("The workshop changed meanwhile (ended or reset); please reload and try again.") from exc

    @translated
    def leave_waitlist(self, reg: Registration, now: datetime) -> bool:
        try:
            with TransactWrite(connection=self.t.connection) as tx:
                tx.update(self.t.customers(reg.id), actions=[
                    RegistrationModel.status.set(CANCELLED), RegistrationModel.finished_at.set(now),
                    RegistrationModel.ttl.set(personal_data_expiry(now)),
                    RegistrationModel.waitlist_workshop.remove(), RegistrationModel.waitlist_seq.remove()],
                    condition=RegistrationModel.status == WAITLISTED)
                tx.delete(self.t.emails(reg.guard_key), condition=EmailClaimModel.registration_id == reg.id)
        except TransactWriteError:
            return False
        return True

    @translated
    def finished_workshop_ids(self, email: str) -> set[str]:
        """Distinct workshops this address has finished, from the by-email index."""
        return {r.workshop_id for r in self.t.customers.email_index.query(email) if r.status == FINISHED}

    @translated
    def free_orphan(self, student_id: str) -> bool:
        """Free a student that holds no registration but is not free (a lost state): seat back."""
        student = self.t.students.get(student_id, consistent_read=True)
        if student.status == "free" or student.registration_id:
            return False
        try:
            with TransactWrite(connection=self.t.connection) as tx:
                tx.update(self.t.students(student_id),
                          actions=[StudentModel.status.set("free"), StudentModel.free_workshop.set(student.workshop_id),
                                   StudentModel.password_hash.remove(), StudentModel.expires_at.remove(),
                                   StudentModel.warm.remove(), StudentModel.warming_since.remove()],
                          condition=(StudentModel.status == student.status)
                          & StudentModel.registration_id.does_not_exist())
                tx.update(self.t.workshops(student.workshop_id), actions=[WorkshopModel.seats_free.add(1)])
        except TransactWriteError:
            return False
        return True
