"""Seats and registrations: every state change is one conditional transaction.

Invariants (docs/architecture.md, "Invariants"): a student belongs to at most one live registration, the
free-seat counter equals the number of free students, one live registration per
email. They hold because each claim writes the email guard, the student, the
counter and the registration together, each under a condition.

A claim is safe to repeat: when the email guard's condition fails, the guard is read, and a guard
that names the registration this call was creating means an earlier attempt committed although
its answer was lost (a timeout or connection error after the commit, or the client re-sending a
committed transaction); the claim then answers with that registration instead of a conflict.
"""
from __future__ import annotations

import random
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta

from pynamodb.exceptions import DoesNotExist, TransactWriteError
from pynamodb.expressions.update import Action
from pynamodb.transactions import TransactWrite

from chalicelib.domain.errors import Conflict, NotFound, Unavailable
from chalicelib.domain.lifecycle import DUE_CONFIRMING, DUE_PROVISIONING
from chalicelib.domain.outbox import Entry
from chalicelib.domain.registration import PENDING, UNCONFIRMED, WAITLISTED, Applicant
from chalicelib.domain.values import Registration, Student, Workshop
from chalicelib.store import values
from chalicelib.store.errors import translated
from chalicelib.store.limits import Charge, LimitReached, charge, wait_of
from chalicelib.store.models import EmailClaimModel, RegistrationModel, StudentModel, WorkshopModel
from chalicelib.store.outbox import queue_actions
from chalicelib.store.tables import Tables

MAX_ATTEMPTS = 40
CANDIDATES = 25
OUTBOX_LEASE = timedelta(seconds=60)
EMAIL_TAKEN = "This email address already has a live registration. Check your inbox for its status link."


# pynamodb sends a transaction's items as condition checks, deletes, puts, updates:
# the email claim (the first put) sits after the condition checks.
CLAIM_INDEX_SEAT = 0
CLAIM_INDEX_WAITLIST = 1


class EmailTaken(Conflict):
    """The email guard names another registration, ``registration_id``: the email has a live registration."""

    def __init__(self, registration_id: str):
        super().__init__(EMAIL_TAKEN)
        self.registration_id = registration_id


class _Retry(Exception):
    """The transaction lost a race that another attempt can win.

    ``uncertain``: DynamoDB gave no verdict (a timeout, a lost connection, throttling), so the
    transaction may have committed all the same.
    """

    def __init__(self, uncertain: bool = False):
        super().__init__()
        self.uncertain = uncertain


class _GuardHeld(Exception):
    """The email guard's condition failed: some registration, maybe this very one, holds it."""


@contextmanager
def _transaction(tables: Tables, claim_index: int, charges: Sequence[Charge]) -> Iterator[TransactWrite]:
    """Commit on exit, the ``charges`` with the claim (sent after its own items: pynamodb sends
    updates last); an email-claim failure is :class:`_GuardHeld`, a charge's is
    :class:`LimitReached`, anything else is retried."""
    first_charge = 0
    try:
        with TransactWrite(connection=tables.connection) as tx:
            yield tx
            first_charge = sum(len(items) for items in (tx._condition_check_items, tx._delete_items,
                                                        tx._put_items, tx._update_items))
            for counted in charges:
                charge(tx, tables, counted)
    except TransactWriteError as exc:
        reasons = exc.cancellation_reasons
        if not reasons:  # no cancellation: the request itself failed, before or after a commit
            raise _Retry(uncertain=True) from exc
        failed = {n for n, reason in enumerate(reasons)
                  if reason is not None and reason.code == "ConditionalCheckFailed"}
        if claim_index in failed:
            raise _GuardHeld() from exc
        for n in sorted(failed):
            if first_charge <= n < first_charge + len(charges):
                reached = charges[n - first_charge]
                raise LimitReached(reached.scope, wait_of(reached)) from exc
        raise _Retry() from exc


def _backoff(attempt: int) -> None:
    time.sleep(random.uniform(0, 0.004 * min(attempt, 10)))


def return_seat(tx: TransactWrite, tables: Tables, reg: Registration, keep_warm: bool = False) -> None:
    """Add to ``tx``: the student back to free, the counter up by one, the email guard gone.

    Every path that gives a seat back goes through here, inside its own transaction.
    ``keep_warm``: the student was never provisioned (an unconfirmed hold), so a warm server it
    had still runs and the student stays in the warm pool.
    """
    actions: list[Action] = [StudentModel.status.set("free"), StudentModel.free_workshop.set(reg.workshop_id),
               StudentModel.registration_id.remove(), StudentModel.password_hash.remove(),
               StudentModel.expires_at.remove()]
    if not keep_warm:
        actions += [StudentModel.warm.remove(), StudentModel.warming_since.remove()]
    tx.update(tables.students(reg.student_id), actions=actions, condition=StudentModel.registration_id == reg.id)
    tx.update(tables.workshops(reg.workshop_id), actions=[WorkshopModel.seats_free.add(1)])
    tx.delete(tables.emails(reg.guard_key), condition=EmailClaimModel.registration_id == reg.id)


def load_registration(tables: Tables, registration_id: str) -> RegistrationModel:
    """The registration's item, read consistently; NotFound for an unknown id."""
    try:
        return tables.customers.get(registration_id, consistent_read=True)
    except DoesNotExist:
        raise NotFound("No registration has this id.") from None


def load_student(tables: Tables, student_id: str) -> Student:
    try:
        return values.student(tables.students.get(student_id, consistent_read=True))
    except DoesNotExist:
        raise NotFound(f"There is no student {student_id}.") from None


class Seats:
    def __init__(self, tables: Tables):
        self.t = tables

    @translated
    def get_workshop(self, workshop_id: str) -> Workshop:
        try:
            return values.workshop(self.t.workshops.get(workshop_id, consistent_read=True))
        except DoesNotExist:
            raise NotFound(f"There is no workshop called {workshop_id}.") from None

    def open_workshop(self, workshop_id: str) -> Workshop:
        """The workshop, if it takes registrations; NotFound otherwise."""
        workshop = self.get_workshop(workshop_id)
        if not workshop.active:
            raise NotFound(f"The workshop {workshop_id} is not open for registration.")
        return workshop

    def _new_registration(self, registration_id: str, applicant: Applicant, workshop_id: str, now: datetime,
                          outbox: list[Entry]) -> RegistrationModel:
        return self.t.customers(
            registration_id,
            email=applicant.email,
            email_key=applicant.email_key,
            first_name=applicant.first_name,
            last_name=applicant.last_name,
            company=applicant.company,
            workshop_id=workshop_id,
            created_at=now,
            outbox=[e.format() for e in outbox],
            outbox_state="pending",
            # delivered right away (by the creator or the dispatcher); the retry tick looks only later
            outbox_due_at=now + OUTBOX_LEASE,
        )

    def _try_seat(self, workshop_id: str, student_id: str, applicant: Applicant, registration: RegistrationModel,
                  stuck_after: timedelta, confirm_by: datetime | None, charges: Sequence[Charge]) -> None:
        registration.student_id = student_id
        if confirm_by is None:
            registration.status = PENDING
            registration.due_state = DUE_PROVISIONING
            registration.due_at = registration.created_at + stuck_after
        else:  # held until confirmed; the time checks give the seat back at ``confirm_by``
            registration.status = UNCONFIRMED
            registration.confirm_by = confirm_by
            registration.due_state = DUE_CONFIRMING
            registration.due_at = confirm_by
        with _transaction(self.t, CLAIM_INDEX_SEAT, charges) as tx:
            tx.save(self.t.emails(applicant.email_key, registration_id=registration.id),
                    condition=EmailClaimModel.email.does_not_exist())
            tx.update(self.t.students(student_id),
                      actions=[StudentModel.status.set("reserved"),
                               StudentModel.registration_id.set(registration.id),
                               StudentModel.free_workshop.remove()],
                      condition=(StudentModel.status == "free") & (StudentModel.workshop_id == workshop_id))
            tx.update(self.t.workshops(workshop_id),
                      actions=[WorkshopModel.seats_free.add(-1)],
                      condition=(WorkshopModel.seats_free > 0) & WorkshopModel.active.is_in(True))
            tx.save(registration, condition=RegistrationModel.id.does_not_exist())

    def _try_waitlist(self, workshop_id: str, applicant: Applicant, registration: RegistrationModel,
                      confirm_by: datetime | None, charges: Sequence[Charge]) -> None:
        """Take the next waitlist number. An unconfirmed place keeps its number but stays out of the
        waitlist index (nobody promotes it, nobody counts it) until it is confirmed."""
        counter = self.t.workshops(workshop_id)
        counter.update(actions=[WorkshopModel.waitlist_seq.add(1)], condition=WorkshopModel.id.exists())
        registration.student_id = None
        registration.waitlist_seq = counter.waitlist_seq
        if confirm_by is None:
            registration.status = WAITLISTED
            registration.waitlist_workshop = workshop_id
        else:
            registration.status = UNCONFIRMED
            registration.confirm_by = confirm_by
            registration.due_state = DUE_CONFIRMING
            registration.due_at = confirm_by
        with _transaction(self.t, CLAIM_INDEX_WAITLIST, charges) as tx:
            tx.save(self.t.emails(applicant.email_key, registration_id=registration.id),
                    condition=EmailClaimModel.email.does_not_exist())
            tx.condition_check(self.t.workshops, workshop_id,
                               condition=(WorkshopModel.seats_free <= 0) & WorkshopModel.active.is_in(True))
            tx.save(registration, condition=RegistrationModel.id.does_not_exist())

    def _guard_holder(self, email_key: str) -> str | None:
        """The registration id the email guard names, read consistently; None when nobody holds it."""
        try:
            return self.t.emails.get(email_key, consistent_read=True).registration_id
        except DoesNotExist:
            return None

    def _free_student(self, workshop: Workshop) -> str | None:
        """A random free student; a warm one (server already running) when the workshop keeps a pool
        or warms for an expected turnout."""
        if int(workshop.warm_pool or 0) > 0 or int(workshop.expected or 0) > 0:
            warm = list(self.t.students.free_index.query(workshop.id, filter_condition=StudentModel.warm.is_in(True)))
            if warm:
                return random.choice(warm).id
        free = list(self.t.students.free_index.query(workshop.id, limit=CANDIDATES))
        settled = [s for s in free if not s.warming_since]  # a student being warmed is taken last
        return random.choice(settled or free).id if free else None

    @translated
    def register(self, applicant: Applicant, workshop_id: str, registration_id: str, now: datetime,
                 seated_outbox: list[Entry], waitlisted_outbox: list[Entry],
                 workshop: Workshop | None = None, stuck_after: timedelta = timedelta(minutes=10),
                 confirm_by: datetime | None = None, charges: Sequence[Charge] = ()) -> tuple[Registration, Workshop]:
        """Claim a free student, or a waitlist place when the workshop is full; with ``confirm_by``,
        as an unconfirmed hold (:class:`~chalicelib.store.holds.Holds` confirms or releases it).

        Contention on a student retries with another one; a seat that frees while
        joining the waitlist sends the applicant back to claim it. ``workshop`` is
        a fresh read the caller already made, saving one round trip.

        An attempt that committed although its answer was lost is found through the
        email guard, which then names ``registration_id``: the stored registration is the
        answer. :class:`EmailTaken` names the registration that holds the email otherwise.
        ``charges`` (rate limits) are counted in the claiming transaction: a claim that does not
        commit counts nothing, and one past a limit is :class:`LimitReached`.
        """
        for attempt in range(MAX_ATTEMPTS):
            if workshop is None or attempt:
                workshop = self.open_workshop(workshop_id)
            try:
                if workshop.seats_free > 0:
                    candidate = self._free_student(workshop)
                    if candidate is None:  # the index lags the counter for a moment
                        _backoff(attempt + 1)
                        continue
                    item = self._new_registration(registration_id, applicant, workshop_id, now, seated_outbox)
                    self._try_seat(workshop_id, candidate, applicant, item, stuck_after, confirm_by, charges)
                else:
                    item = self._new_registration(registration_id, applicant, workshop_id, now, waitlisted_outbox)
                    self._try_waitlist(workshop_id, applicant, item, confirm_by, charges)
                return values.registration(item), workshop
            except _GuardHeld:
                holder = self._guard_holder(applicant.email_key)
                if holder == registration_id:  # an earlier attempt committed; its answer was lost
                    return values.registration(load_registration(self.t, registration_id)), workshop
                if holder is not None:
                    raise EmailTaken(holder) from None
                _backoff(attempt)  # the guard was released meanwhile: claim again
            except _Retry as retry:
                if retry.uncertain and self._guard_holder(applicant.email_key) == registration_id:
                    return values.registration(load_registration(self.t, registration_id)), workshop
                _backoff(attempt)
        raise Unavailable("Too many people are registering for this workshop right now; please try again.")

    @translated
    def email_holder(self, email_key: str) -> str | None:
        """The registration the email guard of ``email_key`` names; None when it names none."""
        return self._guard_holder(email_key)

    @translated
    def get_registration(self, registration_id: str) -> Registration:
        return values.registration(load_registration(self.t, registration_id))

    @translated
    def get_student(self, student_id: str) -> Student:
        """NotFound for an unknown id."""
        return load_student(self.t, student_id)

    @translated
    def waitlist_position(self, reg: Registration) -> int | None:
        """1-based place in the workshop's waitlist, counted from the sparse index."""
        if reg.status != WAITLISTED or reg.waitlist_seq is None:
            return None
        return self.t.customers.waitlist_index.count(
            reg.workshop_id, RegistrationModel.waitlist_seq <= reg.waitlist_seq
        )

    @translated
    def waitlist_length(self, workshop_id: str) -> int:
        """How many wait for a seat in the workshop, counted from the sparse index."""
        return self.t.customers.waitlist_index.count(workshop_id)

    @translated
    def list_workshops(self) -> list[Workshop]:
        workshops = [values.workshop(w) for w in self.t.workshops.scan()]
        return sorted(workshops, key=lambda w: (w.priority, w.title))

    @translated
    def promote_next(self, workshop_id: str, now: datetime, stuck_after: timedelta,
                     outbox: list[Entry]) -> Registration | None:
        """Give a free seat to the oldest waitlisted registration; None when nobody waits or no seat is free."""
        for attempt in range(MAX_ATTEMPTS):
            workshop = self.get_workshop(workshop_id)
            if workshop.seats_free <= 0:
                return None
            first = next(iter(self.t.customers.waitlist_index.query(workshop_id, limit=1)), None)
            if first is None:
                return None
            student = self._free_student(workshop)
            if student is None:
                _backoff(attempt + 1)
                continue
            try:
                with TransactWrite(connection=self.t.connection) as tx:
                    tx.update(self.t.customers(first.id), actions=[
                        RegistrationModel.status.set(PENDING), RegistrationModel.student_id.set(student),
                        RegistrationModel.waitlist_workshop.remove(), RegistrationModel.waitlist_seq.remove(),
                        RegistrationModel.due_state.set(DUE_PROVISIONING),
                        RegistrationModel.due_at.set(now + stuck_after),
                        *queue_actions(outbox, now)],
                        condition=(RegistrationModel.status == WAITLISTED)
                        & (RegistrationModel.waitlist_seq == first.waitlist_seq))
                    tx.update(self.t.students(student),
                              actions=[StudentModel.status.set("reserved"), StudentModel.registration_id.set(first.id),
                                       StudentModel.free_workshop.remove()],
                              condition=(StudentModel.status == "free") & (StudentModel.workshop_id == workshop_id))
                    tx.update(self.t.workshops(workshop_id), actions=[WorkshopModel.seats_free.add(-1)],
                              condition=WorkshopModel.seats_free > 0)
            except TransactWriteError:
                _backoff(attempt)
                continue
            return values.registration(self.t.customers.get(first.id, consistent_read=True))
        return None

    @translated
    def workshops_with_waitlist(self) -> list[str]:
        """Workshops that have both a free seat and someone who ever waited (the workshops table is small)."""
        return [w.id for w in self.t.workshops.scan(attributes_to_get=["id", "seats_free", "waitlist_seq"])
                if w.seats_free > 0 and (w.waitlist_seq or 0) > 0]
