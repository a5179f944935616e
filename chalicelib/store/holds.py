"""Unconfirmed holds: a new registration's seat (or waitlist place) held until its email address
confirms it, then either confirmed or given back. Each change is one conditional write, so a
double click, a confirmation racing the time checks, or two overlapping ticks change things once.

A seat hold has a student (``reserved``, the counter already down by one) and the email guard; a
waitlist hold has its waitlist number but stays out of the waitlist index until confirmed.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from pynamodb.exceptions import TransactWriteError, UpdateError
from pynamodb.expressions.update import Action
from pynamodb.transactions import TransactWrite

from chalicelib.domain.lifecycle import DUE_PROVISIONING
from chalicelib.domain.outbox import Entry
from chalicelib.domain.registration import EXPIRED, PENDING, UNCONFIRMED, WAITLISTED, personal_data_expiry
from chalicelib.domain.values import Registration
from chalicelib.store import values
from chalicelib.store.errors import translated
from chalicelib.store.models import EmailClaimModel, RegistrationModel
from chalicelib.store.outbox import queue_actions
from chalicelib.store.seats import return_seat
from chalicelib.store.tables import Tables


class Holds:
    def __init__(self, tables: Tables):
        self.t = tables

    @translated
    def confirm(self, reg: Registration, now: datetime, stuck_after: timedelta, seated_outbox: Sequence[Entry],
                waitlisted_outbox: Sequence[Entry]) -> Registration | None:
        """The hold becomes what a new registration is without confirmation: ``pending`` with its
        provisioning deadline (a seat) or ``waitlisted`` in the index (a place), and owes what that
        one owes. None when it is no longer an unexpired hold (confirmed or released meanwhile)."""
        actions: list[Action]
        if reg.student_id:
            actions = [RegistrationModel.status.set(PENDING), RegistrationModel.due_state.set(DUE_PROVISIONING),
                       RegistrationModel.due_at.set(now + stuck_after), *queue_actions(seated_outbox, now)]
        else:
            actions = [RegistrationModel.status.set(WAITLISTED),
                       RegistrationModel.waitlist_workshop.set(reg.workshop_id),
                       RegistrationModel.due_state.remove(), RegistrationModel.due_at.remove(),
                       *queue_actions(waitlisted_outbox, now)]
        item = self.t.customers(reg.id)
        try:
            item.update(actions=[*actions, RegistrationModel.confirm_by.remove()],
                        condition=(RegistrationModel.status == UNCONFIRMED) & (RegistrationModel.confirm_by > now))
        except UpdateError:
            return None
        return values.registration(item)  # as the update left it (the whole item comes back)

    @translated
    def release(self, reg: Registration, now: datetime) -> bool:
        """An expired hold closes (``expired``) and gives back what it held, in one transaction: a
        seat like any ending registration (student free, counter up, email guard gone; a warm
        server stays warm), a waitlist place by leaving the guard. False when it is no longer a
        hold past its time (confirmed, or released by someone else)."""
        try:
            with TransactWrite(connection=self.t.connection) as tx:
                tx.update(self.t.customers(reg.id), actions=[
                    RegistrationModel.status.set(EXPIRED), RegistrationModel.finished_at.set(now),
                    RegistrationModel.ttl.set(personal_data_expiry(now)),
                    RegistrationModel.due_state.remove(), RegistrationModel.due_at.remove(),
                    RegistrationModel.waitlist_seq.remove()],
                    condition=(RegistrationModel.status == UNCONFIRMED) & (RegistrationModel.confirm_by <= now))
                if reg.student_id:
                    return_seat(tx, self.t, reg, keep_warm=True)
                else:
                    tx.delete(self.t.emails(reg.guard_key), condition=EmailClaimModel.registration_id == reg.id)
        except TransactWriteError:
            return False
        return True
