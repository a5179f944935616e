"""Who may use the organiser's side.

The API takes the admin token as ``Authorization: Bearer <token>`` (none: 401, wrong: 403, and
429 once a client address has sent too many wrong ones: :mod:`chalicelib.services.signin`). The
dashboard signs in at ``/admin/login`` into an HttpOnly, SameSite=Strict cookie scoped to
``/admin`` (cookies ignore ports: on one machine, one scoped to ``/`` would also go to the hub and
through it to every student's server) holding a sealed, expiring session whose id the platform
keeps until the organiser signs out; each of its forms carries a CSRF token derived from that session.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from urllib.parse import urlencode

from chalicelib.adapters.secrets import get_secret
from chalicelib.domain import organiser as rules
from chalicelib.domain.errors import Forbidden, Unauthenticated
from chalicelib.web.http import client_address, ctx

COOKIE = "wod_admin"
COOKIE_PATH = "/admin"
ACTOR_HEADER = "X-WOD-Actor"
MAX_COOKIES = 8  # values of the session cookie looked at


@dataclass(frozen=True)
class Session:
    token: str
    actor: str
    csrf: str
    id: str


def admin_token() -> str:
    return get_secret(ctx().settings, "admin_token")


def key(purpose: str) -> bytes:
    return rules.derive_key(admin_token(), purpose)


def cookie_values(request) -> list[str]:
    """Every value of the session cookie, in the order sent (browsers send the longest path first).
    A page on another port of the host, or on a sibling domain, can set one of its own: it must not
    hide the organiser's."""
    values = []
    for part in (request.headers.get("cookie") or "").split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name == COOKIE:
            values.append(value.strip().strip('"'))
    return values[:MAX_COOKIES]


def cookie_value(request) -> str | None:
    """The first value of the session cookie, if any."""
    return next(iter(cookie_values(request)), None)


def session_of(request) -> Session | None:
    """The signed-in organiser, or None (no cookie, forged, expired, signed out, or signed with an
    old token); the first of the cookie's values that is a session."""
    from chalicelib.services import signin
    tokens = [token for token in cookie_values(request) if token]
    if not tokens:
        return None
    session_key = key("session")
    for token in tokens:
        claims = rules.session_claims(session_key, token, time.time())
        if claims is not None and signin.is_open(ctx(), claims[1]):
            return Session(token, claims[0], rules.csrf_token(session_key, token), claims[1])
    return None


def start_session(actor: str) -> str:
    from chalicelib.services import signin
    token = rules.new_session(key("session"), actor, time.time())
    claims = rules.session_claims(key("session"), token, time.time())
    assert claims is not None
    signin.opened(ctx(), claims[1], claims[2])
    return token


def end_session(session: Session) -> None:
    from chalicelib.services import signin
    signin.closed(ctx(), session.id)


def session_cookie(token: str | None) -> str:
    """The Set-Cookie value that stores a session, or clears it (``None``)."""
    secure = "; Secure" if ctx().settings.public_url.startswith("https://") else ""
    age = rules.SESSION_SECONDS if token else 0
    return f"{COOKIE}={token or ''}; Path={COOKIE_PATH}; HttpOnly; SameSite=Strict; Max-Age={age}{secure}"


def check_token(supplied: str, actor: str, request, via: str) -> bool:
    """Whether ``supplied`` is the admin token; a client past its failed sign-ins is refused (429)
    before it is compared, and a wrong one is counted and audited."""
    from chalicelib.services import signin
    client = client_address(request)
    signin.throttled(ctx(), client)
    if rules.token_matches(supplied, admin_token()):
        return True
    signin.failed(ctx(), actor, client, via)
    return False


def api_actor(request) -> str:
    """The actor for the audit log (``X-WOD-Actor``, else "api"); refuses with
    :class:`Unauthenticated` (401), :class:`Forbidden` (403) or RateLimited (429)."""
    header = request.headers.get("authorization")
    scheme, _, supplied = (header or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not supplied.strip():
        raise Unauthenticated("Send the admin token as: Authorization: Bearer <token>.")
    if not check_token(supplied.strip(), rules.DEFAULT_API_ACTOR, request, "api"):
        raise Forbidden("This is not the admin token.")
    return rules.validate_actor(request.headers.get(ACTOR_HEADER) or rules.DEFAULT_API_ACTOR, ACTOR_HEADER)


def here(request) -> str:
    """The path and query of the current request (to come back to after signing in or acting)."""
    params = request.uri_params or {}
    path = re.sub(r"\{(\w+)\}", lambda m: params.get(m.group(1), ""), request.path)
    query = dict(request.query_params or {})
    query.pop("flash", None)
    return path + ("?" + urlencode(query) if query else "")
