"""Fixed-window counters in the nonces table, shared by every function: rate limits (one item per
scope, value and minute, expired by TTL; one conditional update per request) and the mail pacer's
token budget (a ring of a few items per scope, reused window after window)."""
from __future__ import annotations

import hashlib
from typing import Any

from pynamodb.exceptions import DoesNotExist, UpdateError

from chalicelib.store.errors import translated
from chalicelib.store.models import NonceModel
from chalicelib.store.tables import Tables

PACE_SLOTS = 16  # windows a pacing ring holds: a sender a few windows behind still counts in its own


class Limits:
    def __init__(self, tables: Tables):
        self.t = tables

    @translated
    def hit(self, scope: str, value: str, limit: int, now: float, window: int = 60) -> int | None:
        """Count one request of ``value`` in ``scope`` in the current window; None while under
        ``limit``, else the seconds until the next window."""
        start = int(now) // window * window
        digest = hashlib.sha256(value.encode()).hexdigest()[:32]  # no address or domain stored as such
        item = self.t.nonces(f"rate:{scope}:{digest}:{start}")
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
        start = int(now) // window * window
        digest = hashlib.sha256(value.encode()).hexdigest()[:32]
        try:
            item = self.t.nonces.get(f"rate:{scope}:{digest}:{start}", consistent_read=True)
        except DoesNotExist:
            return None
        return max(1, start + window - int(now)) if (item.hits or 0) >= limit else None

    @translated
    def spend(self, scope: str, window: int, limit: int) -> bool:
        """Take one of ``limit`` tokens of ``window`` (its first second) in ``scope``; False when
        they are all taken. One conditional update while the window is open, two to open it; the
        ring's items are reused, so the table never grows (the embedded store has no TTL)."""
        if limit <= 0:
            return False
        item = self.t.nonces(f"pace:{scope}:{window % PACE_SLOTS}")
        count = [NonceModel.hits.add(1)]
        within = (NonceModel.window == window) & (NonceModel.hits < limit)
        if self._update(item, count, within):
            return True
        opened = self._update(item, [NonceModel.window.set(window), NonceModel.hits.set(1),
                                     NonceModel.expires.set(window + 3600)],
                              NonceModel.window.does_not_exist() | (NonceModel.window < window))
        # someone else opened it meanwhile: count in it if there is room
        return opened or self._update(item, count, within)

    @staticmethod
    def _update(item: NonceModel, actions: list, condition: Any) -> bool:
        try:
            item.update(actions=actions, condition=condition)
        except UpdateError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True
