"""Bodies built to hurt the parser, and links that outlive their use.

* JSON nested 100,000 deep answers 400 on every JSON route (it was a ``RecursionError``: 500).
* A body over 64 KB is refused before it is parsed, and a field is measured before it is read:
  a 9.9 MB name ending in a control character is refused for its length, not for the character
  (which only a scan of all of it would find).
* The access log (``web.log``) keeps no participant's action token, only the public id.
* A participant's token opens their registration while it is live and for
  ``WOD_LINK_DAYS_AFTER_END`` (7) days after it ended; then 404."""
from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from types import SimpleNamespace

import pytest

from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.registration import validate_applicant
from chalicelib.services import links
from tests.admintools import bearer
from tests.factory import registered

WORKSHOP = "WKSHP-HOSTILE"
BODY = {"workshop": WORKSHOP, "email": "ada@example.com", "first_name": "Ada", "last_name": "Lovelace",
        "company": "AE", "accept_terms": True}
JSON = {"Content-Type": "application/json"}
DEEP = "[" * 100_000 + "]" * 100_000


@pytest.fixture
def workshop(sync, recording):
    sync((WORKSHOP, {"seats": 3}))


@pytest.mark.parametrize("path, extra", [
    ("/api/registrations", {}),
    ("/api/callbacks/provision", {"X-WOD-Signature": "v1=" + "0" * 64}),
    ("/api/admin/webhooks", "bearer"),
])
def test_json_nested_too_deeply_is_a_400(client, platform, workshop, tables, path, extra):
    headers = JSON | (bearer(platform) if extra == "bearer" else extra)
    deep = "[" * 20_000 + "]" * 20_000  # 40 KB: under the size limit, far over the parser's depth
    for body in (deep, DEEP):
        response = client.http.post(path, headers=headers, body=body)
        assert response.status_code == 400, (path, len(body), response.status_code, response.body[:200])
        assert json.loads(response.body)["error"] == "malformed"
    assert list(tables.customers.scan()) == []


def test_a_field_is_measured_before_it_is_read():
    name = "A" * 9_900_000 + "\x00"
    with pytest.raises(InvalidInput) as refused:
        validate_applicant(BODY | {"first_name": name, "email": "x" * 9_900_000 + "\x00@example.com"})
    assert refused.value.fields["first_name"] == "First name must be at most 64 characters."
    assert refused.value.fields["email"] == "Enter a valid email address."


def test_a_huge_body_is_refused_before_it_is_parsed(client, workshop, tables):
    response = client.http.post("/api/registrations", headers=JSON,
                                body=json.dumps(BODY | {"first_name": "A" * 9_900_000}))
    assert response.status_code == 400 and "too large" in json.loads(response.body)["message"]
    form = client.http.post(f"/workshops/{WORKSHOP}", headers={"Content-Type": "application/x-www-form-urlencoded"},
                            body="first_name=" + "A" * 9_900_000)
    assert form.status_code == 400
    assert list(tables.customers.scan()) == []


def test_the_access_log_keeps_no_action_token(platform, workshop):
    from gunicorn.config import Config

    from local.web import _access_logger

    token = links.action_token(platform, "r" * 24)
    logger = _access_logger()(Config())
    environ = {"REQUEST_METHOD": "POST", "RAW_URI": f"/registrations/{token}/extend", "SERVER_PROTOCOL": "HTTP/1.1",
               "PATH_INFO": f"/registrations/{token}/extend", "QUERY_STRING": "",
               "HTTP_REFERER": f"https://wod.example/registrations/{token}", "REMOTE_ADDR": "192.0.2.1"}
    atoms = logger.atoms(SimpleNamespace(status="303 See Other", sent=0, headers=[]), SimpleNamespace(headers=[
        ("Referer", environ["HTTP_REFERER"])]), environ, timedelta(milliseconds=3))
    line = json.dumps(atoms)
    assert token not in line and token.split(".")[1] not in line
    assert f"/registrations/{'r' * 24}.<token>/extend" in atoms["r"]


def test_a_link_stops_working_a_while_after_its_registration_ended(client, platform, workshop, tables, clock,
                                                                      monkeypatch):
    monkeypatch.setattr(platform, "settings", dataclasses.replace(platform.settings, link_days_after_end=7))
    assert client.http.post("/api/registrations", headers=JSON, body=json.dumps(BODY)).status_code == 202
    created = registered(platform, BODY["email"])
    path = f"/api/registrations/{links.action_token(platform, created['id'])}"
    assert client.http.get(path).status_code == 200
    item = tables.customers.get(created["id"])
    item.update(actions=[type(item).status.set("finished"), type(item).finished_at.set(clock())])
    clock.advance(days=6, hours=23)
    assert client.http.get(path).status_code == 200  # the thank-you email's reader still sees it
    clock.advance(hours=2)
    gone = client.http.get(path)
    assert gone.status_code == 404 and "expired" in json.loads(gone.body)["message"]
    assert client.http.post(path + "/end", headers=JSON, body="{}").status_code == 404
