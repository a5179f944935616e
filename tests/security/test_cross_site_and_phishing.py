"""A page elsewhere cannot register people or act for them through their browser, and the
registration form is not a relay for links to addresses nobody confirmed.

* The API takes JSON only: ``text/plain`` and form bodies (what any site may POST without asking)
  are refused with 415 and change nothing.
* The page forms refuse an ``Origin`` that is not the platform's public URL's (403, nothing changed).
* Names and company refuse web addresses (422, nothing sent)."""
from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from chalicelib.services import links
from tests.factory import registered

BODY = {"workshop": "WKSHP-XS", "email": "ada@example.com", "first_name": "Ada", "last_name": "Lovelace",
        "company": "AE", "accept_terms": True}


@pytest.fixture
def workshop(sync):
    sync(("WKSHP-XS", {"seats": 3}))


@pytest.mark.parametrize("content_type, body", [
    ("text/plain", json.dumps(BODY)),
    ("application/x-www-form-urlencoded", urlencode(BODY)),
])
def test_the_api_takes_json_only(client, workshop, tables, content_type, body):
    response = client.http.post("/api/registrations", headers={"Content-Type": content_type}, body=body)
    assert response.status_code == 415
    assert list(tables.customers.scan()) == []


def form(client, origin=None, **fields):
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Host": "wod.example"}
    if origin is not None:
        headers["Origin"] = origin
    return client.http.post("/workshops/WKSHP-XS", headers=headers, body=urlencode({**BODY, **fields}))


@pytest.mark.parametrize("origin", ["https://evil.example", "null", "https://wod.example.evil.example",
                                    "http://wod.example"])
def test_a_form_sent_from_another_site_is_refused(client, workshop, tables, origin):
    response = form(client, origin)
    assert response.status_code == 403
    assert "only be sent from this site" in response.body.decode().replace("&#39;", "'")
    assert list(tables.customers.scan()) == []


@pytest.mark.parametrize("origin", [None, "https://wod.example"])
def test_the_form_from_its_own_page_registers(client, workshop, tables, origin):
    response = form(client, origin)
    assert response.status_code == 200 and "Check your mailbox" in response.body.decode()
    assert len(list(tables.customers.scan())) == 1


def test_a_participant_action_from_another_site_is_refused(client, workshop, tables, platform):
    client.http.post("/api/registrations", headers={"Content-Type": "application/json"}, body=json.dumps(BODY))
    created = registered(platform, BODY["email"])
    response = client.http.post(f"/registrations/{links.action_token(platform, created['id'])}/end", body="",
                                headers={"Content-Type": "application/x-www-form-urlencoded",
                                         "Host": "wod.example", "Origin": "https://evil.example"})
    assert response.status_code == 403
    assert tables.customers.get(created["id"]).status == created["status"]


@pytest.mark.parametrize("field", ["first_name", "last_name", "company"])
@pytest.mark.parametrize("value", ["Claim your prize at evil.com/win", "https://x.io", "www.bank-login",
                                   "see login.example.net"])
def test_names_and_company_refuse_web_addresses(client, workshop, tables, field, value):
    response = client.http.post("/api/registrations", headers={"Content-Type": "application/json"},
                                body=json.dumps({**BODY, field: value}))
    assert response.status_code == 422
    assert "must not contain a web or email address" in json.loads(response.body)["fields"][field]
    assert list(tables.customers.scan()) == []


@pytest.mark.parametrize("value", ["J.R.R.", "Smith & Sons, Ltd.", "O'Brien", "Dr. Who"])
def test_ordinary_names_with_dots_pass(client, workshop, value):
    response = client.http.post("/api/registrations", headers={"Content-Type": "application/json"},
                                body=json.dumps({**BODY, "company": value}))
    assert response.status_code == 202, response.body


@pytest.mark.parametrize("value", ["Claim your prize at ｅｖｉｌ.ｃｏｍ", "evil。com/win", "login．example．net",
                                   "ｗｗｗ｡bank-login"])
def test_a_web_address_in_wide_letters_or_other_full_stops_is_refused(client, workshop, tables, value):
    """Browsers read ``ｅｖｉｌ.ｃｏｍ`` and ``evil。com`` as evil.com (IDNA maps wide letters and the
    ideographic full stops), and so may a mail client that makes links of them."""
    response = client.http.post("/api/registrations", headers={"Content-Type": "application/json"},
                                body=json.dumps({**BODY, "company": value}))
    assert response.status_code == 422, response.body
    assert "must not contain a web or email address" in json.loads(response.body)["fields"]["company"]
    assert list(tables.customers.scan()) == []
