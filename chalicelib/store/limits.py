"""Fixed-window counters in the nonces table, shared by every function: rate limits (one item per
scope, value and window, expired by TTL; one conditional update, or one item of the claim's own
transaction: a :class:`Charge`) and the mail pacer's token budget (a ring of a few items per scope,
reused window after window)."""
from __future__ import annotations

import hashlib
from typing import Any, NamedTuple

from pynamodb.exceptions import DoesNotExist, UpdateError
from pynamodb.transactions import TransactWrite

from chalicelib.store.errors import translated
from chalicelib.store.models import NonceModel
from chalicelib.store.tables import Tables

PACE_SLOTS = 16  # windows a pacing ring holds: a sender a few windows behind still counts in its own


class Charge(NamedTuple):
    """One count of ``value`` in ``scope`` against ``limit`` per ``window`` seconds (the window of
    the wall time ``at``), taken inside the transaction of what it counts: counted only if that
    commits, refused (:class:`LimitReached`) with it when the limit is reached."""

    scope: str
    value: str
    limit: int
    window: int
    at: float


class LimitReached(Exception):
    """A charge's limit is reached: retry after ``wait`` seconds."""

    def __init__(self, scope: str, wait: int):
        super().__init__(scope)
        self.scope, self.wait = scope, wait


def _counter(tables: Tables, scope: str, value: str, now: float, window: int) -> tuple[NonceModel, int]:
    start = int(now) // window * window
    digest = hashlib.sha256(value.encode()).hexdigest()[:32]  # no address or domain stored as such
    return tables.nonces(f"rate:{scope}:{digest}:{start}"), start


def charge(tx: TransactWrite, tables: Tables, counted: Charge) -> None:
    """Add ``counted`` to ``tx``: one more, while under its limit."""
    item, start = _counter(tables, counted.scope, counted.value, counted.at, counted.window)
    tx.update(item, actions=[NonceModel.hits.add(1), NonceModel.expires.set(start + counted.window + 3600)],
              condition=NonceModel.hits.does_not_exist() | (NonceModel.hits < counted.limit))


def wait_of(counted: Charge) -> int:
    """Seconds until ``counted``'s window starts again."""
    return max(1, int(counted.at) // counted.window * counted.window + counted.window - int(counted.at))


class Limits:
    def __init__(self, tables: Tables):
        self.t = tables

    @translated
    def hit(self, scope: str, value: str, limit: int, now: float, window: int = 60) -> int | None:
        """Count one request of ``value`` in ``scope`` in the current window; None while under
        ``limit``, else the seconds until the next window."""
        item, start = _counter(self.t, scope, value, now, window)
        try:
            item.update(actions=[NonceModel.hits.add(1), NonceModel.expires.set(start + window + 3600)],
                        condition=NonceModel.hits.does_not_exist() | (NonceModel.hits < limit))
        except UpdateError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return max(1, start + window - int(now))
            raise
        return None

    @translated
    def over(self, scope: str, value: str, limit: int, now: float, window: int = 60) -> int | None:
        """Whether ``value`` has reached ``limit`` in ``scope`` in the current window (read, not
        counted): None while under, else the seconds until the next window."""
        counter, start = _counter(self.t, scope, value, now, window)
        try:
            item = self.t.nonces.get(counter.nonce, consistent_read=True)
        except DoesNotExist:
            return None
        return max(1, start + window - int(now)) if (item.hits or 0) >= limit else None

    @translated
    def spend(self, scope: str, window: int, limit: int) -> int:
        """Take one of ``limit`` tokens of ``window`` (its first second) in ``scope``: how many the
        window has given now, this one counted (0 when they are all taken). One conditional update
        while the window is open, two to open it; the ring's items are reused, so the table never
        grows (the embedded store has no TTL)."""
        if limit <= 0:
            return 0
        item = self.t.nonces(f"pace:{scope}:{window % PACE_SLOTS}")
        count = [NonceModel.hits.add(1)]
        within = (NonceModel.window == window) & (NonceModel.hits < limit)
        if self._update(item, count, within):
            return int(item.hits or 0)
        if self._update(item, [NonceModel.window.set(window), NonceModel.hits.set(1),
                               NonceModel.expires.set(window + 3600)],
                        NonceModel.window.does_not_exist() | (NonceModel.window < window)):
            return 1
        # someone else opened it meanwhile: count in it if there is room
        return int(item.hits or 0) if self._update(item, count, within) else 0

    @staticmethod
    def _update(item: NonceModel, actions: list, condition: Any) -> bool:
        try:
            item.update(actions=actions, condition=condition)
        except UpdateError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True
