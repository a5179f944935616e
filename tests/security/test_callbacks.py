"""A signed callback is taken once, and what it reports cannot point participants elsewhere: a
replayed ``ready`` (captured on the wire, within its five minutes) is refused and resends nothing;
the Start link is the location's configured hub, whatever hub the callback names."""
from __future__ import annotations

import json

import pytest

from chalicelib.services import registrations
from chalicelib.settings import load_settings
from tests.factory import signed_callback

BODY = {"workshop": "WKSHP-CBS", "email": "lin@example.com", "first_name": "Lin", "last_name": "Chu",
        "company": "Acme", "accept_terms": True}


@pytest.fixture
def registered(platform, sync, recording):
    sync(("WKSHP-CBS", {"seats": 2}))
    return registrations.register(platform, BODY)


def post(client, body, headers):
    response = client.http.post("/api/callbacks/provision", body=body, headers=headers)
    return response.status_code, json.loads(response.body)


def ready(registered, hub="http://127.0.0.1:8001"):
    return {"registration": registered["id"], "student": registered["student"], "outcome": "ready",
            "password": "S3cretPassw0", "hub_url": hub}


def test_a_replayed_ready_is_refused_and_sends_nothing(client, platform, registered, recording):
    body, headers = signed_callback(ready(registered), platform.key("callback_key"))
    assert post(client, body, headers)[0] == 200
    sent = len(recording.sent)
    status, answer = post(client, body, headers)
    assert status == 409 and "already received" in answer["message"]
    assert len(recording.sent) == sent


@pytest.mark.parametrize("nonce", [None, "", "short", "x" * 65, 12345])
def test_a_callback_without_a_usable_nonce_is_refused(client, platform, registered, recording, nonce):
    import time

    from chalicelib.domain.orders import SIGNATURE_HEADER, sign

    payload = ready(registered) | {"issued_at": int(time.time())}
    if nonce is not None:
        payload["nonce"] = nonce
    body = json.dumps(payload).encode()
    status, _ = post(client, body, {"Content-Type": "application/json",
                                    SIGNATURE_HEADER: sign(body, platform.key("callback_key"))})
    assert status == 422
    assert not [m for m in recording.sent if m.subject.startswith("Your workshop is ready")]


def test_the_start_link_is_the_locations_hub_not_the_callbacks(client, platform, registered, recording, monkeypatch):
    settings = load_settings({"WOD_LOCATION_HUBS": json.dumps({"local": "https://hub.example.org/"})})
    monkeypatch.setattr(platform, "settings", platform.settings.__class__(
        **{**platform.settings.__dict__, "location_hubs": settings.location_hubs}))
    body, headers = signed_callback(ready(registered, hub="https://phish.example"), platform.key("callback_key"))
    assert post(client, body, headers)[0] == 200
    credentials = recording.sent[-1]
    assert "https://hub.example.org/hub/login?next=" in credentials.html
    assert "phish.example" not in credentials.html + credentials.text


@pytest.mark.parametrize("names", [("", ""), ("", "student1"), ("a" * 3000, "student1"),
                                   ("purge-" + "s" * 3000, "s" * 3000), ("x yé-0123456789abcdef", "student1"),
                                   (["list"], "student1")])
def test_a_callback_naming_no_possible_registration_is_refused_as_unsigned(client, platform, registered, names):
    registration, student = names
    body = json.dumps({"registration": registration, "student": student, "outcome": "failed",
                       "nonce": "n" * 20})
    status, answer = post(client, body, {"Content-Type": "application/json", "X-Wod-Signature": "0" * 64})
    assert status == 403, answer
