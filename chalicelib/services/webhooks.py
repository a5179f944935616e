"""Webhooks: URLs an organiser registers to follow registrations (a CRM, a chat channel).

:func:`emit` only writes a pending delivery per hook that follows the event — fast, no HTTP in
a participant's request, and it never fails its caller. The time checks send what is due
(:func:`deliver_due`), signed, and retry failures with backoff; every attempt is logged on the
delivery.
"""
from __future__ import annotations

import json
import re
import secrets
import time
from datetime import datetime, timedelta
from typing import Any, Callable

from chalicelib.adapters import webhooks as http
from chalicelib.services.audit import audited
from chalicelib.services.context import Context, current
from chalicelib.domain import webhooks as rules
from chalicelib.domain.errors import InvalidInput, NotFound, WodError
from chalicelib.observability import logger
from chalicelib.store import webhooks as store
from chalicelib.store.organiser import iso, registration_record, time_key
from chalicelib.store.models import AdminModel, RegistrationModel

HOOK_ID = re.compile(r"^[0-9a-f]{16}$")
HOOKS_CACHE_SECONDS = 10.0  # how long a process may miss a hook created by another one
LEASE = timedelta(seconds=60)
RETENTION = timedelta(days=30)
BATCH = 50
TICK_BUDGET_SECONDS = 20.0  # a tick stops starting deliveries after this; the next takes the rest
Poster = Callable[[str, bytes, dict, float, bool], http.Attempt]  # url, body, headers, timeout, public_only

_subscriptions: dict[str, tuple[float, list[tuple[str, list[str]]]]] = {}


def _followers(context: Context, event: str) -> list[str]:
    prefix = context.settings.table_prefix
    cached = _subscriptions.get(prefix)
    if cached is None or time.monotonic() - cached[0] > HOOKS_CACHE_SECONDS:
        cached = (time.monotonic(), [(h.sk, list(h.events or [])) for h in store.hooks()])
        _subscriptions[prefix] = cached
    return [hook_id for hook_id, events in cached[1] if event in events]


def _queue(hook_ids: list[str], event: str, body: dict[str, Any], now: datetime) -> list[AdminModel]:
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    expires = int((now + RETENTION).timestamp())
    return [store.add_delivery(hook_id, time_key(), event, text, now, expires) for hook_id in hook_ids]


def emit(event: str, reg: RegistrationModel, context: Context | None = None) -> int:
    """Queue ``event`` about a registration for every hook that follows it; return how many."""
    context = context or current()
    try:
        followers = _followers(context, event)
        if followers:
            now = context.clock()
            _queue(followers, event, {"event": event, "occurred_at": now.isoformat(),
                                      "registration": registration_record(reg)}, now)
    except WodError as exc:
        logger.warning("webhook event not queued", extra={"event": event, "registration": reg.id,
                                                          "error": exc.message})
        return 0
    return len(followers)


def _attempt(delivery: AdminModel, context: Context, post: Poster) -> bool:
    """One try of a leased delivery, recorded on it."""
    now = context.clock()
    try:
        hook = store.get_hook(delivery.hook_id)
    except NotFound:
        store.settle(delivery, now, None, "the webhook was deleted", False, None)
        return False
    body = delivery.body.encode()
    # the timestamp is wall time: the receiver checks freshness against its own clock
    headers = rules.delivery_headers(delivery.event, delivery.sk, hook.secret, int(time.time()), body)
    result = post(hook.url, body, headers, rules.TIMEOUT_SECONDS, not _local(context))
    delay = None if result.delivered else rules.retry_delay(int(delivery.attempts or 0) + 1)
    if not store.settle(delivery, now, result.code, result.error, result.delivered, now + delay if delay else None):
        logger.warning("webhook lease ran out before the attempt was recorded; another sender has it",
                       extra={"delivery": delivery.sk})
    logger.info("webhook delivered" if result.delivered else "webhook delivery failed",
                extra={"hook": hook.sk, "delivery": delivery.sk, "event": delivery.event, "code": result.code,
                       "error": result.error, "retry": bool(delay)})
    return result.delivered


def deliver_due(context: Context | None = None, post: Poster = http.post) -> int:
    """Send every delivery whose time has come (first tries and retries); return how many were tried.
    A storage failure stops this round only: the leases expire and the next round takes over."""
    context = context or current()
    started, tried = time.monotonic(), 0
    try:
        for key in store.due(context.clock(), BATCH):
            if time.monotonic() - started > TICK_BUDGET_SECONDS:
                break
            delivery = store.lease(key, context.clock(), LEASE)
            if delivery is not None:
                _attempt(delivery, context, post)
                tried += 1
    except WodError as exc:
        logger.warning("webhook deliveries interrupted", extra={"error": exc.message, "tried": tried})
    return tried


def hook_view(hook: AdminModel) -> dict[str, Any]:
    return {"id": hook.sk, "url": hook.url, "events": list(hook.events or []), "description": hook.description or "",
            "created_at": iso(hook.at), "secret_hint": hook.secret[:10] + "…"}


def delivery_view(d: AdminModel) -> dict[str, Any]:
    return {"id": d.sk, "event": d.event, "status": d.status, "attempts": int(d.attempts or 0),
            "last_code": int(d.last_code) if d.last_code is not None else None, "last_error": d.last_error,
            "created_at": iso(d.at), "last_attempt_at": iso(d.last_attempt_at),
            "delivered_at": iso(d.delivered_at), "next_attempt_at": iso(d.delivery_due_at)}


def _hook(hook_id: str) -> AdminModel:
    current()
    if not HOOK_ID.match(hook_id or ""):
        raise NotFound("There is no webhook with this id.")
    return store.get_hook(hook_id)


def listing() -> list[dict[str, Any]]:
    current()
    return [hook_view(h) for h in store.hooks()]


def detail(hook_id: str, limit: int = 50) -> dict[str, Any]:
    hook = _hook(hook_id)
    return hook_view(hook) | {"deliveries": [delivery_view(d) for d in store.deliveries(hook.sk, limit)]}


def _local(context: Context) -> bool:
    """Local mode sends to http and loopback receivers too; every other stage to public https only."""
    return context.settings.stage == "local"


def create(actor: str, data: Any) -> dict[str, Any]:
    """A new hook; its signing secret is in this answer and never again."""
    context = current()
    with audited(actor, "webhook.create", "new webhook") as record:
        url, events, description = rules.validate_hook(data, local=_local(context))
        problem = None if _local(context) else http.destination_problem(url)
        if problem:
            raise InvalidInput({"url": problem})
        record.target, record["events"] = url, events
        secret = "whsec_" + secrets.token_urlsafe(32)
        hook = store.add_hook(secrets.token_hex(8), url, events, description, secret, context.clock())
        record["hook"] = hook.sk
    _subscriptions.pop(context.settings.table_prefix, None)
    return hook_view(hook) | {"secret": secret}


def remove(actor: str, hook_id: str) -> None:
    context = current()
    with audited(actor, "webhook.delete", hook_id) as record:
        record["url"] = _hook(hook_id).url
        store.delete_hook(hook_id)
    _subscriptions.pop(context.settings.table_prefix, None)


def ping(actor: str, hook_id: str, post: Poster = http.post) -> dict[str, Any]:
    """Send a ``ping`` event to one hook now (retried like any other delivery if it fails)."""
    context = current()
    with audited(actor, "webhook.test", hook_id) as record:
        hook = _hook(hook_id)
        now = context.clock()
        queued = _queue([hook.sk], rules.PING, {"event": rules.PING, "occurred_at": now.isoformat(),
                                                "hook": hook.sk}, now)[0]
        delivery = store.lease(queued, now, LEASE)
        record["delivered"] = bool(delivery) and _attempt(delivery, context, post)
    return detail(hook_id)
