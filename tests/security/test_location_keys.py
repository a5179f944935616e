"""Keys are per location: a location's backend verifies only orders signed with its own order key,
and the frontend takes a callback about a registration only when it is signed with the callback
key of that registration's location, so one location's backend (or its stolen key) can neither
start work at another location nor report on its participants."""
from __future__ import annotations

import json
import time
from dataclasses import replace

import pytest

from chalicelib.adapters.secrets import get_key, secret_id
from chalicelib.backend.intake import handle
from chalicelib.services import outbox, registrations
from infra import template as infra
from local.config import ensure_secrets
from tests.factory import signed_callback
from tests.functional.test_backend_intake import Starter, order_mail

LOCATIONS = {"local": "orders@backend.wod.local", "paris": "orders@paris.wod.local"}


@pytest.fixture
def two_locations(platform, tmp_path):
    """A frontend with two locations (``local`` and ``paris``), each with its own keys."""
    ensure_secrets(tmp_path / "secrets.json", LOCATIONS)
    platform.settings = replace(platform.settings, locations=LOCATIONS)
    return platform


def register(platform, workshop, email):
    return registrations.register(platform, {"workshop": workshop, "email": email, "first_name": "Ada",
                                             "last_name": "Byron", "company": "Acme", "accept_terms": True})


def post(client, body, headers):
    response = client.http.post("/api/callbacks/provision", body=body, headers=headers)
    return response.status_code


def ready(created):
    return {"registration": created["id"], "student": created["student"], "outcome": "ready",
            "password": "S3cretPassw0", "hub_url": "http://127.0.0.1:8001"}


def test_every_location_has_keys_of_its_own(two_locations):
    settings = two_locations.settings
    for name in ("order_key", "callback_key"):
        assert get_key(settings, name, "local") != get_key(settings, name, "paris")
    assert get_key(settings, "order_key", "paris") != get_key(settings, "callback_key", "paris")
    assert secret_id(settings, "callback_key", "paris") == "/wod/callback-key/paris"
    assert secret_id(settings, "order_key") == "/wod/order-key/local"  # this stack's own by default


def test_a_callback_signed_with_another_locations_key_is_refused(client, two_locations, sync, recording, tables):
    platform = two_locations
    sync(("WKSHP-PAR", {"seats": 1, "location": "paris"}), ("WKSHP-LOC", {"seats": 1}))
    at_paris = register(platform, "WKSHP-PAR", "ada@example.com")
    at_local = register(platform, "WKSHP-LOC", "bob@example.com")

    for created, wrong in ((at_paris, "local"), (at_local, "paris")):
        body, headers = signed_callback(ready(created), platform.key("callback_key", wrong))
        assert post(client, body, headers) == 403
        assert tables.customers.get(created["id"]).status == "pending"
    assert not [m for m in recording.sent if m.subject.startswith("Your workshop is ready")]

    for created, right in ((at_paris, "paris"), (at_local, "local")):
        body, headers = signed_callback(ready(created), platform.key("callback_key", right))
        assert post(client, body, headers) == 200
        assert tables.customers.get(created["id"]).status == "active"


def test_a_callback_about_an_unknown_registration_is_refused_like_a_forgery(client, two_locations, recording):
    body, headers = signed_callback({"registration": "nobody-knows-this-one", "student": "student1",
                                     "outcome": "failed"}, two_locations.key("callback_key"))
    assert post(client, body, headers) == 403


def test_orders_are_signed_per_location_and_verified_by_that_locations_backend(two_locations, sync, tmp_path):
    frontend = two_locations
    sync(("WKSHP-PAR", {"seats": 1, "location": "paris"}))
    workshop = frontend.stores.seats.get_workshop("WKSHP-PAR")
    email = outbox.order_email(frontend, "CREATE", 0, workshop, "wkshp-par-1", "reg-1234567890abcdef")
    assert email.to == "orders@paris.wod.local"

    paris = replace(frontend.settings, location="paris")
    from chalicelib.domain.orders import SIGNATURE_HEADER, verify_order

    verified = verify_order(email.text.encode(), email.headers[SIGNATURE_HEADER], get_key(paris, "order_key"),
                            time.time(), 60)
    assert (verified.workshop, verified.registration) == ("WKSHP-PAR", "reg-1234567890abcdef")

    # the same order as the local backend's intake sees it: not signed with its key, refused
    frontend.workflows = Starter()
    forged_for_local = order_mail(frontend, key=get_key(frontend.settings, "order_key", "paris"))
    assert handle(frontend, forged_for_local) == "rejected:bad_signature"
    assert frontend.workflows.started == []
    frontend.settings = paris  # the Paris backend takes it
    assert handle(frontend, forged_for_local) == "started"


def test_a_secrets_file_from_before_keeps_its_keys_for_the_first_location(tmp_path):
    path = tmp_path / "secrets.json"
    path.write_text(json.dumps({"order_key": "old-order", "callback_key": "old-callback", "hub_token": "h",
                                "admin_token": "a"}))
    keys = ensure_secrets(path, ["local", "paris"])
    assert (keys["order_key/local"], keys["callback_key/local"]) == ("old-order", "old-callback")
    assert keys["order_key/paris"] not in ("old-order", keys["callback_key/paris"])
    assert "order_key" not in keys and ensure_secrets(path, ["local", "paris"]) == keys  # generated once
    assert path.stat().st_mode & 0o777 == 0o600


def grants(logical: str) -> list[str]:
    role = infra.function_role(logical, infra.FUNCTIONS[logical])
    found = []
    for policy in role["Properties"]["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            statement = statement["Fn::If"][1] if "Fn::If" in statement else statement
            if "secretsmanager:GetSecretValue" in statement["Action"]:
                found += [resource["Fn::Sub"] for resource in statement["Resource"]]
    return found


def test_on_aws_a_backend_reads_only_its_own_locations_keys():
    assert all(name.endswith("/${Location}-??????") for name in grants("ProvisionDeploy"))
    assert any("/callback-key/${Location}-" in name for name in grants("ProvisionDeploy"))
    assert [name for name in grants("OrderIntake") if "/order-key/${Location}-" in name]
    assert any(name.endswith("/callback-key/*") for name in grants("APIHandler"))  # every location's
    assert any(name.endswith("/order-key/*") for name in grants("TimeChecks"))
    names = {infra.secret_name(name) for name in ("order-key", "callback-key")}
    assert names == {"${SecretsPrefix}/order-key/${Location}", "${SecretsPrefix}/callback-key/${Location}"}
