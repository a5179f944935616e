"""Organiser sign-in: sealed (signed, expiring) session tokens naming a session id the platform
also keeps (so a session ends for good when its organiser signs out), CSRF tokens bound to a
session, signed flash messages. Every key derives from the admin token, so rotating the token
signs everyone out and voids every outstanding form."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import unicodedata
from datetime import UTC, datetime
from typing import Any

from chalicelib.domain.errors import InvalidInput

SESSION_SECONDS = 8 * 3600
ACTOR_MAX = 64
DEFAULT_API_ACTOR = "api"


def derive_key(admin_token: str, purpose: str) -> bytes:
    return hmac.new(admin_token.encode(), f"wod-admin:{purpose}".encode(), hashlib.sha256).digest()


def _mac(key: bytes, data: bytes) -> str:
    return hmac.new(key, data, hashlib.sha256).hexdigest()


def seal(key: bytes, data: dict[str, Any]) -> str:
    """``<base64url JSON>.<hex HMAC>``: readable by anyone, forgeable by nobody without the key."""
    payload = base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode().rstrip("=")
    return f"{payload}.{_mac(key, payload.encode())}"


def unseal(key: bytes, token: str | None) -> dict[str, Any] | None:
    if not token or token.count(".") != 1 or len(token) > 4096:
        return None
    payload, mac = token.split(".")
    if not hmac.compare_digest(mac.encode(), _mac(key, payload.encode()).encode()):
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def new_session(key: bytes, actor: str, now: float) -> str:
    return seal(key, {"a": actor, "e": int(now) + SESSION_SECONDS, "n": secrets.token_hex(8)})


def session_claims(key: bytes, token: str | None, now: float) -> tuple[str, str, int] | None:
    """(organiser's name, session id, end) if the token is genuine and not expired."""
    data = unseal(key, token)
    if not data or not isinstance(data.get("e"), int) or data["e"] <= now or not isinstance(data.get("a"), str) \
            or not isinstance(data.get("n"), str):
        return None
    return data["a"], data["n"], data["e"]


def csrf_token(key: bytes, session: str) -> str:
    return _mac(key, b"csrf:" + session.encode())


def csrf_ok(key: bytes, session: str, supplied: Any) -> bool:
    return isinstance(supplied, str) and hmac.compare_digest(supplied.encode(), csrf_token(key, session).encode())


def token_matches(supplied: str, admin_token: str) -> bool:
    return hmac.compare_digest(supplied.encode(), admin_token.encode())


def validate_actor(raw: Any, field: str = "name") -> str:
    """The name written into the audit log: short, printable, no markup."""
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidInput({field: "Give your name: it is written in the audit log."})
    value = unicodedata.normalize("NFC", " ".join(raw.split()))
    if len(value) > ACTOR_MAX:
        raise InvalidInput({field: f"At most {ACTOR_MAX} characters."})
    if any(unicodedata.category(ch)[0] == "C" for ch in value) or any(ch in value for ch in "<>"):
        raise InvalidInput({field: "No control characters, < or >."})
    return value


def safe_next(path: Any, default: str = "/admin") -> str:
    """Where to go after signing in or after an action: a path on the dashboard, nothing else."""
    if not isinstance(path, str) or len(path) > 1000:
        return default
    if not (path == "/admin" or path.startswith(("/admin/", "/admin?"))):
        return default
    if "//" in path or "\\" in path or "/.." in path or any(ord(ch) < 33 for ch in path):
        return default
    return path


DURATION_RANGE = (15, 480)  # minutes, as workshop.yaml allows
CAPACITY_RANGE = (1, 1000)
EXTENSION_RANGE = (5, 240)
EDITABLE = ("active", "duration_minutes", "capacity", "expected", "starts_at")
ORGANISER_ONLY = ("expected", "starts_at")  # not in the folder: null clears them
EXPECTED_RANGE = (0, 1000)
YEARS = (2000, 2999)  # a scheduled start's


DIGITS = re.compile(r"[0-9]+")


def whole_number(value: Any, low: int, high: int) -> int | None:
    """An int, or a string of ASCII digits, from ``low`` to ``high``; None otherwise (never an
    exception: ``str.isdigit`` would accept "²", which ``int`` refuses)."""
    if isinstance(value, str) and DIGITS.fullmatch(value.strip()):
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        return None
    return value


def validate_workshop_edit(data: Any) -> dict[str, Any]:
    """``{active?, duration_minutes?, capacity?}``; ``null`` hands a field back to the folder."""
    if not isinstance(data, dict) or not data:
        raise InvalidInput({"body": f"Send a JSON object with any of: {', '.join(EDITABLE)}."})
    errors = {name: "Not something a workshop edit changes." for name in data if name not in EDITABLE}
    changes: dict[str, Any] = {}
    for name, value in data.items():
        if name not in EDITABLE or value is None:
            changes[name] = None
            continue
        if name == "active":
            if not isinstance(value, bool):
                errors[name] = "true or false."
            changes[name] = value
            continue
        if name == "starts_at":
            changes[name] = _moment(value)
            if changes[name] is None:
                errors[name] = (f"A date and time with its time zone, e.g. 2026-12-04T09:00:00+01:00, in the years "
                                f"{YEARS[0]} to {YEARS[1]}.")
            continue
        if name == "expected":
            changes[name] = whole_number(value, *EXPECTED_RANGE)
            if changes[name] is None:
                errors[name] = f"A whole number of participants from {EXPECTED_RANGE[0]} to {EXPECTED_RANGE[1]}."
            continue
        low, high = DURATION_RANGE if name == "duration_minutes" else CAPACITY_RANGE
        changes[name] = whole_number(value, low, high)
        if changes[name] is None:
            errors[name] = f"A whole number from {low} to {high}."
    if errors:
        raise InvalidInput(errors, "The workshop edit is not valid.")
    return changes


def _moment(value: Any) -> datetime | None:
    """An ISO 8601 date and time with an offset, as UTC, within :data:`YEARS` (the time checks add
    and subtract minutes from it); None for anything else."""
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if moment.tzinfo is None or not YEARS[0] <= moment.year <= YEARS[1]:
        return None
    return moment.astimezone(UTC)


def validate_minutes(value: Any) -> int | None:
    """An organiser's extension: absent (the workshop's own), or a number of minutes."""
    if value is None or value == "":
        return None
    minutes = whole_number(value, *EXTENSION_RANGE)
    if minutes is None:
        raise InvalidInput({"minutes": f"A whole number of minutes from {EXTENSION_RANGE[0]} to {EXTENSION_RANGE[1]}."})
    return minutes
