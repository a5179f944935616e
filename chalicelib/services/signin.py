"""Organiser sign-in: dashboard sessions kept server-side, so signing out ends a session for good
(its cookie, replayed, opens nothing), and failed sign-ins (a wrong admin token, on the dashboard or
the API) written to the audit log and throttled per client address: past
:data:`FAILURES_PER_CLIENT` in :data:`FAILURE_WINDOW_SECONDS`, that address is answered 429 without
its token being looked at until the window ends."""
from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime

from chalicelib import observability
from chalicelib.domain.errors import RateLimited
from chalicelib.domain.registration import client_key
from chalicelib.services import audit
from chalicelib.services.context import Context

FAILURES_PER_CLIENT = 10
FAILURE_WINDOW_SECONDS = 900


def _key(session_id: str) -> str:
    return hashlib.sha256(f"wod-admin-session:{session_id}".encode()).hexdigest()


def _client(client: str | None) -> str:
    return client_key(client) if client else "-"


def throttled(ctx: Context, client: str | None) -> None:
    """RateLimited while ``client`` has used up its failed sign-ins of the window."""
    wait = ctx.stores.limits.over("admin-sign-in", _client(client), FAILURES_PER_CLIENT, time.time(),
                                  FAILURE_WINDOW_SECONDS)
    if wait is not None:
        observability.count("AdminSignInThrottled")
        raise RateLimited(f"Too many failed sign-ins from your network; try again in {wait} seconds.", wait)


def failed(ctx: Context, actor: str, client: str | None, via: str) -> None:
    """A wrong admin token: counted against the client address and written to the audit log."""
    ctx.stores.limits.hit("admin-sign-in", _client(client), FAILURES_PER_CLIENT, time.time(), FAILURE_WINDOW_SECONDS)
    observability.count("AdminSignInFailed")
    audit.record(ctx, actor, "sign_in", via, "refused", {"message": "not the admin token", "client": client or "-"})


def opened(ctx: Context, session_id: str, ends: float) -> None:
    ctx.stores.organiser.open_session(_key(session_id), datetime.fromtimestamp(ends, UTC), datetime.now(UTC))


def is_open(ctx: Context, session_id: str) -> bool:
    return ctx.stores.organiser.session_open(_key(session_id), datetime.now(UTC))


def closed(ctx: Context, session_id: str) -> None:
    ctx.stores.organiser.close_session(_key(session_id))
