"""Webhooks: URLs an organiser registers to follow registrations (a CRM, a chat channel).

A registration's events reach here as outbox entries (``webhook:<event>``): the dispatcher
calls :func:`emit`, which only writes a pending delivery per hook that follows the event — fast,
no HTTP in a participant's request, and it never fails its caller. The time checks send what is due
(:func:`deliver_due`), signed, and retry failures with backoff; every attempt is logged on the
delivery.
"""
from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from chalicelib.adapters import webhooks as http
from chalicelib.domain import webhooks as rules
from chalicelib.domain.errors import InvalidInput, NotFound, WodError
from chalicelib.domain.reports import iso, registration_record
from chalicelib.domain.values import Delivery, Hook, Registration
from chalicelib.observability import logger
from chalicelib.services.audit import audited
from chalicelib.services.context import Context
from chalicelib.store.organiser import time_key

HOOK_ID = re.compile(r"^[0-9a-f]{16}$")
HOOKS_CACHE_SECONDS = 10.0  # how long a process may miss a hook created by another one
LEASE = timedelta(seconds=60)
RETENTION = timedelta(days=30)
BATCH = 50
TICK_BUDGET_SECONDS = 20.0  # a tick stops starting deliveries after this; the next takes the rest
Poster = Callable[[str, bytes, dict, float, bool], http.Attempt]  # url, body, headers, timeout, public_only

_subscriptions: dict[str, tuple[float, list[tuple[str, list[str]]]]] = {}


def _followers(ctx: Context, event: str) -> list[str]:
    prefix = ctx.settings.table_prefix
    cached = _subscriptions.get(prefix)
    if cached is None or time.monotonic() - cached[0] > HOOKS_CACHE_SECONDS:
        cached = (time.monotonic(), [(h.id, list(h.events)) for h in ctx.stores.webhooks.hooks()])
        _subscriptions[prefix] = cached
    return [hook_id for hook_id, events in cached[1] if event in events]


def _queue(ctx: Context, hook_ids: list[str], event: str, body: dict[str, Any], now: datetime) -> list[Delivery]:
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    expires = int((now + RETENTION).timestamp())
    return [ctx.stores.webhooks.add_delivery(hook_id, time_key(), event, text, now, expires) for hook_id in hook_ids]


def emit(ctx: Context, event: str, reg: Registration) -> int:
    """Queue ``event`` about a registration for every hook that follows it; return how many.

    Called by the outbox dispatcher: a storage failure raises, so the entry stays and is retried
    (a retry after a partial failure may queue the event again for the hooks already served)."""
    followers = _followers(ctx, event)
    if followers:
        now = ctx.clock()
        _queue(ctx, followers, event, {"event": event, "occurred_at": now.isoformat(),
                                       "registration": registration_record(reg)}, now)
    return len(followers)


def emit_live(ctx: Context, event: str, registration_id: str, detail: dict[str, Any]) -> int:
    """Queue a live-room event (a check's result, a raised hand) about a registration for every
    hook that follows it; return how many. Never fails its caller: the events that brought it
    are already stored, and a hook missing one is logged."""
    try:
        followers = _followers(ctx, event)
        if not followers:
            return 0
        reg = ctx.stores.registrations.get(registration_id)
        now = ctx.clock()
        _queue(ctx, followers, event, {"event": event, "occurred_at": now.isoformat(),
                                       "registration": registration_record(reg), **detail}, now)
    except WodError as exc:
        logger.warning("a live event was not queued for its webhooks",
                       extra={"event": event, "registration": registration_id, "error": exc.message})
        return 0
    return len(followers)


def _attempt(ctx: Context, delivery: Delivery, post: Poster) -> bool:
    """One try of a leased delivery, recorded on it."""
    now = ctx.clock()
    store = ctx.stores.webhooks
    try:
        hook = store.get_hook(delivery.hook_id)
    except NotFound:
        store.settle(delivery, now, None, "the webhook was deleted", False, None)
        return False
    body = delivery.body.encode()
    # the timestamp is wall time: the receiver checks freshness against its own clock
    headers = rules.delivery_headers(delivery.event, delivery.id, hook.secret, int(time.time()), body)
    result = post(hook.url, body, headers, rules.TIMEOUT_SECONDS, not _local(ctx))
    delay = None if result.delivered else rules.retry_delay(delivery.attempts + 1)
    if not store.settle(delivery, now, result.code, result.error, result.delivered, now + delay if delay else None):
        logger.warning("webhook lease ran out before the attempt was recorded; another sender has it",
                       extra={"delivery": delivery.id})
    logger.info("webhook delivered" if result.delivered else "webhook delivery failed",
                extra={"hook": hook.id, "delivery": delivery.id, "event": delivery.event, "code": result.code,
                       "error": result.error, "retry": bool(delay)})
    return result.delivered


def deliver_due(ctx: Context, post: Poster = http.post) -> int:
    """Send every delivery whose time has come (first tries and retries); return how many were tried.
    A storage failure stops this round only: the leases expire and the next round takes over."""
    started, tried = time.monotonic(), 0
    try:
        for key in ctx.stores.webhooks.due(ctx.clock(), BATCH):
            if time.monotonic() - started > TICK_BUDGET_SECONDS:
                break
            delivery = ctx.stores.webhooks.lease(key, ctx.clock(), LEASE)
            if delivery is not None:
                _attempt(ctx, delivery, post)
                tried += 1
    except WodError as exc:
        logger.warning("webhook deliveries interrupted", extra={"error": exc.message, "tried": tried})
    return tried


def hook_view(hook: Hook) -> dict[str, Any]:
    return {"id": hook.id, "url": hook.url, "events": list(hook.events), "description": hook.description or "",
            "created_at": iso(hook.created_at), "secret_hint": hook.secret[:10] + "…"}


def delivery_view(d: Delivery) -> dict[str, Any]:
    return {"id": d.id, "event": d.event, "status": d.status, "attempts": d.attempts,
            "last_code": int(d.last_code) if d.last_code is not None else None, "last_error": d.last_error,
            "created_at": iso(d.created_at), "last_attempt_at": iso(d.last_attempt_at),
            "delivered_at": iso(d.delivered_at), "next_attempt_at": iso(d.due_at)}


def _hook(ctx: Context, hook_id: str) -> Hook:
    if not HOOK_ID.match(hook_id or ""):
        raise NotFound("There is no webhook with this id.")
    return ctx.stores.webhooks.get_hook(hook_id)


def listing(ctx: Context) -> list[dict[str, Any]]:
    return [hook_view(h) for h in ctx.stores.webhooks.hooks()]


def detail(ctx: Context, hook_id: str, limit: int = 50) -> dict[str, Any]:
    hook = _hook(ctx, hook_id)
    return hook_view(hook) | {"deliveries": [delivery_view(d) for d in ctx.stores.webhooks.deliveries(hook.id, limit)]}


def _local(ctx: Context) -> bool:
    """Local mode sends to http and loopback receivers too; every other stage to public https only."""
    return ctx.settings.stage == "local"


def create(ctx: Context, actor: str, data: Any) -> dict[str, Any]:
    """A new hook; its signing secret is in this answer and never again."""
    with audited(ctx, actor, "webhook.create", "new webhook") as record:
        url, events, description = rules.validate_hook(data, local=_local(ctx))
        problem = None if _local(ctx) else http.destination_problem(url)
        if problem:
            raise InvalidInput({"url": problem})
        record.target, record["events"] = url, events
        secret = "whsec_" + secrets.token_urlsafe(32)
        hook = ctx.stores.webhooks.add_hook(secrets.token_hex(8), url, events, description, secret, ctx.clock())
        record["hook"] = hook.id
    _subscriptions.pop(ctx.settings.table_prefix, None)
    return hook_view(hook) | {"secret": secret}


def remove(ctx: Context, actor: str, hook_id: str) -> None:
    with audited(ctx, actor, "webhook.delete", hook_id) as record:
        record["url"] = _hook(ctx, hook_id).url
        ctx.stores.webhooks.delete_hook(hook_id)
    _subscriptions.pop(ctx.settings.table_prefix, None)


def ping(ctx: Context, actor: str, hook_id: str, post: Poster = http.post) -> dict[str, Any]:
    """Send a ``ping`` event to one hook now (retried like any other delivery if it fails)."""
    with audited(ctx, actor, "webhook.test", hook_id) as record:
        hook = _hook(ctx, hook_id)
        now = ctx.clock()
        queued = _queue(ctx, [hook.id], rules.PING, {"event": rules.PING, "occurred_at": now.isoformat(),
                                                     "hook": hook.id}, now)[0]
        delivery = ctx.stores.webhooks.lease(queued, now, LEASE)
        record["delivered"] = delivery is not None and _attempt(ctx, delivery, post)
    return detail(ctx, hook_id)
