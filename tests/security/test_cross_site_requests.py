"""No page elsewhere acts through a visitor's browser, and no other host name reaches the app.

* A ``fetch(..., {mode: "no-cors", body: new Blob([json])})`` from another site sends a body with
  no Content-Type and no preflight: the API refuses it (415) instead of taking it for JSON.
* A foreign ``Origin`` (or ``Sec-Fetch-Site: cross-site``) is refused (403) on every
  state-changing route, API and forms alike; the routes are read from the app itself.
* The ``Host`` must be the public URL's: a domain re-pointed at the platform's address (DNS
  rebinding), whose pages are then same-origin with themselves, is refused (421)."""
from __future__ import annotations

import dataclasses
import json
import re
from urllib.parse import urlencode

import pytest

from app import app
from chalicelib.services import links
from tests.factory import registered

WORKSHOP = "WKSHP-XR"
BODY = {"workshop": WORKSHOP, "email": "ada@example.com", "first_name": "Ada", "last_name": "Lovelace",
        "company": "AE", "accept_terms": True}
PUBLIC = {"Host": "wod.example"}  # the fixtures' WOD_PUBLIC_URL is https://wod.example
JSON = {"Content-Type": "application/json"}
EVIL = "https://evil.example"
STATE_CHANGING = sorted((path, method) for path, methods in app.routes.items() for method in methods
                        if method in ("POST", "PUT", "PATCH", "DELETE"))


@pytest.fixture
def held(client, platform, sync, recording):
    """A registration waiting for its confirmation."""
    platform.settings = dataclasses.replace(platform.settings, confirm_minutes=15)
    sync((WORKSHOP, {"seats": 3}))
    answer = client.http.post("/api/registrations", headers=PUBLIC | JSON, body=json.dumps(BODY))
    assert answer.status_code == 202, answer.body
    created = registered(platform, BODY["email"])
    assert created["status"] == "unconfirmed"
    return created


def customers(tables) -> list[str]:
    return sorted(f"{item.id}:{item.status}" for item in tables.customers.scan())


def test_a_blob_posted_from_another_site_registers_nobody(client, sync, tables):
    """What ``fetch(url, {method: "POST", mode: "no-cors", body: new Blob([json])})`` sends."""
    sync((WORKSHOP, {"seats": 3}))
    response = client.http.post("/api/registrations", headers=PUBLIC, body=json.dumps(BODY))
    assert response.status_code == 415
    assert json.loads(response.body)["error"] == "unsupported_media_type"
    assert customers(tables) == []


def test_a_confirmation_from_another_site_changes_nothing(client, platform, held, tables):
    token = links.action_token(platform, held["id"])
    before = customers(tables)
    for headers in ({"Origin": EVIL}, {"Origin": EVIL} | JSON, {"Origin": "null"} | JSON,
                    {"Sec-Fetch-Site": "cross-site"} | JSON, {}):
        response = client.http.post(f"/api/registrations/{token}/confirm", headers=PUBLIC | headers, body="")
        assert response.status_code in (403, 415), (headers, response.status_code)
    assert customers(tables) == before
    mine = client.http.post(f"/api/registrations/{token}/confirm", body="",
                            headers=PUBLIC | JSON | {"Origin": "https://wod.example", "Sec-Fetch-Site": "same-origin"})
    assert mine.status_code == 200 and json.loads(mine.body)["status"] != "unconfirmed"


def concrete(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: "x" * 22 if m.group(1) != "workshop_id" else WORKSHOP, path)


@pytest.mark.parametrize("path, method", STATE_CHANGING)
def test_every_state_changing_route_refuses_a_foreign_origin(client, sync, tables, path, method):
    sync((WORKSHOP, {"seats": 3}))
    entry = app.routes[path][method]
    kind = entry.content_types[0] if entry.content_types else "application/json"
    body = urlencode(BODY) if kind == "application/x-www-form-urlencoded" else json.dumps(BODY)
    response = client.http.request(method, concrete(path), body=body,
                                   headers=PUBLIC | {"Content-Type": kind, "Origin": EVIL})
    assert response.status_code == 403, (path, method, response.status_code)
    assert customers(tables) == []


@pytest.mark.parametrize("path, method", [(p, m) for p, m in STATE_CHANGING if m != "DELETE"])
def test_every_route_taking_a_body_refuses_one_without_a_type(client, sync, tables, path, method):
    sync((WORKSHOP, {"seats": 3}))
    response = client.http.request(method, concrete(path), body=json.dumps(BODY), headers=PUBLIC)
    assert response.status_code == 415, (path, method, response.status_code)
    assert customers(tables) == []


@pytest.mark.parametrize("host", ["evil.example", "127.0.0.1:8000", "wod.example.evil.example", "wod.example:8443"])
def test_a_request_naming_another_host_is_refused(client, sync, tables, host):
    """DNS rebinding: evil.example re-pointed at the platform's address; its page is same-origin
    with itself, so Origin alone would not tell."""
    sync((WORKSHOP, {"seats": 3}))
    origin = f"http://{host}"
    form = client.http.post(f"/workshops/{WORKSHOP}", body=urlencode(BODY), headers={
        "Host": host, "Origin": origin, "Content-Type": "application/x-www-form-urlencoded"})
    api = client.http.post("/api/registrations", body=json.dumps(BODY), headers={"Host": host, "Origin": origin} | JSON)
    page = client.http.get("/", headers={"Host": host})
    assert (form.status_code, api.status_code, page.status_code) == (421, 421, 421)
    assert customers(tables) == []


def test_the_platforms_own_pages_and_clients_pass(client, sync, tables):
    sync((WORKSHOP, {"seats": 3}))
    form = client.http.post(f"/workshops/{WORKSHOP}", body=urlencode(BODY), headers=PUBLIC | {
        "Origin": "https://wod.example", "Sec-Fetch-Site": "same-origin",
        "Content-Type": "application/x-www-form-urlencoded"})
    assert form.status_code == 200 and "Check your mailbox" in form.body.decode()
    script = client.http.post("/api/registrations", headers=PUBLIC | JSON,
                              body=json.dumps(BODY | {"email": "grace@example.com"}))
    assert script.status_code == 202
    assert client.http.get("/", headers={"Host": "wod.example:443"}).status_code == 200
    assert len(customers(tables)) == 2


@pytest.mark.parametrize("kind", ["text/plain; application/json", "text/plain, application/json", "text/plain;*/*",
                                  "multipart/form-data; boundary=x; application/json"])
def test_a_type_naming_the_routes_only_among_its_parameters_is_refused(client, sync, tables, kind):
    """Chalice takes a request whose type names the route's anywhere among its parts (or ``*/*``);
    a browser sends ``text/plain;application/json`` to any site without asking first, as text."""
    sync((WORKSHOP, {"seats": 3}))
    api = client.http.post("/api/registrations", body=json.dumps(BODY), headers=PUBLIC | {"Content-Type": kind})
    form = client.http.post(f"/workshops/{WORKSHOP}", body=urlencode(BODY), headers=PUBLIC | {
        "Content-Type": kind.replace("application/json", "application/x-www-form-urlencoded")})
    assert (api.status_code, form.status_code) == (415, 415)
    assert customers(tables) == []


def test_the_routes_own_type_passes_with_its_parameters_in_any_case(client, sync, tables):
    sync((WORKSHOP, {"seats": 3}))
    for number, kind in enumerate(["application/json; charset=utf-8", "Application/JSON", "application/json;"]):
        body = json.dumps(BODY | {"email": f"ada{number}@example.com"})
        response = client.http.post("/api/registrations", body=body, headers=PUBLIC | {"Content-Type": kind})
        assert response.status_code == 202, (kind, response.body)
    assert len(customers(tables)) == 3


@pytest.mark.parametrize("origin", ["http://evil.example:abc", "https://wod.example:99999", "http://[::1",
                                    "http://[zz]:1"])
def test_a_malformed_origin_is_refused_not_an_error(client, sync, tables, origin):
    sync((WORKSHOP, {"seats": 3}))
    response = client.http.post("/api/registrations", body=json.dumps(BODY), headers=PUBLIC | JSON | {"Origin": origin})
    assert response.status_code == 403, response.body
    assert customers(tables) == []


def test_a_public_url_at_an_ipv6_address_takes_its_own_host_and_origin():
    from chalicelib.domain.errors import WrongHost
    from chalicelib.web.guard import check

    for public in ("http://[::1]:8000", "https://[2001:db8::1]"):
        host = public.split("//", 1)[1]
        check("POST", {"host": host, "origin": public, "content-type": "application/json"}, public)
        with pytest.raises(WrongHost):
            check("GET", {"host": "evil.example"}, public)
