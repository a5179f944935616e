"""Webhook rules: which events exist, what a valid hook is, how a delivery is signed and when a
failed one is tried again.

A receiver checks ``X-WOD-Signature: sha256=<hex>``, the HMAC-SHA256 of
``"<X-WOD-Timestamp>.<raw body>"`` keyed with the hook's secret, and refuses old timestamps.
"""
from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from chalicelib.domain.errors import InvalidInput

EVENTS = ("registered", "provisioned", "reminder_sent", "extended", "finished", "failed")
PING = "ping"  # sent by the "test" action only
URL_MAX = 2000
DESCRIPTION_MAX = 200
MAX_ATTEMPTS = 6  # then the delivery is marked failed
TIMEOUT_SECONDS = 5


def validate_hook(data: Any) -> tuple[str, list[str], str]:
    """``{url, events?, description?}`` -> (url, events, description); every problem named."""
    if not isinstance(data, dict):
        raise InvalidInput({"body": "Expected a JSON object."})
    errors: dict[str, str] = {}
    url = data.get("url")
    if not isinstance(url, str) or not url.strip():
        errors["url"] = "Give the URL that receives the events."
    else:
        url = url.strip()
        problem = _url_problem(url)
        if problem:
            errors["url"] = problem
    events = data.get("events") or list(EVENTS)
    if isinstance(events, str):
        events = [e.strip() for e in events.split(",") if e.strip()]
    if not isinstance(events, list) or not events or any(e not in EVENTS for e in events):
        errors["events"] = f"Choose events among: {', '.join(EVENTS)}."
    description = data.get("description") or ""
    if not isinstance(description, str) or len(description) > DESCRIPTION_MAX \
            or any(ord(ch) < 32 or ch in "<>" for ch in description):
        errors["description"] = f"Plain text, at most {DESCRIPTION_MAX} characters."
    if errors:
        raise InvalidInput(errors)
    return url, [e for e in EVENTS if e in events], description.strip()


def _url_problem(url: str) -> str | None:
    if len(url) > URL_MAX:
        return f"At most {URL_MAX} characters."
    if any(ord(ch) < 33 or ord(ch) == 127 for ch in url):
        return "No spaces or control characters."
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises on a malformed port)
    except ValueError:
        return "Not a valid URL."
    if parts.scheme not in ("http", "https"):
        return "Only http:// and https:// URLs."
    if not parts.hostname:
        return "The URL needs a host."
    if parts.username is not None or parts.password is not None:
        return "No credentials in the URL: the signature authenticates each delivery."
    if parts.fragment:
        return "No #fragment."
    return None


def signature(secret: str, timestamp: int, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def delivery_headers(event: str, delivery_id: str, secret: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": "Workshops-on-Demand-Webhooks/1",
        "X-WOD-Event": event,
        "X-WOD-Delivery": delivery_id,
        "X-WOD-Timestamp": str(timestamp),
        "X-WOD-Signature": signature(secret, timestamp, body),
    }


def retry_delay(attempts: int) -> timedelta | None:
    """After ``attempts`` failed tries: wait 1, 2, 4, 8, 16 minutes, then give up."""
    if attempts >= MAX_ATTEMPTS:
        return None
    return timedelta(minutes=2 ** (attempts - 1))
