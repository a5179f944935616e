"""Helpers for the organiser's-side tests: the admin token, a signed-in dashboard, an active participant."""
from __future__ import annotations

import json
import re
from html import unescape
from urllib.parse import urlencode

from chalicelib.services import registrations
from tests.factory import signed_callback

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
JSON = {"Content-Type": "application/json"}


def admin_token(platform) -> str:
    return platform.secret("admin_token")


def bearer(platform, actor: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {admin_token(platform)}"}
    return headers | ({"X-WOD-Actor": actor} if actor else {})


def api(client, platform, method: str, path: str, body=None, actor: str | None = None):
    """Call the admin API with the admin token; returns (status, parsed JSON or raw body)."""
    headers = bearer(platform, actor) | (JSON if body is not None or method in ("POST", "PATCH") else {})
    response = client.http.request(method, path, headers=headers,
                                   body=json.dumps(body).encode() if body is not None else b"")
    try:
        return response.status_code, json.loads(response.body) if response.body else None
    except ValueError:
        return response.status_code, response.body


def sign_in(client, platform, name: str = "Grace Hopper") -> str:
    """Sign in on the dashboard; return the Cookie header value."""
    response = client.http.post("/admin/login", headers=FORM,
                                body=urlencode({"name": name, "token": admin_token(platform), "next": "/admin"}))
    assert response.status_code == 303, response.body
    return response.headers["Set-Cookie"].split(";")[0]


def csrf_of(html: bytes | str) -> str:
    text = html.decode() if isinstance(html, bytes) else html
    return unescape(re.search(r'name="csrf" value="([^"]+)"', text).group(1))


def form_post(client, cookie: str, path: str, fields: dict[str, str]):
    return client.http.post(path, headers=FORM | {"Cookie": cookie}, body=urlencode(fields))


def callback(client, platform, payload: dict) -> None:
    data, headers = signed_callback(payload, platform.key("callback_key"))
    response = client.http.post("/api/callbacks/provision", body=data, headers=headers)
    assert response.status_code == 200, response.body


def participant(platform, workshop: str, email: str, first: str = "Mo", last: str = "Li",
                company: str = "Acme") -> dict:
    """Register through the service, with the test's context (``platform``)."""
    return registrations.register(platform, {"workshop": workshop, "email": email, "first_name": first,
                                             "last_name": last, "company": company, "accept_terms": True})


def activate(client, platform, created: dict, password: str = "Pw123456789x") -> None:
    callback(client, platform, {"registration": created["id"], "student": created["student"], "outcome": "ready",
                                "password": password, "hub_url": "http://hub"})
