"""An organiser who signs out is signed out; guessing the admin token is slowed and seen.

* After ``POST /admin/logout`` the old cookie (and its CSRF token) open nothing: not the dashboard,
  not the CSV, not a workshop change; the audit log shows nothing done after ``sign_out``.
* Wrong admin tokens (dashboard or API) are each written to the audit log, and past ten from one
  address in 15 minutes that address is answered 429 without its token being looked at.
* The session cookie is scoped to ``/admin``: on one machine cookies ignore ports, and one scoped
  to ``/`` went to the hub too, which passes it on to every student's server.
* ``make run`` prints where the admin token is kept, never the token."""
from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlencode

import pytest

from chalicelib.services import signin
from chalicelib.web import auth
from tests.admintools import FORM, admin_token, bearer, csrf_of, form_post, sign_in

WORKSHOP = "WKSHP-SESS"


@pytest.fixture
def world(client, platform, sync, recording):
    sync((WORKSHOP, {"seats": 3}))
    return platform


def audit(client, platform) -> list[dict]:
    response = client.http.get("/api/admin/audit?limit=200", headers=bearer(platform))
    assert response.status_code == 200
    return json.loads(response.body)


def test_a_signed_out_session_opens_nothing(client, world, tables):
    cookie = sign_in(client, world)
    page = client.http.get("/admin", headers={"Cookie": cookie})
    assert page.status_code == 200
    csrf = csrf_of(page.body)
    assert form_post(client, cookie, "/admin/logout", {"csrf": csrf}).status_code == 303

    assert client.http.get("/admin", headers={"Cookie": cookie}).status_code == 401
    assert client.http.get("/admin/registrations.csv", headers={"Cookie": cookie}).status_code == 401
    change = form_post(client, cookie, f"/admin/workshops/{WORKSHOP}", {"csrf": csrf, "active": "false",
                                                                         "back": "/admin"})
    assert change.status_code == 401 and "sign in again" in change.body.decode()
    assert tables.workshops.get(WORKSHOP).active is True
    entries = audit(client, world)
    assert [e["action"] for e in entries][:2] == ["sign_out", "sign_in"]  # newest first: nothing after


def test_signing_in_again_opens_a_new_session_and_others_stay_open(client, world):
    first, second = sign_in(client, world, "Ada"), sign_in(client, world, "Grace")
    page = client.http.get("/admin", headers={"Cookie": first})
    form_post(client, first, "/admin/logout", {"csrf": csrf_of(page.body)})
    assert client.http.get("/admin", headers={"Cookie": first}).status_code == 401
    assert client.http.get("/admin", headers={"Cookie": second}).status_code == 200


@pytest.fixture
def clients(monkeypatch):
    """Requests name their client address in a header (API Gateway's sourceIp, locally the peer).
    Failed sign-ins count per 15-minute wall-clock window: the test stays inside one (mid-window,
    not at a boundary, where the next window would start counting again)."""
    monkeypatch.setattr(auth, "client_address", lambda request: request.headers.get("x-test-client", "192.0.2.1"),
                        raising=False)
    monkeypatch.setattr(signin, "time", SimpleNamespace(time=lambda: 1_800_000_030.0))


def attempt_dashboard(client, token: str, address: str):
    return client.http.post("/admin/login", headers=FORM | {"X-Test-Client": address},
                            body=urlencode({"name": "Eve", "token": token, "next": "/admin"}))


def test_wrong_admin_tokens_are_throttled_and_audited(client, world, clients):
    statuses = [attempt_dashboard(client, f"guess-{n}", "203.0.113.5").status_code for n in range(30)]
    statuses += [client.http.get("/api/admin/workshops", headers={
        "Authorization": f"Bearer guess-{n}", "X-Test-Client": "203.0.113.5"}).status_code for n in range(20)]
    assert statuses == [403] * 10 + [429] * 40
    throttled = attempt_dashboard(client, admin_token(world), "203.0.113.5")
    assert throttled.status_code == 429 and "Set-Cookie" not in throttled.headers
    assert attempt_dashboard(client, admin_token(world), "198.51.100.4").status_code == 303  # another address
    refused = [e for e in audit(client, world) if e["action"] == "sign_in" and e["outcome"] == "refused"]
    assert len(refused) == 10
    assert {e["actor"] for e in refused} == {"Eve"} and {e["detail"]["client"] for e in refused} == {"203.0.113.5"}
    assert all("guess" not in json.dumps(e) for e in refused)  # the token tried is never written


def test_the_session_cookie_stays_on_the_dashboard(client, world):
    response = client.http.post("/admin/login", headers=FORM,
                                body=urlencode({"name": "Ada", "token": admin_token(world), "next": "/admin"}))
    attributes = [part.strip() for part in response.headers["Set-Cookie"].split(";")]
    assert "Path=/admin" in attributes and "HttpOnly" in attributes and "SameSite=Strict" in attributes
    cookie = attributes[0]
    page = client.http.get("/admin/registrations", headers={"Cookie": cookie})
    assert re.search(r'href="/admin/registrations\.csv"', page.body.decode())
    assert client.http.get("/admin/registrations.csv", headers={"Cookie": cookie}).status_code == 200
    assert client.http.get("/api/admin/registrations.csv", headers={"Cookie": cookie}).status_code == 401


def test_make_run_prints_where_the_token_is_not_the_token(tmp_path):
    from local.config import LocalConfig, ensure_secrets
    from local.stack import ready_banner

    config = LocalConfig(state_dir=tmp_path)
    token = ensure_secrets(config.secrets_file, ["local"])["admin_token"]
    banner = ready_banner(config, tmp_path / "logs")
    assert token not in banner and str(config.secrets_file) in banner
    assert stat.S_IMODE(os.stat(Path(config.secrets_file)).st_mode) == 0o600


def test_a_cookie_set_by_a_neighbour_does_not_sign_the_organiser_out(client, world):
    """A page on another port of the same host (a student's server, locally) or on a sibling domain
    (``Domain=`` the parent) may set a ``wod_admin`` cookie of its own with a longer path: the
    browser sends it first, and the organiser's session must still open the dashboard."""
    cookie = sign_in(client, world)
    forged = auth.start_session("Mallory").replace(".", "x", 1)  # well formed, not signed by the platform
    for tossed in ("wod_admin=junk", f"wod_admin={forged}", 'wod_admin=""'):
        page = client.http.get("/admin/registrations", headers={"Cookie": f"{tossed}; {cookie}"})
        assert page.status_code == 200 and "Set-Cookie" not in page.headers, tossed
    assert client.http.get("/admin", headers={"Cookie": "wod_admin=junk"}).status_code == 401
