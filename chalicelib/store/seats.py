"""Seats and registrations: every state change is one conditional transaction.

Invariants (DESIGN §3): a student belongs to at most one live registration, the
free-seat counter equals the number of free students, one live registration per
email. They hold because each claim writes the email guard, the student, the
counter and the registration together, each under a condition.
"""
from __future__ import annotations

import random
import time
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Iterator

from pynamodb.exceptions import DoesNotExist, TransactWriteError
from pynamodb.transactions import TransactWrite

from chalicelib.domain.errors import Conflict, NotFound, Unavailable
from chalicelib.domain.lifecycle import DUE_PROVISIONING
from chalicelib.domain.registration import PENDING, WAITLISTED, Applicant
from chalicelib.store.errors import translated
from chalicelib.store.models import (
    EmailClaimModel,
    RegistrationModel,
    StudentModel,
    WorkshopModel,
    connection,
)
from chalicelib.store.outbox import queue_actions

MAX_ATTEMPTS = 40
CANDIDATES = 25
OUTBOX_LEASE = timedelta(seconds=60)
EMAIL_TAKEN = "This email address already has a live registration. Check your inbox for its status link."


# pynamodb sends a transaction's items as condition checks, deletes, puts, updates:
# the email claim (the first put) sits after the condition checks.
CLAIM_INDEX_SEAT = 0
CLAIM_INDEX_WAITLIST = 1


class _Retry(Exception):
    """The transaction lost a race that another attempt can win."""


@contextmanager
def _transaction(claim_index: int) -> Iterator[TransactWrite]:
    """Commit on exit; an email-claim failure is a conflict, anything else is retried."""
    try:
        with TransactWrite(connection=connection()) as tx:
            yield tx
    except TransactWriteError as exc:
        reasons = exc.cancellation_reasons
        if len(reasons) > claim_index and reasons[claim_index] and reasons[claim_index].code == "ConditionalCheckFailed":
            raise Conflict(EMAIL_TAKEN) from exc
        raise _Retry() from exc


def _backoff(attempt: int) -> None:
    time.sleep(random.uniform(0, 0.004 * min(attempt, 10)))


def return_seat(tx: TransactWrite, reg: RegistrationModel) -> None:
    """Add to ``tx``: the student back to free, the counter up by one, the email guard gone.

    Every path that gives a seat back goes through here, inside its own transaction.
    """
    tx.update(StudentModel(reg.student_id),
              actions=[StudentModel.status.set("free"), StudentModel.free_workshop.set(reg.workshop_id),
                       StudentModel.registration_id.remove(), StudentModel.password_hash.remove(),
                       StudentModel.warm.remove(), StudentModel.warming_since.remove(),
                       StudentModel.expires_at.remove()],
              condition=StudentModel.registration_id == reg.id)
    tx.update(WorkshopModel(reg.workshop_id), actions=[WorkshopModel.seats_free.add(1)])
    tx.delete(EmailClaimModel(reg.email.lower()), condition=EmailClaimModel.registration_id == reg.id)


@translated
def get_workshop(workshop_id: str) -> WorkshopModel:
    try:
        return WorkshopModel.get(workshop_id, consistent_read=True)
    except DoesNotExist:
        raise NotFound(f"There is no workshop called {workshop_id}.") from None


def open_workshop(workshop_id: str) -> WorkshopModel:
    """The workshop, if it takes registrations; NotFound otherwise."""
    workshop = get_workshop(workshop_id)
    if not workshop.active:
        raise NotFound(f"The workshop {workshop_id} is not open for registration.")
    return workshop


def _new_registration(registration_id: str, applicant: Applicant, workshop_id: str, now: datetime,
                      outbox: list[str]) -> RegistrationModel:
    return RegistrationModel(
        registration_id,
        email=applicant.email,
        first_name=applicant.first_name,
        last_name=applicant.last_name,
        company=applicant.company,
        workshop_id=workshop_id,
        created_at=now,
        outbox=outbox,
        outbox_state="pending",
        # The creator delivers right away; the lease keeps the retry tick off it meanwhile.
        outbox_due_at=now + OUTBOX_LEASE,
    )


def _try_seat(workshop_id: str, student_id: str, applicant: Applicant, registration: RegistrationModel,
              stuck_after: timedelta) -> None:
    registration.status = PENDING
    registration.student_id = student_id
    registration.due_state = DUE_PROVISIONING
    registration.due_at = registration.created_at + stuck_after
    with _transaction(CLAIM_INDEX_SEAT) as tx:
        tx.save(EmailClaimModel(applicant.email_key, registration_id=registration.id),
                condition=EmailClaimModel.email.does_not_exist())
        tx.update(StudentModel(student_id),
                  actions=[StudentModel.status.set("reserved"),
                           StudentModel.registration_id.set(registration.id),
                           StudentModel.free_workshop.remove()],
                  condition=(StudentModel.status == "free") & (StudentModel.workshop_id == workshop_id))
        tx.update(WorkshopModel(workshop_id),
                  actions=[WorkshopModel.seats_free.add(-1)],
                  condition=(WorkshopModel.seats_free > 0) & (WorkshopModel.active == True))  # noqa: E712
        tx.save(registration, condition=RegistrationModel.id.does_not_exist())


def _try_waitlist(workshop_id: str, applicant: Applicant, registration: RegistrationModel) -> None:
    counter = WorkshopModel(workshop_id)
    counter.update(actions=[WorkshopModel.waitlist_seq.add(1)], condition=WorkshopModel.id.exists())
    registration.status = WAITLISTED
    registration.student_id = None
    registration.waitlist_workshop = workshop_id
    registration.waitlist_seq = counter.waitlist_seq
    with _transaction(CLAIM_INDEX_WAITLIST) as tx:
        tx.save(EmailClaimModel(applicant.email_key, registration_id=registration.id),
                condition=EmailClaimModel.email.does_not_exist())
        tx.condition_check(WorkshopModel, workshop_id,
                           condition=(WorkshopModel.seats_free <= 0) & (WorkshopModel.active == True))  # noqa: E712
        tx.save(registration, condition=RegistrationModel.id.does_not_exist())


def _free_student(workshop: WorkshopModel) -> str | None:
    """A random free student; a warm one (server already running) when the workshop keeps a pool."""
    if int(workshop.warm_pool or 0) > 0:
        warm = list(StudentModel.free_index.query(workshop.id, filter_condition=StudentModel.warm == True))  # noqa: E712
        if warm:
            return random.choice(warm).id
    free = list(StudentModel.free_index.query(workshop.id, limit=CANDIDATES))
    settled = [s for s in free if not s.warming_since]  # a student being warmed is taken last
    return random.choice(settled or free).id if free else None


@translated
def register(applicant: Applicant, workshop_id: str, registration_id: str, now: datetime,
             seated_outbox: list[str], waitlisted_outbox: list[str],
             workshop: WorkshopModel | None = None,
             stuck_after: timedelta = timedelta(minutes=10)) -> tuple[RegistrationModel, WorkshopModel]:
    """Claim a free student, or a waitlist place when the workshop is full.

    Contention on a student retries with another one; a seat that frees while
    joining the waitlist sends the applicant back to claim it. ``workshop`` is
    a fresh read the caller already made, saving one round trip.
    """
    for attempt in range(MAX_ATTEMPTS):
        if workshop is None or attempt:
            workshop = open_workshop(workshop_id)
        try:
            if workshop.seats_free > 0:
                candidate = _free_student(workshop)
                if candidate is None:  # the index lags the counter for a moment
                    _backoff(attempt + 1)
                    continue
                registration = _new_registration(registration_id, applicant, workshop_id, now, seated_outbox)
                _try_seat(workshop_id, candidate, applicant, registration, stuck_after)
            else:
                registration = _new_registration(registration_id, applicant, workshop_id, now, waitlisted_outbox)
                _try_waitlist(workshop_id, applicant, registration)
            return registration, workshop
        except _Retry:
            _backoff(attempt)
    raise Unavailable("Too many people are registering for this workshop right now; please try again.")


@translated
def get_registration(registration_id: str) -> RegistrationModel:
    try:
        return RegistrationModel.get(registration_id, consistent_read=True)
    except DoesNotExist:
        raise NotFound("No registration has this id.") from None


@translated
def waitlist_position(registration: RegistrationModel) -> int | None:
    """1-based place in the workshop's waitlist, counted from the sparse index."""
    if registration.status != WAITLISTED or registration.waitlist_seq is None:
        return None
    return RegistrationModel.waitlist_index.count(
        registration.workshop_id, RegistrationModel.waitlist_seq <= registration.waitlist_seq
    )


@translated
def list_workshops() -> list[WorkshopModel]:
    workshops = list(WorkshopModel.scan())
    return sorted(workshops, key=lambda w: (w.priority, w.title))


@translated
def promote_next(workshop_id: str, now: datetime, stuck_after: timedelta, outbox: list[str]) -> RegistrationModel | None:
    """Give a free seat to the oldest waitlisted registration; None when nobody waits or no seat is free."""
    for attempt in range(MAX_ATTEMPTS):
        workshop = get_workshop(workshop_id)
        if workshop.seats_free <= 0:
            return None
        first = next(iter(RegistrationModel.waitlist_index.query(workshop_id, limit=1)), None)
        if first is None:
            return None
        student = _free_student(workshop)
        if student is None:
            _backoff(attempt + 1)
            continue
        try:
            with TransactWrite(connection=connection()) as tx:
                tx.update(RegistrationModel(first.id), actions=[
                    RegistrationModel.status.set(PENDING), RegistrationModel.student_id.set(student),
                    RegistrationModel.waitlist_workshop.remove(), RegistrationModel.waitlist_seq.remove(),
                    RegistrationModel.due_state.set(DUE_PROVISIONING), RegistrationModel.due_at.set(now + stuck_after),
                    *queue_actions(outbox, now)],
                    condition=(RegistrationModel.status == WAITLISTED)
                    & (RegistrationModel.waitlist_seq == first.waitlist_seq))
                tx.update(StudentModel(student),
                          actions=[StudentModel.status.set("reserved"), StudentModel.registration_id.set(first.id),
                                   StudentModel.free_workshop.remove()],
                          condition=(StudentModel.status == "free") & (StudentModel.workshop_id == workshop_id))
                tx.update(WorkshopModel(workshop_id), actions=[WorkshopModel.seats_free.add(-1)],
                          condition=WorkshopModel.seats_free > 0)
        except TransactWriteError:
            _backoff(attempt)
            continue
        return RegistrationModel.get(first.id, consistent_read=True)
    return None


@translated
def workshops_with_waitlist() -> list[str]:
    """Workshops that have both a free seat and someone who ever waited (the workshops table is small)."""
    return [w.id for w in WorkshopModel.scan(attributes_to_get=["id", "seats_free", "waitlist_seq"])
            if w.seats_free > 0 and (w.waitlist_seq or 0) > 0]
