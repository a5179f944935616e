"""Webhook rules: which events exist, what a valid hook is, how a delivery is signed and when a
failed one is tried again.

A receiver checks ``X-WOD-Signature: sha256=<hex>``, the HMAC-SHA256 of
``"<X-WOD-Timestamp>.<raw body>"`` keyed with the hook's secret, and refuses old timestamps.

Outside local mode a hook must be https and reach public addresses only: never loopback,
link-local (the instance metadata endpoint among them), private, shared, reserved, multicast or
unspecified ones. Local mode takes http and loopback receivers (a receiver on the same machine).
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.lifecycle import WEBHOOK_EVENTS

REGISTRATION_EVENTS = WEBHOOK_EVENTS  # what a change of a registration owes (domain/lifecycle.py)
# during a workshop (the live room): a check's result, a raised hand; a hook follows them only when asked
LIVE_EVENTS = ("check", "help_requested")
EVENTS = REGISTRATION_EVENTS + LIVE_EVENTS
PING = "ping"  # sent by the "test" action only
URL_MAX = 2000
DESCRIPTION_MAX = 200
MAX_ATTEMPTS = 6  # then the delivery is marked failed
TIMEOUT_SECONDS = 5
HTTPS_ONLY = "Only https:// URLs (http:// is for local mode)."


def validate_hook(data: Any, local: bool = False) -> tuple[str, list[str], str]:
    """``{url, events?, description?}`` -> (url, events, description); every problem named. The
    URL's form only: where its host resolves to is checked by the caller (:func:`address_problem`
    on every address) outside ``local`` mode."""
    if not isinstance(data, dict):
        raise InvalidInput({"body": "Expected a JSON object."})
    errors: dict[str, str] = {}
    url = data.get("url")
    url = url.strip() if isinstance(url, str) else ""
    if not url:
        errors["url"] = "Give the URL that receives the events."
    else:
        problem = _url_problem(url, local)
        if problem:
            errors["url"] = problem
    events = data.get("events") or list(REGISTRATION_EVENTS)
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


def _url_problem(url: str, local: bool) -> str | None:
    if len(url) > URL_MAX:
        return f"At most {URL_MAX} characters."
    if any(ord(ch) < 33 or ord(ch) == 127 for ch in url):
        return "No spaces or control characters."
    try:
        parts = urlsplit(url)
        _ = parts.port  # the property raises ValueError on a malformed port
    except ValueError:
        return "Not a valid URL."
    if parts.scheme not in ("http", "https"):
        return "Only http:// and https:// URLs." if local else HTTPS_ONLY
    if parts.scheme != "https" and not local:
        return HTTPS_ONLY
    if not parts.hostname:
        return "The URL needs a host."
    if parts.username is not None or parts.password is not None:
        return "No credentials in the URL: the signature authenticates each delivery."
    if parts.fragment:
        return "No #fragment."
    if not local:
        try:  # an address written in the URL is checked here; a name once resolved
            ipaddress.ip_address(parts.hostname)
        except ValueError:
            return None
        return address_problem(parts.hostname, parts.hostname)
    return None


def address_problem(host: str, address: str) -> str | None:
    """Why a webhook may not go to ``address`` (one of ``host``'s), or None for a public one."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 zone ("fe80::1%eth0") aside
    except ValueError:
        return f"{host} resolves to {address}, which is not an IP address."
    if isinstance(ip, ipaddress.IPv6Address):  # an IPv4 address in IPv6 clothes is judged as IPv4
        ip = ip.ipv4_mapped or ip.sixtofour or ip
    kind = ("loopback" if ip.is_loopback else "link-local" if ip.is_link_local else "multicast" if ip.is_multicast
            else "unspecified" if ip.is_unspecified else "reserved" if ip.is_reserved
            else "private" if ip.is_private else "non-public" if not ip.is_global else None)
    if kind is None:
        return None
    where = "is" if host == address else f"resolves to {ip}, which is"
    article = "an" if kind[0] in "aeiou" else "a"
    return f"{host} {where} {article} {kind} address: webhooks are sent to public addresses only."


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
