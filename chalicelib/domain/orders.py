"""Signed order emails between a frontend and its backends (docs/architecture.md, "Flows").

The body is canonical JSON; the signature is HMAC-SHA256 of the body bytes with
the shared order key, carried in the ``X-WOD-Signature`` header as ``v1=<hex>``.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import asdict, dataclass

from chalicelib.domain.errors import Forbidden

VERSION = 1
ACTIONS = ("CREATE", "CLEANUP", "RESET", "PURGE", "WARM")
# What a RESET renews: "all" (fresh notebooks and a new password) or "password" alone (the
# organiser resending credentials: the participant's notebooks are kept).
SCOPES = ("all", "password")
SIGNATURE_HEADER = "X-WOD-Signature"


class OrderRejected(Forbidden):
    """An inbound order failed a check; ``reason`` is a short machine word."""

    code = "order_rejected"

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Order:
    action: str
    workshop: str
    student: str
    registration: str
    issued_at: int
    nonce: str
    v: int = VERSION
    attempt: int = 0  # a repeated CLEANUP or RESET gets its own execution
    scope: str = "all"

    @classmethod
    def new(cls, action: str, workshop: str, student: str, registration: str, now: float,
            attempt: int = 0, scope: str = "all") -> Order:
        if action not in ACTIONS:
            raise ValueError(f"unknown order action {action!r}")
        if scope not in SCOPES or (scope != "all" and action != "RESET"):
            raise ValueError(f"scope {scope!r} does not go with {action}")
        return cls(action, workshop, student, registration, int(now), secrets.token_hex(16), attempt=attempt,
                   scope=scope)

    @property
    def subject(self) -> str:
        return f"{self.action} {self.workshop} {self.student}"

    @property
    def execution_name(self) -> str:
        """Same registration + action (+ attempt) -> same name, so a duplicate delivery starts nothing."""
        suffix = f"-{self.attempt}" if self.attempt else ""
        return f"{self.registration}-{self.action}{suffix}"

    def body(self) -> bytes:
        """Canonical JSON; the default scope is left out, so every other order reads as before."""
        data = asdict(self)
        if self.scope == "all":
            del data["scope"]
        return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def sign(body: bytes, key: bytes) -> str:
    return "v1=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def verify_order(body: bytes, signature: str | None, key: bytes, now: float, max_age: int) -> Order:
    """Return the order if its signature, freshness and shape are right, else raise."""
    if not signature:
        raise OrderRejected("missing_signature", "the order has no signature")
    if not hmac.compare_digest(signature.strip().encode(), sign(body, key).encode()):
        raise OrderRejected("bad_signature", "the order signature does not match")
    try:
        data = json.loads(body)
        order = Order(**data)
    except (ValueError, TypeError) as exc:
        raise OrderRejected("malformed", f"the order body is not a valid order: {exc}") from exc
    if order.v != VERSION:
        raise OrderRejected("version", f"unsupported order version {order.v!r}")
    if order.action not in ACTIONS:
        raise OrderRejected("unknown_action", f"unknown action {order.action!r}")
    if not isinstance(order.attempt, int) or not 0 <= order.attempt < 1000:
        raise OrderRejected("malformed", "the order attempt must be a small number")
    if order.scope not in SCOPES or (order.scope != "all" and order.action != "RESET"):
        raise OrderRejected("malformed", f"the scope {order.scope!r} does not go with {order.action}")
    if not isinstance(order.issued_at, int) or abs(now - order.issued_at) > max_age:
        raise OrderRejected("stale", "the order is too old or from the future")
    return order


def verify_signed_json(body: bytes, signature: str | None, key: bytes, now: float, max_age: int) -> dict:
    """Check a signed JSON message (the backend's callbacks) and return it."""
    if not signature or not hmac.compare_digest(signature.strip().encode(), sign(body, key).encode()):
        raise OrderRejected("bad_signature", "the signature is missing or does not match")
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise OrderRejected("malformed", "the body is not JSON") from exc
    issued = data.get("issued_at") if isinstance(data, dict) else None
    if not isinstance(issued, int) or abs(now - issued) > max_age:
        raise OrderRejected("stale", "the message is too old or from the future")
    return data
