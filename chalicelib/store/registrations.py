"""Registrations: the one store class that writes them. It claims a seat or a waitlist place for a
new registration, promotes the waitlist, and applies a :class:`~chalicelib.domain.lifecycle.Change`
(what :func:`~chalicelib.domain.lifecycle.decide` made of an event) — each in one conditional
transaction with its seat and email-guard effects.

Invariants (docs/architecture.md, "Invariants"): a student belongs to at most one live
registration, the free-seat counter equals the number of free students, one live registration
per email. They hold because each claim writes the email guard, the student, the counter and the
registration together, each under a condition, and every seat that comes back goes through
:func:`~chalicelib.store.seats.return_seat` inside the transaction that closes its registration.

A claim is safe to repeat: when the email guard's condition fails, the guard is read, and a guard
that names the registration this call was creating means an earlier attempt committed although
its answer was lost (a timeout or connection error after the commit, or the client re-sending a
committed transaction); the claim then answers with that registration instead of a conflict.
"""
from __future__ import annotations

import dataclasses
import functools
import operator
import os
import random
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from pynamodb.exceptions import DoesNotExist, TransactWriteError, UpdateError
from pynamodb.expressions.condition import Condition as StoredCondition
from pynamodb.expressions.update import Action
from pynamodb.transactions import TransactWrite

from chalicelib.domain.errors import Conflict, NotFound, Unavailable
from chalicelib.domain.lifecycle import (
    DROP_GUARD,
    KEEP,
    PROMOTE,
    REGISTER,
    RETURN,
    RETURN_WARM,
    TAKE,
    Change,
    Rules,
    decide,
)
from chalicelib.domain.outbox import OUTBOX_PENDING
from chalicelib.domain.registration import FINISHED, WAITLISTED, Applicant
from chalicelib.domain.text import N_
from chalicelib.domain.values import Registration, Workshop
from chalicelib.store import values
from chalicelib.store.errors import translated
from chalicelib.store.limits import Charge, LimitReached, charge, wait_of
from chalicelib.store.models import EmailClaimModel, RegistrationModel, StudentModel, WorkshopModel
from chalicelib.store.outbox import queue_actions
from chalicelib.store.seats import free_student, free_students, get_workshop, open_workshop, return_seat
from chalicelib.store.tables import Tables

MAX_ATTEMPTS = 40
OUTBOX_LEASE = timedelta(seconds=60)
EMAIL_TAKEN = "This email address already has a live registration. Check your inbox for its status link."

# pynamodb sends a transaction's items as condition checks, deletes, puts, updates:
# the email claim is the first put, and neither claim has a condition check; a seat's
# student is the first update (after the email claim and the registration).
CLAIM_INDEX_SEAT = 0
CLAIM_INDEX_WAITLIST = 0
SEAT_INDEX_STUDENT = 2


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

    def __init__(self, uncertain: bool = False, failed: frozenset[int] = frozenset()):
        super().__init__()
        self.uncertain = uncertain
        self.failed = failed  # the items whose condition failed


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
        raise _Retry(failed=frozenset(failed)) from exc


class _Trying:
    """The students this process's claims are trying right now: a claim picks one that no other
    thread here is trying (several at a time only when every student it read is being tried)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._students: Counter[str] = Counter()  # a student: how many claims try it

    @contextmanager
    def one_of(self, candidates: list[str]) -> Iterator[str]:
        """The first of ``candidates`` nobody here tries (else the first), taken off the list."""
        with self._lock:
            n = next((n for n, student in enumerate(candidates) if student not in self._students), 0)
            student = candidates.pop(n)
            self._students[student] += 1
        try:
            yield student
        finally:
            with self._lock:
                self._students[student] -= 1
                if not self._students[student]:
                    del self._students[student]


_trying = _Trying()
# How many seat claims one process makes at a time: the store commits them one by one all the same,
# and a claim made beside many others picks a student another may be taking (a transaction lost).
CLAIMS_AT_ONCE = 2
_SEATING = threading.BoundedSemaphore(CLAIMS_AT_ONCE)
_places = threading.Lock()
_last_place = 0
_salt: tuple[int, int] = (0, 0)  # (process id, a random number of that process)


def place_number() -> int:
    """A new waitlist place's number, which orders the waitlist: the wall time in microseconds
    (increasing within this process even when the clock is not), then three random digits drawn
    once per process, so that two processes (two Lambda sandboxes have the same process id) give
    the same number only by a 1-in-1000 chance within the same microsecond. No request to the store."""
    global _last_place, _salt
    with _places:
        if _salt[0] != os.getpid():  # a forked worker draws its own
            _salt = (os.getpid(), secrets.randbelow(1000))
        _last_place = max(_last_place + 1, int(time.time() * 1_000_000))
        return _last_place * 1000 + _salt[1]


def _backoff(attempt: int) -> None:
    time.sleep(random.uniform(0, 0.004 * min(attempt, 10)))


def _stored(value: Any) -> Any:
    """A value of the domain as the model stores it (the outbox as its strings)."""
    if isinstance(value, tuple):
        return [entry.format() for entry in value]
    return value


def _condition(change: Change) -> StoredCondition | None:
    """The change's conditions on the stored registration; an absent field reads as its default."""
    parts: list[StoredCondition] = []
    for when in change.when:
        attribute = getattr(RegistrationModel, when.field)
        if when.op == "in":
            parts.append(attribute.is_in(*when.value))
        elif when.op == ">":
            parts.append(attribute > when.value)
        elif when.op == "<=":
            parts.append(attribute <= when.value)
        elif when.value is None or when.value == ():
            parts.append(attribute.does_not_exist())
        elif not when.value:  # 0 or False: also an item written before the field existed
            parts.append((attribute == when.value) | attribute.does_not_exist())
        else:
            parts.append(attribute == _stored(when.value))
    return functools.reduce(operator.and_, parts) if parts else None


def _actions(change: Change, now: datetime) -> list[Action]:
    return [*(getattr(RegistrationModel, name).set(value) for name, value in change.set.items()),
            *(getattr(RegistrationModel, name).remove() for name in change.remove),
            *(getattr(RegistrationModel, name).add(count) for name, count in change.add.items()),
            *queue_actions(change.owes, now)]


class Registrations:
    def __init__(self, tables: Tables):
        self.t = tables

    # -- reads ----------------------------------------------------------------------------------

    @translated
    def get(self, registration_id: str) -> Registration:
        """Read consistently; NotFound for an unknown id."""
        try:
            return values.registration(self.t.customers.get(registration_id, consistent_read=True))
        except DoesNotExist:
            raise NotFound(N_("No registration has this id.")) from None

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
    def email_holder(self, email_key: str) -> str | None:
        """The registration the email guard of ``email_key`` names; None when it names none."""
        try:
            return self.t.emails.get(email_key, consistent_read=True).registration_id
        except DoesNotExist:
            return None

    @translated
    def waitlist_position(self, reg: Registration) -> int | None:
        """1-based place in the workshop's waitlist, counted from the sparse index."""
        if reg.status != WAITLISTED or reg.waitlist_seq is None:
            return None
        return self.t.customers.waitlist_index.count(reg.workshop_id,
                                                     RegistrationModel.waitlist_seq <= reg.waitlist_seq)

    @translated
    def waitlist_length(self, workshop_id: str) -> int:
        """How many wait for a seat in the workshop, counted from the sparse index."""
        return self.t.customers.waitlist_index.count(workshop_id)

    @translated
    def finished(self, email: str) -> list[Registration]:
        """The registrations this address has finished (found by the by-email index), with their
        workshop, completion and checks passed."""
        ids = [r.id for r in self.t.customers.email_index.query(email) if r.status == FINISHED]
        # item by item: a few per address, and the functions' roles read registrations by key
        # (GetItem), not in batches
        return [values.registration(item) for item in (
            self.t.customers.get(rid, attributes_to_get=["id", "workshop_id", "status", "completion",
                                                         "checks_passed", "badge_earned"]) for rid in ids)]

    # -- changes --------------------------------------------------------------------------------

    @translated
    def apply(self, reg: Registration, change: Change, now: datetime) -> Registration | None:
        """Write ``change`` to ``reg`` under its conditions, in one transaction with its seat effect
        and the student row; the registration as written, or None when the conditions no longer
        hold (someone changed it first: nothing was written)."""
        assert change.seat != TAKE, "a seat is taken by claim or promote_next, never by apply"
        condition, actions = _condition(change), _actions(change, now)
        if change.seat == KEEP and not change.student:
            item = self.t.customers(reg.id)
            try:
                item.update(actions=actions, condition=condition)
            except UpdateError as exc:
                if exc.cause_response_code == "ConditionalCheckFailedException":
                    return None
                raise
            return values.registration(item)  # as the update left it (the whole item comes back)
        try:
            with TransactWrite(connection=self.t.connection) as tx:
                tx.update(self.t.customers(reg.id), actions=actions, condition=condition)
                if change.seat in (RETURN, RETURN_WARM):
                    return_seat(tx, self.t, reg, now, keep_warm=change.seat == RETURN_WARM)
                elif change.seat == DROP_GUARD:
                    tx.delete(self.t.emails(reg.guard_key), condition=EmailClaimModel.registration_id == reg.id)
                if change.student and reg.student_id:
                    tx.update(self.t.students(reg.student_id),
                              actions=[getattr(StudentModel, name).set(value)
                                       for name, value in change.student.items()],
                              condition=StudentModel.registration_id == reg.id)
        except TransactWriteError as exc:
            try:
                current = self.get(reg.id)
            except NotFound:
                return None
            if not change.applies_to(current):
                return None  # changed meanwhile: a repeat, or someone else's change
            raise Unavailable(f"the {change.event} of registration {reg.id} could not be written yet; retry") from exc
        return self.get(reg.id)

    def _new_registration(self, new: Registration, change: Change, now: datetime,
                          applicant: Applicant) -> RegistrationModel:
        item = self.t.customers(
            new.id, email=applicant.email, email_key=applicant.email_key, first_name=applicant.first_name,
            last_name=applicant.last_name, company=applicant.company, language=applicant.language,
            workshop_id=new.workshop_id,
            student_id=new.student_id, created_at=now, waitlist_seq=new.waitlist_seq,
            outbox=[e.format() for e in change.owes], outbox_state=OUTBOX_PENDING,
            # delivered right away (by the creator or the dispatcher); the retry tick looks only later
            outbox_due_at=now + OUTBOX_LEASE)
        for name, value in change.set.items():
            setattr(item, name, value)
        return item

    def _try_seat(self, workshop: Workshop, new: Registration, candidates: list[str], applicant: Applicant,
                  now: datetime, rules: Rules, confirm_by: datetime | None,
                  charges: Sequence[Charge]) -> RegistrationModel | None:
        """One seat claim with a student of ``candidates`` (read first when it is empty; the one
        tried is taken off it); None when no free student is found."""
        with _SEATING:
            if not candidates:
                candidates.extend(free_students(self.t, workshop))
            if not candidates:
                return None
            with _trying.one_of(candidates) as student:
                new = dataclasses.replace(new, student_id=student)
                change = decide(new, REGISTER, now, rules, confirm_by=confirm_by, scheduled=workshop.starts_at)
                assert change is not None
                item = self._new_registration(new, change, now, applicant)
                self._claim_seat(workshop.id, item, applicant, charges)
                return item

    def _claim_seat(self, workshop_id: str, item: RegistrationModel, applicant: Applicant,
                    charges: Sequence[Charge]) -> None:
        with _transaction(self.t, CLAIM_INDEX_SEAT, charges) as tx:
            tx.save(self.t.emails(applicant.email_key, registration_id=item.id),
                    condition=EmailClaimModel.email.does_not_exist())
            tx.update(self.t.students(item.student_id),
                      actions=[StudentModel.status.set("reserved"), StudentModel.registration_id.set(item.id),
                               StudentModel.holder.set(f"{applicant.first_name} {applicant.last_name}"),
                               StudentModel.free_workshop.remove()],
                      condition=(StudentModel.status == "free") & (StudentModel.workshop_id == workshop_id))
            tx.update(self.t.workshops(workshop_id), actions=[WorkshopModel.seats_free.add(-1)],
                      condition=(WorkshopModel.seats_free > 0) & WorkshopModel.active.is_in(True))
            tx.save(item, condition=RegistrationModel.id.does_not_exist())

    def _claim_place(self, workshop_id: str, item: RegistrationModel, applicant: Applicant,
                     charges: Sequence[Charge]) -> None:
        """A waitlist place (the workshop counts the places it gave); an unconfirmed one keeps its
        number but stays out of the waitlist index (nobody promotes it, nobody counts it) until it
        is confirmed."""
        with _transaction(self.t, CLAIM_INDEX_WAITLIST, charges) as tx:
            tx.save(self.t.emails(applicant.email_key, registration_id=item.id),
                    condition=EmailClaimModel.email.does_not_exist())
            tx.update(self.t.workshops(workshop_id), actions=[WorkshopModel.waitlist_seq.add(1)],
                      condition=(WorkshopModel.seats_free <= 0) & WorkshopModel.active.is_in(True))
            tx.save(item, condition=RegistrationModel.id.does_not_exist())

    @translated
    def claim(self, applicant: Applicant, workshop_id: str, registration_id: str, now: datetime, rules: Rules,
              workshop: Workshop | None = None, confirm_by: datetime | None = None,
              charges: Sequence[Charge] = ()) -> tuple[Registration, Workshop]:
        """Claim a free student, or a waitlist place when the workshop is full, as ``decide`` makes
        a ``register`` event of it (with ``confirm_by``: an unconfirmed hold).

        At most ``CLAIMS_AT_ONCE`` seat claims of this process at a time, each trying a student
        the other does not; a student taken meanwhile by another claim: the next free student
        read is tried at once (no new read); no free student found: a waitlist place in the same
        attempt; other contention reads again and retries; a seat that frees while joining the
        waitlist sends the applicant back to claim it. ``workshop`` is
        a fresh read the caller already made, saving one round trip.

        An attempt that committed although its answer was lost is found through the
        email guard, which then names ``registration_id``: the stored registration is the
        answer. :class:`EmailTaken` names the registration that holds the email otherwise.
        ``charges`` (rate limits) are counted in the claiming transaction: a claim that does not
        commit counts nothing, and one past a limit is :class:`LimitReached`.
        """
        candidates: list[str] = []  # free students read and not tried yet
        fresh = workshop is not None
        for attempt in range(MAX_ATTEMPTS):
            if workshop is None or not fresh:
                workshop = open_workshop(self.t, workshop_id)
            fresh = False
            new = Registration(registration_id, workshop_id=workshop_id, created_at=now)
            seat = workshop.seats_free > 0
            try:
                item = self._try_seat(workshop, new, candidates, applicant, now, rules, confirm_by, charges) \
                    if seat else None
                # none in the index: the seats went meanwhile (the waitlist's condition checks), or
                # the index lags the counter for a moment (the waitlist's condition sends it back)
                seat = item is not None
                if item is None:
                    new = dataclasses.replace(new, waitlist_seq=place_number())
                    change = decide(new, REGISTER, now, rules, confirm_by=confirm_by)
                    assert change is not None
                    item = self._new_registration(new, change, now, applicant)
                    self._claim_place(workshop_id, item, applicant, charges)
                    if workshop.seats_free > 0:  # read before the seats went: the place's condition says none is free
                        workshop = dataclasses.replace(workshop, seats_free=0)
                return values.registration(item), workshop
            except _GuardHeld:
                holder = self.email_holder(applicant.email_key)
                if holder == registration_id:  # an earlier attempt committed; its answer was lost
                    return self.get(registration_id), workshop
                if holder is not None:
                    raise EmailTaken(holder) from None
                _backoff(attempt)  # the guard was released meanwhile: claim again
            except _Retry as retry:
                if retry.uncertain and self.email_holder(applicant.email_key) == registration_id:
                    return self.get(registration_id), workshop
                if seat and retry.failed == {SEAT_INDEX_STUDENT} and candidates:
                    fresh = True  # only that student was taken meanwhile: the next one, at once
                    continue
                candidates = []
                _backoff(attempt if seat else attempt + 1)  # a place refused: a seat came back, or the index lags
        raise Unavailable("Too many people are registering for this workshop right now; please try again.")

    @translated
    def promote_next(self, workshop_id: str, now: datetime, rules: Rules) -> Registration | None:
        """Give a free seat to the oldest waitlisted registration (``decide``'s ``promote``); None when
        nobody waits or no seat is free."""
        for attempt in range(MAX_ATTEMPTS):
            workshop = get_workshop(self.t, workshop_id)
            if workshop.seats_free <= 0:
                return None
            first = next(iter(self.t.customers.waitlist_index.query(workshop_id, limit=1)), None)
            if first is None:
                return None
            student = free_student(self.t, workshop)
            if student is None:
                _backoff(attempt + 1)
                continue
            try:
                waiting = dataclasses.replace(self.get(first.id), student_id=student)
            except NotFound:
                waiting = None
            change = decide(waiting, PROMOTE, now, rules, scheduled=workshop.starts_at) if waiting else None
            if waiting is None or change is None:  # promoted or gone meanwhile, and the index has not caught up
                _backoff(attempt + 1)
                continue
            try:
                with TransactWrite(connection=self.t.connection) as tx:
                    tx.update(self.t.customers(first.id), actions=_actions(change, now), condition=_condition(change))
                    tx.update(self.t.students(student),
                              actions=[StudentModel.status.set("reserved"), StudentModel.registration_id.set(first.id),
                                       StudentModel.holder.set(f"{waiting.first_name} {waiting.last_name}"),
                                       StudentModel.free_workshop.remove()],
                              condition=(StudentModel.status == "free") & (StudentModel.workshop_id == workshop_id))
                    tx.update(self.t.workshops(workshop_id), actions=[WorkshopModel.seats_free.add(-1)],
                              condition=WorkshopModel.seats_free > 0)
            except TransactWriteError:
                _backoff(attempt)
                continue
            return self.get(first.id)
        return None
