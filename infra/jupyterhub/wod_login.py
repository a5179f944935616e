"""The hub's login rules, free of JupyterHub so the platform's tests can import it.

A participant logs in with the student name and the password from the welcome email.
The student item in DynamoDB (table ``WOD_STUDENTS_TABLE``, hash key ``id``) decides:

* ``status`` must be ``active``;
* ``expires_at`` (pynamodb UTCDateTimeAttribute text, UTC) must be in the future -
  a login at ``expires_at`` or later is refused;
* ``password_hash`` (``pbkdf2_sha256$<iterations>$<salt>$<digest>``, urlsafe base64 without
  padding, the format written by chalicelib/domain/passwords.py) must match the password.

Nothing here logs or returns the password. This module deliberately does not import
chalicelib: the hub venv does not have the platform's code.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import threading
import time
from collections import deque
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Optional

USERNAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
USERNAME_PATTERN = USERNAME_RE.pattern
EXPIRES_FORMAT = "%Y-%m-%dT%H:%M:%S.%f+0000"  # pynamodb's UTCDateTimeAttribute
MAX_PASSWORD_CHARS = 256
# The platform writes 200k; the bounds keep a corrupt item from turning a login into a CPU burn.
MIN_ITERATIONS, MAX_ITERATIONS = 1_000, 5_000_000

# A lookup returns the student item as plain strings ({"id": ..., "status": ..., ...}),
# None when there is no such item, and raises on storage errors.
Lookup = Callable[[str], Optional[Mapping[str, Any]]]


def valid_username(username: Any) -> bool:
    return isinstance(username, str) and USERNAME_RE.fullmatch(username) is not None


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def verify_password(password: Any, encoded: Any) -> bool:
    """True if ``password`` matches ``encoded``; False for any malformed input (never raises)."""
    if not isinstance(password, str) or not isinstance(encoded, str) or len(password) > MAX_PASSWORD_CHARS:
        return False
    parts = encoded.split("$")
    if len(parts) != 4 or parts[0] != "pbkdf2_sha256" or not parts[1].isdigit():
        return False
    iterations = int(parts[1])
    if not MIN_ITERATIONS <= iterations <= MAX_ITERATIONS:
        return False
    try:
        salt, digest = _unb64(parts[2]), _unb64(parts[3])
        candidate = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    except (ValueError, TypeError, binascii.Error, UnicodeError):
        return False
    if not salt or len(digest) != len(candidate):
        return False
    return hmac.compare_digest(candidate, digest)


def parse_expires(value: Any) -> datetime | None:
    """The aware UTC datetime in a UTCDateTimeAttribute string, None if absent or unreadable."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value, EXPIRES_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError:
        pass
    try:  # tolerate plain ISO 8601 with an offset
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None


@dataclass(frozen=True)
class Decision:
    ok: bool
    reason: str  # short, loggable, never contains the password
    credential: str = ""  # on a successful login: the fingerprint of the password it used

    def __bool__(self) -> bool:
        return self.ok


def check_session(item: Mapping[str, Any] | None, now: datetime) -> Decision:
    """May this student (still) use the hub? Active and not expired; no password involved.
    Used at login and when the hub re-checks an existing session."""
    if not item:
        return Decision(False, "no such student")
    if item.get("status") != "active":
        return Decision(False, f"student status is {item.get('status')!r}, not 'active'")
    expires = parse_expires(item.get("expires_at"))
    if expires is None:
        return Decision(False, "student has no readable expires_at")
    if now >= expires:
        return Decision(False, "student reservation has expired")
    return Decision(True, "ok")


def check_login(item: Mapping[str, Any] | None, password: Any, now: datetime) -> Decision:
    """Decide a login from the student item alone. ``now`` must be timezone-aware."""
    session = check_session(item, now)
    if not session.ok:
        return session
    if not item.get("password_hash"):
        return Decision(False, "student has no password hash")
    if not verify_password(password, item.get("password_hash")):
        return Decision(False, "wrong password")
    return Decision(True, "ok", credential(item))


def credential(item: Mapping[str, Any]) -> str:
    """A fingerprint of the student's stored password hash (not the hash): a new password (a
    reset, credentials resent) changes it, which ends the sessions opened with the old one."""
    return hashlib.sha256(str(item.get("password_hash") or "").encode()).hexdigest()[:16]


class Sessions:
    """What the hub remembers of each student's sessions, in memory: the credential they were
    opened with, and when the student was last confirmed active. A hub restart forgets it: the
    next check adopts the current credential."""

    def __init__(self, grace: float = 300.0, clock: Callable[[], float] = time.monotonic):
        self.grace, self.clock = grace, clock
        self._credential: dict[str, str] = {}
        self._confirmed: dict[str, float] = {}
        self._lock = threading.Lock()

    def opened(self, username: str, decision: Decision) -> None:
        with self._lock:
            self._credential[username] = decision.credential
            self._confirmed[username] = self.clock()

    def check(self, username: str, lookup: Lookup, now: datetime | None = None) -> Decision:
        """May this session go on? Ends with the reservation, with a new password, and when the
        student cannot be looked up for longer than ``grace`` seconds (fails closed)."""
        decision = session_still_valid(username, lookup, now)
        with self._lock:
            if "lookup failed" in decision.reason:
                confirmed = self._confirmed.get(username)
                if confirmed is not None and self.clock() - confirmed < self.grace:
                    return Decision(True, f"kept within the {self.grace:g}s grace: {decision.reason}")
                return Decision(False, f"not confirmed for {self.grace:g}s: {decision.reason}")
            if not decision.ok:
                self._credential.pop(username, None)
                self._confirmed.pop(username, None)
                return decision
            current = credential(getattr(decision, "item", None) or {})
            known = self._credential.setdefault(username, current)
            if known != current:
                self._credential.pop(username, None)
                return Decision(False, "the password changed (reset or resent): log in with the new one")
            self._confirmed[username] = self.clock()
            return decision


class Slowdown:
    """Failed logins slow the next attempts down; they never refuse one. Per key (client and name,
    name, client), failures within ``window`` seconds, plus the attempts under way, make the next
    attempt wait: nothing for the first ``free``, then ``base`` seconds doubling with each one more,
    at most ``max_delay``. So guessing goes at a crawl, while the owner's correct password, however
    many strangers guessed before it, is checked after at most ``max_delay`` and let in. In memory,
    per hub process."""

    def __init__(self, free: int = 5, window: float = 300.0, base: float = 1.0, max_delay: float = 15.0,
                 clock: Callable[[], float] = time.monotonic):
        self.free, self.window, self.base, self.max_delay, self.clock = free, window, base, max_delay, clock
        self._failures: dict[Hashable, deque] = {}
        self._pending: dict[Hashable, int] = {}
        self._lock = threading.Lock()

    def _count(self, key: Hashable, now: float) -> int:
        failures = self._failures.get(key)
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        return len(failures or ()) + self._pending.get(key, 0)

    def attempt(self, keys: list) -> float:
        """Seconds this attempt waits before its password is checked; counts it as under way."""
        with self._lock:
            now = self.clock()
            worst = max((self._count(key, now) for key in keys), default=0)
            for key in keys:
                self._pending[key] = self._pending.get(key, 0) + 1
        if worst < self.free:
            return 0.0
        return min(self.max_delay, self.base * 2 ** min(worst - self.free, 30))

    def done(self, keys: list, failed: bool, cleared: tuple = ()) -> None:
        """The attempt is over: a failure counts for every key; a success clears ``cleared``."""
        with self._lock:
            now = self.clock()
            for key in keys:
                left = self._pending.get(key, 1) - 1
                if left > 0:
                    self._pending[key] = left
                else:
                    self._pending.pop(key, None)
                if failed:
                    self._failures.setdefault(key, deque()).append(now)
            for key in cleared:
                self._failures.pop(key, None)
            if len(self._failures) > 10_000:  # bound memory against name or address spraying
                stale = now - self.window
                for key in [k for k, q in self._failures.items() if not q or q[-1] <= stale]:
                    del self._failures[key]


def client_address(forwarded_for: str | None, peer: str | None) -> str:
    """Who is logging in: the address the hub's proxy appended to ``X-Forwarded-For`` (its last
    entry; whatever a client wrote before it, and ``X-Real-Ip``, are the client's own words),
    else the connection's peer."""
    if forwarded_for:
        last = forwarded_for.split(",")[-1].strip()
        if last:
            return last[:64]
    return (peer or "-")[:64]


def login(username: Any, password: Any, lookup: Lookup, now: datetime | None = None) -> Decision:
    """The whole login: name check, lookup (errors refuse), item rules. How fast a refused one may
    be tried again is :class:`Slowdown`'s business."""
    if not valid_username(username):
        return Decision(False, "invalid username")
    try:
        item = lookup(username)
    except Exception as exc:  # storage down, throttled, misconfigured: refuse, don't crash the page
        return Decision(False, f"student lookup failed: {type(exc).__name__}: {exc}")
    return check_login(item, password, now or datetime.now(timezone.utc))


def session_still_valid(username: str, lookup: Lookup, now: datetime | None = None) -> Decision:
    """Re-check an existing session (:class:`Sessions` adds the credential and the grace). A
    lookup failure is reported with ``lookup failed`` in the reason."""
    try:
        item = lookup(username)
    except Exception as exc:
        return Decision(False, f"student lookup failed: {type(exc).__name__}: {exc}")
    decision = check_session(item, now or datetime.now(timezone.utc))
    return SessionDecision(decision.ok, decision.reason, item=item) if decision.ok else decision


@dataclass(frozen=True)
class SessionDecision(Decision):
    item: Mapping[str, Any] | None = None


def _plain(value: Mapping[str, Any]) -> Any:
    """One DynamoDB attribute value ({"S": "x"}) as a plain Python value."""
    (kind, raw), = value.items()
    if kind == "M":
        return {k: _plain(v) for k, v in raw.items()}
    if kind == "L":
        return [_plain(v) for v in raw]
    if kind == "NULL":
        return None
    return raw


class DynamoStudents:
    """Lookup backed by DynamoDB: a strongly consistent GetItem on the students table."""

    ATTRIBUTES = ("id", "status", "password_hash", "expires_at")

    def __init__(self, table: str, endpoint: str | None = None, region: str | None = None,
                 client: Any = None):
        self.table = table
        if client is None:
            import boto3
            from botocore.config import Config

            client = boto3.client(
                "dynamodb", endpoint_url=endpoint or None, region_name=region or None,
                config=Config(connect_timeout=3, read_timeout=5, retries={"max_attempts": 2, "mode": "standard"}))
        self.client = client

    def __call__(self, username: str) -> dict | None:
        response = self.client.get_item(
            TableName=self.table, Key={"id": {"S": username}}, ConsistentRead=True,
            ProjectionExpression=", ".join(f"#a{i}" for i in range(len(self.ATTRIBUTES))),
            ExpressionAttributeNames={f"#a{i}": name for i, name in enumerate(self.ATTRIBUTES)})
        item = response.get("Item")
        return None if item is None else {k: _plain(v) for k, v in item.items()}
