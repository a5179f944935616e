"""Every organiser route refuses anyone without the admin token or a genuine session, and such a
request changes nothing; dashboard forms need the session's CSRF token. The routes are read
from the app itself, so a route added later is covered without editing this file."""
from __future__ import annotations

import json
import re
import time
from pathlib import Path
from urllib.parse import urlencode

import boto3
import pytest

from app import app
from chalicelib.domain.organiser import derive_key, new_session
from chalicelib.store.models import MODELS
from tests.admintools import FORM, activate, admin_token, bearer, csrf_of, form_post, participant, sign_in

WORKSHOP = "WKSHP-AUTH"
OPEN = {("/admin/login", "GET"), ("/admin/login", "POST")}
ROUTES = sorted((path, method) for path, methods in app.routes.items() for method in methods
                if re.match(r"^/(api/)?admin(/|$)", path) and (path, method) not in OPEN)
MUTATING = [(path, method) for path, method in ROUTES if method != "GET"]


def test_the_enumeration_finds_the_api_and_the_dashboard():
    assert len(ROUTES) >= 20
    assert ("/api/admin/workshops/{workshop_id}", "PATCH") in ROUTES
    assert ("/admin/registrations/{registration_id}/{action}", "POST") in ROUTES
    assert ("/admin/logout", "POST") in ROUTES


@pytest.fixture
def world(client, platform, sync, recording):
    """A workshop, an active participant and a webhook: something for every route to act on."""
    sync((WORKSHOP, {"seats": 3}))
    created = participant(platform, WORKSHOP, "mo@example.com")
    activate(client, platform, created)
    hook = json.loads(client.http.post("/api/admin/webhooks",
                                       headers=bearer(platform) | {"Content-Type": "application/json"},
                                       body=json.dumps({"url": "http://127.0.0.1:9/hook"})).body)
    return {"registration_id": created["id"], "action": "end", "workshop_id": WORKSHOP,
            "student_id": created["student"], "hook_id": hook["id"]}


def snapshot(platform) -> dict[str, list[str]]:
    """Every item of every table, but what a refused sign-in leaves: its audit entry and its count
    against the client (chalicelib/services/signin.py)."""
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")

    def kept(item: dict) -> bool:
        refused_sign_in = item.get("pk", {}).get("S") == "AUDIT" and item.get("action", {}).get("S") == "sign_in"
        return not refused_sign_in and not item.get("nonce", {}).get("S", "").startswith("rate:admin-sign-in:")
    return {kind: sorted(json.dumps(item, sort_keys=True)
                         for item in dynamodb.scan(TableName=platform.settings.table_name(kind))["Items"] if kept(item))
            for kind in MODELS}


def request_for(path: str, method: str, world: dict, csrf: str = "0" * 64) -> tuple[str, dict, bytes]:
    """The request a legitimate organiser would send to this route."""
    url = re.sub(r"\{(\w+)\}", lambda m: world[m.group(1)], path)
    entry = app.routes[path][method]
    if method == "GET":
        return url, {}, b""
    if "application/x-www-form-urlencoded" in entry.content_types:
        fields = {"csrf": csrf, "active": "false", "student": world["student_id"], "url": "http://127.0.0.1:9/x",
                  "event_registered": "on", "back": "/admin"}
        return url, FORM, urlencode(fields).encode()
    body = ({"active": False} if method == "PATCH"
            else {"url": "http://127.0.0.1:9/other"} if url.endswith("webhooks") else {})
    return url, {"Content-Type": "application/json"}, json.dumps(body).encode()


def forged_cookies(platform) -> dict[str, str]:
    now = time.time()
    return {
        "signed with another key": new_session(derive_key("not-the-admin-token", "session"), "Mallory", now),
        "expired": new_session(derive_key(admin_token(platform), "session"), "Mallory", now - 9 * 3600),
        "garbage": "eyJhIjoiTWFsbG9yeSJ9.00",
    }


def test_no_admin_route_serves_or_changes_anything_without_credentials(client, platform, world):
    before = snapshot(platform)
    attempts = [("no credentials", {})] + [("wrong bearer token", {"Authorization": "Bearer " + "x" * 43})] + [
        (f"cookie {name}", {"Cookie": f"wod_admin={value}"}) for name, value in forged_cookies(platform).items()]
    wrong = []
    for path, method in ROUTES:
        url, headers, body = request_for(path, method, world)
        for label, credentials in attempts:
            response = client.http.request(method, url, headers=headers | credentials, body=body)
            if response.status_code not in (401, 403, 429):  # 429: too many wrong tokens from this client
                wrong.append(f"{method} {url} with {label}: {response.status_code}")
            if path.startswith("/api/") and response.status_code == 401 and "WWW-Authenticate" not in response.headers:
                wrong.append(f"{method} {url} with {label}: 401 without WWW-Authenticate")
    assert wrong == []
    assert snapshot(platform) == before


def test_the_session_cookie_opens_nothing_of_the_api(client, platform, world):
    """The cookie is the dashboard's (Path=/admin): the API takes the admin token only."""
    cookie = sign_in(client, platform)
    before = snapshot(platform)
    for path, method in [r for r in ROUTES if r[0].startswith("/api/")]:
        url, headers, body = request_for(path, method, world)
        assert client.http.request(method, url, headers=headers | {"Cookie": cookie}, body=body).status_code == 401
    assert snapshot(platform) == before


@pytest.mark.parametrize("path, method", MUTATING)
def test_with_credentials_the_same_requests_do_act(client, platform, tables, world, path, method):
    """The refusals above are meaningful: the very same requests, authorised, change the tables."""
    cookie = sign_in(client, platform)
    csrf = csrf_of(client.http.get("/admin/registrations", headers={"Cookie": cookie}).body)
    before = snapshot(platform)
    url, headers, body = request_for(path, method, world, csrf)
    credentials = bearer(platform) if path.startswith("/api/") else {"Cookie": cookie}
    response = client.http.request(method, url, headers=headers | credentials, body=body)
    assert response.status_code in (200, 201, 204, 303), response.body
    assert snapshot(platform) != before


@pytest.mark.parametrize("path", sorted({p for p, m in ROUTES if m == "GET"}))
def test_with_credentials_every_page_and_read_answers(client, platform, world, path):
    url, _, _ = request_for(path, "GET", world)
    credentials = bearer(platform) if path.startswith("/api/") else {"Cookie": sign_in(client, platform)}
    assert client.http.get(url, headers=credentials).status_code == 200


@pytest.mark.parametrize("csrf", [None, "", "0" * 64, "from another session"])
def test_a_dashboard_form_without_its_csrf_token_is_refused(client, platform, tables, world, csrf):
    cookie = sign_in(client, platform)
    if csrf == "from another session":
        csrf = csrf_of(client.http.get("/admin", headers={"Cookie": sign_in(client, platform, "Other")}).body)
    before = snapshot(platform)
    fields = {} if csrf is None else {"csrf": csrf}
    response = form_post(client, cookie, f"/admin/registrations/{world['registration_id']}/end", fields)
    assert response.status_code == 403
    assert snapshot(platform) == before
    assert tables.customers.get(world["registration_id"]).status == "active"


def test_sign_in_with_a_wrong_token_or_no_name_sets_no_session(client, platform, world):
    before = snapshot(platform)
    wrong = client.http.post("/admin/login", headers=FORM, body=urlencode({"name": "Eve", "token": "guess"}))
    assert wrong.status_code == 403 and "Set-Cookie" not in wrong.headers
    nameless = client.http.post("/admin/login", headers=FORM, body=urlencode({"token": admin_token(platform)}))
    assert nameless.status_code == 422 and "Set-Cookie" not in nameless.headers
    assert snapshot(platform) == before  # no session kept; the refusal is audited (left out of the snapshot)


def test_sign_in_goes_only_to_a_dashboard_page(client, platform, world):
    for target, expected in [("/admin/audit", "/admin/audit"), ("https://evil.example/admin", "/admin"),
                             ("//evil.example", "/admin"), ("/admin/../x", "/admin")]:
        response = client.http.post("/admin/login", headers=FORM, body=urlencode(
            {"name": "Ann", "token": admin_token(platform), "next": target}))
        assert response.headers["Location"] == expected
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" in cookie  # public_url is https


def test_rotating_the_admin_token_signs_everyone_out(client, platform, world):
    cookie = sign_in(client, platform)
    assert client.http.get("/admin", headers={"Cookie": cookie}).status_code == 200
    secrets_file = Path(platform.settings.secrets_file)
    keys = json.loads(secrets_file.read_text())
    secrets_file.write_text(json.dumps(keys | {"admin_token": "rotated-" + keys["admin_token"]}))
    response = client.http.get("/admin", headers={"Cookie": cookie})
    assert response.status_code == 401 and b"Your session has ended" in response.body


def test_sign_out_ends_the_session_cookie_and_is_audited(client, platform, world):
    cookie = sign_in(client, platform, "Ann")
    csrf = csrf_of(client.http.get("/admin", headers={"Cookie": cookie}).body)
    response = form_post(client, cookie, "/admin/logout", {"csrf": csrf})
    assert response.status_code == 303 and "Max-Age=0" in response.headers["Set-Cookie"]
    entries = json.loads(client.http.get("/api/admin/audit", headers=bearer(platform)).body)
    assert [(e["actor"], e["action"]) for e in entries[:2]] == [("Ann", "sign_out"), ("Ann", "sign_in")]
