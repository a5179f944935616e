"""Who may use the organiser's side.

The API takes the admin token as ``Authorization: Bearer <token>`` (none: 401, wrong: 403),
and the dashboard's session cookie for reading only, so the dashboard's CSV link works while
a forged cross-site request cannot change anything. The dashboard signs in at ``/admin/login``
into an HttpOnly, SameSite=Strict cookie holding a sealed, expiring session; each of its forms
carries a CSRF token derived from that session.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from urllib.parse import urlencode

from chalicelib.adapters.secrets import get_secret
from chalicelib.domain import organiser as rules
from chalicelib.domain.errors import Forbidden, Unauthenticated
from chalicelib.web.http import ctx

COOKIE = "wod_admin"
ACTOR_HEADER = "X-WOD-Actor"


@dataclass(frozen=True)
class Session:
    token: str
    actor: str
    csrf: str


def admin_token() -> str:
    return get_secret(ctx().settings, "admin_token")


def key(purpose: str) -> bytes:
    return rules.derive_key(admin_token(), purpose)


def cookie_value(request) -> str | None:
    raw = request.headers.get("cookie")
    if not raw:
        return None
    jar = SimpleCookie()
    try:
        jar.load(raw)
    except CookieError:
        return ""
    morsel = jar.get(COOKIE)
    return morsel.value if morsel is not None else None


def session_of(request) -> Session | None:
    """The signed-in organiser, or None (no cookie, forged, expired, or signed with an old token)."""
    token = cookie_value(request)
    if not token:
        return None
    session_key = key("session")
    actor = rules.session_actor(session_key, token, time.time())
    return Session(token, actor, rules.csrf_token(session_key, token)) if actor else None


def start_session(actor: str) -> str:
    return rules.new_session(key("session"), actor, time.time())


def session_cookie(token: str | None) -> str:
    """The Set-Cookie value that stores a session, or clears it (``None``)."""
    secure = "; Secure" if ctx().settings.public_url.startswith("https://") else ""
    age = rules.SESSION_SECONDS if token else 0
    return f"{COOKIE}={token or ''}; Path=/; HttpOnly; SameSite=Strict; Max-Age={age}{secure}"


def api_actor(request) -> str:
    """The actor for the audit log (``X-WOD-Actor``, else "api"; the session's name with a
    cookie); refuses with :class:`Unauthenticated` (401) or :class:`Forbidden` (403)."""
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, supplied = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not supplied.strip():
            raise Unauthenticated("Send the admin token as: Authorization: Bearer <token>.")
        if not rules.token_matches(supplied.strip(), admin_token()):
            raise Forbidden("This is not the admin token.")
        return rules.validate_actor(request.headers.get(ACTOR_HEADER) or rules.DEFAULT_API_ACTOR, ACTOR_HEADER)
    if cookie_value(request) is None:
        raise Unauthenticated("Send the admin token as: Authorization: Bearer <token>.")
    session = session_of(request)
    if session is None:
        raise Forbidden("The dashboard session is not valid or has expired; sign in again.")
    if request.method != "GET":
        raise Forbidden("A dashboard session only reads the API; send the admin token to change anything.")
    return session.actor


def here(request) -> str:
    """The path and query of the current request (to come back to after signing in or acting)."""
    params = request.uri_params or {}
    path = re.sub(r"\{(\w+)\}", lambda m: params.get(m.group(1), ""), request.path)
    query = dict(request.query_params or {})
    query.pop("flash", None)
    return path + ("?" + urlencode(query) if query else "")
