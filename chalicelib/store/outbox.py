"""The mail outbox on each registration: what still has to be sent, and when to retry.

An entry stays until its send succeeded, so a crash or a mail outage delays
mail but never loses it. A lease (``outbox_due_at`` in the future) keeps two
senders from working on one registration at once.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from pynamodb.exceptions import UpdateError

from chalicelib.store.errors import translated
from chalicelib.store.models import RegistrationModel

PENDING = "pending"


@translated
def lease_due(now: datetime, lease: timedelta, limit: int = 50) -> list[RegistrationModel]:
    """Take the lease on registrations whose outbox is due; only the winner of each gets it."""
    leased = []
    for key in RegistrationModel.outbox_index.query(
        PENDING, RegistrationModel.outbox_due_at <= now, limit=limit
    ):
        registration = RegistrationModel(key.id)
        try:
            registration.update(
                actions=[RegistrationModel.outbox_due_at.set(now + lease)],
                condition=(RegistrationModel.outbox_state == PENDING)
                & (RegistrationModel.outbox_due_at <= now),
            )
        except UpdateError:
            continue  # another sender took it, or it was emptied meanwhile
        leased.append(registration)
    return leased


@translated
def settle(registration: RegistrationModel, remaining: list[str], now: datetime,
           retry_in: timedelta, error: str | None) -> None:
    """Record what is left after a delivery attempt."""
    if remaining:
        actions = [
            RegistrationModel.outbox.set(remaining),
            RegistrationModel.outbox_due_at.set(now + retry_in),
            RegistrationModel.outbox_attempts.add(1),
            RegistrationModel.outbox_error.set(error or ""),
        ]
    else:
        actions = [
            RegistrationModel.outbox.remove(),
            RegistrationModel.outbox_state.remove(),
            RegistrationModel.outbox_due_at.remove(),
            RegistrationModel.outbox_error.remove(),
        ]
    registration.update(actions=actions)
