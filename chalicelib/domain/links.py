"""A participant's secret action token: what their own links (status page, extend, reset, end,
leave) carry. The registration id is public (webhooks, CSV, audit, dashboard); the token is the id
with a MAC under the platform's link key, so it is checked without a read and never stored.

A verifiable badge's link carries a token of the same form for another purpose (``credential``): it
shows that credential and opens nothing else, and no action token is one."""
from __future__ import annotations

import base64
import hashlib
import hmac

MAC_LENGTH = 32  # base64url characters: 192 bits
PURPOSES = {"participant": "wod-participant", "credential": "wod-credential"}


def _mac(key: bytes, registration_id: str, purpose: str = "participant") -> str:
    digest = hmac.new(key, f"{PURPOSES[purpose]}:{registration_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode()[:MAC_LENGTH]


def action_token(key: bytes, registration_id: str, purpose: str = "participant") -> str:
    return f"{registration_id}.{_mac(key, registration_id, purpose)}"


def registration_of(key: bytes, token: str, purpose: str = "participant") -> str | None:
    """The registration id a token was made for; None when the token is not one of ours (a bare
    registration id, a changed id, a MAC under another key or for another purpose)."""
    if not token.isascii():  # ours are; compare_digest and the MAC refuse some others (a hostile URL)
        return None
    registration_id, dot, mac = token.rpartition(".")
    if not dot or not registration_id or len(mac) != MAC_LENGTH:
        return None
    return registration_id if hmac.compare_digest(mac, _mac(key, registration_id, purpose)) else None
