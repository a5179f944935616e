"""The outbox on each registration: what still has to be sent, and when to retry
(docs/architecture.md, "Outbox").

An entry stays until its send succeeded, so a crash or a mail outage delays mail but
never loses it. A sender first takes the lease (``outbox_lease``, conditionally), so two
senders never work on one registration at once; and it removes only the entries it sent, so
entries queued meanwhile are kept. The lease is apart from the retry time (``outbox_due_at``,
which the time checks query): a state change delivers what it owes at once even while earlier
entries wait for their retry.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from pynamodb.exceptions import UpdateError
from pynamodb.expressions.update import Action

from chalicelib.domain.errors import Unavailable
from chalicelib.domain.outbox import ORDER, OUTBOX_PENDING, Entry, parse
from chalicelib.domain.values import Registration
from chalicelib.observability import logger
from chalicelib.store import values
from chalicelib.store.errors import translated
from chalicelib.store.models import RegistrationModel
from chalicelib.store.tables import Tables

PENDING = OUTBOX_PENDING
SETTLE_ATTEMPTS = 5
LOOK_AHEAD = 300  # lease_due reads this many due keys past its batch to find the orders among them


def queue_actions(entries: Sequence[Entry], now: datetime) -> list[Action]:
    """Update actions that append outbox entries; they are due now unless a retry time is already
    set (the holder of a lease leaves them due when it is done). No entries: no actions."""
    if not entries:
        return []
    return [RegistrationModel.outbox.set((RegistrationModel.outbox | []).append([e.format() for e in entries])),
            RegistrationModel.outbox_state.set(PENDING),
            RegistrationModel.outbox_due_at.set(RegistrationModel.outbox_due_at | now)]


def _readable(stored: str) -> bool:
    try:
        parse(stored)
    except ValueError:
        logger.error("unreadable outbox entry dropped", extra={"entry": stored[:100]})
        return False
    return True


def _is_order(stored: str) -> bool:
    try:
        return parse(stored).kind == ORDER
    except ValueError:
        return False


def _stands_for(stored: str, entry: Entry) -> bool:
    """Whether a stored string is ``entry``: the same text, or an older spelling of it."""
    if stored == entry.format():
        return True
    try:
        return parse(stored) == entry
    except ValueError:
        return False


class Outbox:
    def __init__(self, tables: Tables):
        self.t = tables

    def owing(self, record: dict[str, Any], now: datetime) -> tuple[Registration, bool] | None:
        """The registration a stream record shows written, if it owes delivery now, and whether
        entries were just added (else its retry time came: a sender's settle left it due at once).
        Owing: its outbox is pending and nobody holds the lease. The record is DynamoDB's
        (``eventName``, ``dynamodb.NewImage``/``OldImage``)."""
        images = record.get("dynamodb") or {}
        new, old = images.get("NewImage"), images.get("OldImage") or {}
        if record.get("eventName") == "REMOVE" or not new:
            return None
        item = RegistrationModel.from_raw_data(new)
        if item.outbox_state != PENDING or not item.outbox:
            return None
        if item.outbox_lease is not None and item.outbox_lease > now:
            return None  # its holder sends it
        before = {value.get("S") for value in (old.get("outbox") or {}).get("L", [])}
        added = any(str(stored) not in before for stored in item.outbox)
        if not added and item.outbox_due_at is not None and item.outbox_due_at > now:
            return None  # waiting for its retry time
        return values.registration(item), added

    @translated
    def lease(self, registration_id: str, now: datetime, duration: timedelta) -> Registration | None:
        """Take the lease on one registration's outbox; None when it is empty or someone holds it.
        A retry time still in the future does not stop it: the caller has something new to send."""
        item = self.t.customers(registration_id)
        free = RegistrationModel.outbox_lease.does_not_exist() | (RegistrationModel.outbox_lease < now)
        try:
            item.update(
                actions=[RegistrationModel.outbox_due_at.set(now + duration),
                         RegistrationModel.outbox_lease.set(now + duration)],
                condition=(RegistrationModel.outbox_state == PENDING) & free,
            )
        except UpdateError:
            return None
        return values.registration(item)

    @translated
    def lease_due(self, now: datetime, duration: timedelta, limit: int = 50) -> list[Registration]:
        """Take the lease on up to ``limit`` registrations whose outbox is due (only the winner of
        each gets it): among the oldest due, those owing an order first."""
        keys = [key.id for key in self.t.customers.outbox_index.query(
            PENDING, RegistrationModel.outbox_due_at <= now, limit=limit + LOOK_AHEAD)]
        if len(keys) > limit:
            urgent = {item.id for item in self.t.customers.batch_get(keys, attributes_to_get=["id", "outbox"])
                      if any(_is_order(str(stored)) for stored in item.outbox or [])}
            keys.sort(key=lambda key: key not in urgent)  # stable: the oldest first within each kind
        leased: list[Registration] = []
        for key in keys:
            if len(leased) == limit:
                break
            registration = self.lease(key, now, duration)
            if registration is not None:
                leased.append(registration)
        return leased

    @translated
    def settle(self, registration_id: str, sent: list[Entry], now: datetime, retry_in: timedelta,
               error: str | None, expected: list[Entry] | None = None) -> None:
        """Remove what was sent (and nothing queued meanwhile); schedule the rest.

        ``expected``: the outbox as the sender read it; the first try writes on that, unread
        (conditional on it still being so), and reads only if it changed."""
        for attempt in range(SETTLE_ATTEMPTS):
            if attempt == 0 and expected:
                current = self.t.customers(registration_id, outbox=[entry.format() for entry in expected])
            else:
                current = self.t.customers.get(registration_id, consistent_read=True)
            # the stored strings; one that no longer parses can never be sent: it goes
            remaining: list[Any] = [stored for stored in current.outbox or [] if _readable(str(stored))]
            for entry in sent:
                match = next((stored for stored in remaining if _stands_for(stored, entry)), None)
                if match is not None:
                    remaining.remove(match)
            actions: list[Action]
            if remaining:
                actions = [
                    RegistrationModel.outbox.set(remaining),
                    RegistrationModel.outbox_due_at.set(now + retry_in if error else now),
                    RegistrationModel.outbox_attempts.add(1) if error else RegistrationModel.outbox_attempts.set(0),
                    RegistrationModel.outbox_error.set(error) if error else RegistrationModel.outbox_error.remove(),
                    RegistrationModel.outbox_lease.remove(),
                ]
            else:
                actions = [
                    RegistrationModel.outbox.remove(),
                    RegistrationModel.outbox_state.remove(),
                    RegistrationModel.outbox_due_at.remove(),
                    RegistrationModel.outbox_error.remove(),
                    RegistrationModel.outbox_attempts.set(0),
                    RegistrationModel.outbox_lease.remove(),
                ]
            unchanged = (RegistrationModel.outbox == current.outbox if current.outbox is not None
                         else RegistrationModel.outbox.does_not_exist())
            try:
                current.update(actions=actions, condition=unchanged)
                return
            except UpdateError:
                continue  # an entry was queued meanwhile: read again
        raise Unavailable(f"the outbox of {registration_id} keeps changing; its lease expiry retries it")
