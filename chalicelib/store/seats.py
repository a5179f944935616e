"""Seats: workshops and their students, read; the seat's own writes (a seat given back inside the
transaction that closes its registration, a lost student freed). Registrations are written by
:mod:`chalicelib.store.registrations` alone."""
from __future__ import annotations

import random
from datetime import datetime
from typing import Any

from pynamodb.exceptions import DoesNotExist, TransactWriteError
from pynamodb.expressions.update import Action
from pynamodb.transactions import TransactWrite

from chalicelib.domain.errors import NotFound
from chalicelib.domain.text import N_
from chalicelib.domain.values import Registration, Student, Workshop
from chalicelib.store import values
from chalicelib.store.errors import translated
from chalicelib.store.models import EmailClaimModel, FreeStudentIndex, StudentModel, WorkshopModel
from chalicelib.store.tables import Tables

CANDIDATES = 25


def return_seat(tx: TransactWrite, tables: Tables, reg: Registration, now: datetime, keep_warm: bool = False) -> None:
    """Add to ``tx``: the student back to free, the counter up by one, the email guard gone.

    Every path that gives a seat back goes through here, inside its own transaction.
    ``keep_warm``: the student was never provisioned (an unconfirmed hold), so a warm server it
    had still runs and the student stays in the warm pool.
    """
    actions: list[Action] = [StudentModel.status.set("free"), StudentModel.free_workshop.set(reg.workshop_id),
               StudentModel.registration_id.remove(), StudentModel.password_hash.remove(),
               StudentModel.expires_at.remove(), StudentModel.live.remove(), StudentModel.live_seq.remove(),
               StudentModel.holder.remove()]
    if not keep_warm:
        actions += [StudentModel.warm.remove(), StudentModel.warming_since.remove()]
    tx.update(tables.students(reg.student_id), actions=actions, condition=StudentModel.registration_id == reg.id)
    # a seat back from a session (not an unconfirmed hold's) marks when the event's last one ended
    tx.update(tables.workshops(reg.workshop_id), actions=[WorkshopModel.seats_free.add(1)] if keep_warm
              else [WorkshopModel.seats_free.add(1), WorkshopModel.last_return_at.set(now)])
    tx.delete(tables.emails(reg.guard_key), condition=EmailClaimModel.registration_id == reg.id)


def load_student(tables: Tables, student_id: str) -> Student:
    try:
        return values.student(tables.students.get(student_id, consistent_read=True))
    except DoesNotExist:
        raise NotFound(f"There is no student {student_id}.") from None


def get_workshop(tables: Tables, workshop_id: str) -> Workshop:
    try:
        return values.workshop(tables.workshops.get(workshop_id, consistent_read=True))
    except DoesNotExist:
        raise NotFound(N_("There is no workshop called %(workshop)s.", workshop=workshop_id)) from None


def open_workshop(tables: Tables, workshop_id: str) -> Workshop:
    """The workshop, if it takes registrations; NotFound otherwise."""
    workshop = get_workshop(tables, workshop_id)
    if not workshop.active:
        raise NotFound(N_("The workshop %(workshop)s is not open for registration.", workshop=workshop_id))
    return workshop


def free_student(tables: Tables, workshop: Workshop) -> str | None:
    """A random free student (the first of :func:`free_students`)."""
    found = free_students(tables, workshop)
    return found[0] if found else None


def free_students(tables: Tables, workshop: Workshop) -> list[str]:
    """Free students to try in turn, in random order: warm ones (server already running) when the
    workshop keeps a pool or warms for an expected turnout, otherwise settled ones before those
    being warmed. Read from a random point of the free index on (then from its start), so that
    claims made at the same moment mostly pick different students."""
    number = random.randint(workshop.student_from, max(workshop.student_from, workshop.student_to))
    pivot = f"{workshop.student_prefix}{number}"
    if int(workshop.warm_pool or 0) > 0 or int(workshop.expected or 0) > 0:
        warm = _from(tables, workshop.id, pivot, StudentModel.warm.is_in(True))
        if warm:
            return _shuffled(warm)
    free = _from(tables, workshop.id, pivot)
    return _shuffled([s for s in free if not s.warming_since]) + _shuffled([s for s in free if s.warming_since])


def _shuffled(students: list[StudentModel]) -> list[str]:
    return random.sample([s.id for s in students], len(students))


def _from(tables: Tables, workshop_id: str, pivot: str, only: Any = None) -> list[StudentModel]:
    """The free students ``only`` keeps among the next ``CANDIDATES`` of the index from ``pivot``
    on (from its start when there are none): one page, one request, however few it keeps."""
    def page(condition: Any) -> list[StudentModel]:
        found = tables.students.free_index.query(workshop_id, range_key_condition=condition, filter_condition=only,
                                                 page_size=CANDIDATES)
        return [StudentModel.from_raw_data(item) for item in next(found.page_iter).get("Items", [])]

    return page(FreeStudentIndex.id >= pivot) or page(FreeStudentIndex.id < pivot)


class Seats:
    def __init__(self, tables: Tables):
        self.t = tables

    @translated
    def get_workshop(self, workshop_id: str) -> Workshop:
        return get_workshop(self.t, workshop_id)

    @translated
    def get_student(self, student_id: str) -> Student:
        """NotFound for an unknown id."""
        return load_student(self.t, student_id)

    @translated
    def list_workshops(self) -> list[Workshop]:
        workshops = [values.workshop(w) for w in self.t.workshops.scan()]
        return sorted(workshops, key=lambda w: (w.priority, w.title))

    @translated
    def workshops_with_waitlist(self) -> list[str]:
        """Workshops that have both a free seat and someone who ever waited (the workshops table is small)."""
        return [w.id for w in self.t.workshops.scan(attributes_to_get=["id", "seats_free", "waitlist_seq"])
                if w.seats_free > 0 and (w.waitlist_seq or 0) > 0]

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
                                   StudentModel.warm.remove(), StudentModel.warming_since.remove(),
                                   StudentModel.live.remove(), StudentModel.live_seq.remove(),
                                   StudentModel.holder.remove()],
                          condition=(StudentModel.status == student.status)
                          & StudentModel.registration_id.does_not_exist())
                tx.update(self.t.workshops(student.workshop_id), actions=[WorkshopModel.seats_free.add(1)])
        except TransactWriteError:
            return False
        return True
