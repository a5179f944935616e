"""A participant's token never leaves the platform: webhook receivers, the CSV, the audit log and
the dashboard get the public registration id, which opens nothing; only the action token in the
participant's own links shows or changes their registration."""
from __future__ import annotations

import csv
import io
import json

import pytest

from chalicelib.adapters.webhooks import Attempt
from chalicelib.domain import links as rules
from chalicelib.services import links, time_checks, webhooks
from tests.admintools import api, bearer, participant

WORKSHOP = "WKSHP-TOKEN"
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def registered(sync, recording, platform):
    sync((WORKSHOP, {"seats": 2, "duration": 60}))
    return participant(platform, WORKSHOP, "ada@example.com")


def token_parts(platform, registration_id: str) -> tuple[str, str]:
    token = links.action_token(platform, registration_id)
    return token, token.split(".", 1)[1]


def test_the_public_id_alone_opens_nothing(client, platform, registered, tables):
    public = registered["id"]
    assert client.http.get(f"/api/registrations/{public}").status_code == 404
    assert client.http.get(f"/registrations/{public}").status_code == 404
    response = client.http.post(f"/api/registrations/{public}/end", headers=JSON, body="{}")
    assert response.status_code == 404
    assert "latest email" in json.loads(response.body)["message"]
    assert tables.customers.get(public).status == "pending"


@pytest.mark.parametrize("forge", ["other id", "flipped mac", "short mac", "other key", "empty mac"])
def test_a_forged_token_opens_nothing(client, platform, registered, tables, forge):
    token, mac = token_parts(platform, registered["id"])
    other = participant(platform, WORKSHOP, "bob@example.com")["id"]
    forged = {
        "other id": f"{other}.{mac}",
        "flipped mac": f"{registered['id']}.{mac[:-1]}{'A' if mac[-1] != 'A' else 'B'}",
        "short mac": token[:-1],
        "other key": rules.action_token(b"not the platform's key", registered["id"]),
        "empty mac": f"{registered['id']}.",
    }[forge]
    assert client.http.get(f"/api/registrations/{forged}").status_code == 404
    assert client.http.post(f"/api/registrations/{forged}/end", headers=JSON, body="{}").status_code == 404
    assert tables.customers.get(registered["id"]).status == "pending"
    assert tables.customers.get(other).status == "pending"


def test_the_participants_own_token_works_and_is_in_their_email(client, platform, registered, recording):
    token = links.action_token(platform, registered["id"])
    response = client.http.get(f"/api/registrations/{token}")
    assert response.status_code == 200 and json.loads(response.body)["id"] == registered["id"]
    welcome = recording.to("ada@example.com")[0]
    assert f"https://wod.example/registrations/{token}" in welcome.text


def test_webhook_payloads_carry_the_public_id_and_no_token(client, platform, registered):
    token = links.action_token(platform, registered["id"])
    status, _ = api(client, platform, "POST", "/api/admin/webhooks", {"url": "http://127.0.0.1:9/"})
    assert status == 201
    participant(platform, WORKSHOP, "eve@example.com")
    bodies: list[bytes] = []

    def post(url, body, headers, timeout, public_only=False):
        bodies.append(body)
        return Attempt(200, None)

    assert webhooks.deliver_due(platform, post=post) >= 1
    assert bodies, "no delivery was made"
    for body in bodies:
        assert token.split(".", 1)[1] not in body.decode()
        assert "/registrations/" not in body.decode()
    assert any(json.loads(b)["registration"]["id"] for b in bodies)
    assert time_checks.tick(platform)["webhooks"] == 0  # all delivered above


def test_the_csv_and_the_organiser_api_carry_no_token(client, platform, registered):
    _, mac = token_parts(platform, registered["id"])
    response = client.http.get("/api/admin/registrations.csv", headers=bearer(platform))
    assert response.status_code == 200
    text = response.body.decode("utf-8-sig")
    assert mac not in text and "/registrations/" not in text
    assert [row["id"] for row in csv.DictReader(io.StringIO(text))] == [registered["id"]]
    status, view = api(client, platform, "GET", f"/api/admin/registrations/{registered['id']}")
    assert status == 200 and mac not in json.dumps(view)
    status, audit = api(client, platform, "GET", "/api/admin/audit")
    assert status == 200 and mac not in json.dumps(audit)


@pytest.mark.parametrize("mac", ["é" * 32, "%C3%A9" * 5 + "xx", "\x00" * 32, "\udc80" * 32])
def test_a_token_with_odd_characters_opens_nothing_and_fails_cleanly(client, platform, registered, mac):
    forged = f"{registered['id']}.{mac}"
    assert client.http.get(f"/api/registrations/{forged}").status_code == 404
    assert client.http.get(f"/registrations/{forged}").status_code == 404
    assert client.http.post(f"/api/registrations/{forged}/end", headers=JSON, body="{}").status_code == 404
    assert rules.registration_of(b"key", forged) is None
