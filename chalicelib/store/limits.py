"""Fixed-window rate counters, one item per scope, value and minute in the nonces table (which
expires them by TTL): one conditional update per request, shared by every function."""
from __future__ import annotations

import hashlib

from pynamodb.exceptions import UpdateError

from chalicelib.store.errors import translated
from chalicelib.store.models import NonceModel
from chalicelib.store.tables import Tables


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
