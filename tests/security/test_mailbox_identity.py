"""One mailbox, one live registration: ``+tag`` variants, case and a provider's ignored dots are the
same person for the email guard, so one address cannot take several seats; and a seat given back
frees the guard it holds, whatever spelling registered it."""
from __future__ import annotations

import json

import pytest

from chalicelib.domain.registration import mailbox_key
from tests.factory import registered


@pytest.mark.parametrize("given, key", [
    ("Ada@Example.com", "ada@example.com"),
    ("ada+1@example.com", "ada@example.com"),
    ("ADA+event+2@EXAMPLE.COM", "ada@example.com"),
    ("a.da@example.com", "a.da@example.com"),  # dots matter unless the provider ignores them
    ("A.d.a+x@gmail.com", "ada@gmail.com"),
    ("ada@googlemail.com", "ada@gmail.com"),
    ("+tag@example.com", "+tag@example.com"),  # nothing before the tag: kept as typed
])
def test_mailbox_key(given, key):
    assert mailbox_key(given) == key


def post(client, email, first="Ada"):
    response = client.http.post("/api/registrations", headers={"Content-Type": "application/json"}, body=json.dumps({
        "workshop": "WKSHP-MBX", "email": email, "first_name": first, "last_name": "Lovelace", "company": "AE",
        "accept_terms": True}))
    return response.status_code, json.loads(response.body)


def test_tag_variants_of_one_mailbox_take_one_seat(client, sync, tables):
    sync(("WKSHP-MBX", {"seats": 5}))
    first = post(client, "attacker@example.com")
    assert first[0] == 202
    for n in range(1, 6):
        assert post(client, f"Attacker+{n}@example.com", first=f"Bot{n}") == first
    assert tables.workshops.get("WKSHP-MBX").seats_free == 4
    assert [r.email for r in tables.customers.scan()] == ["attacker@example.com"]


@pytest.mark.parametrize("legacy", [False, True], ids=["key stored", "registered before keys were stored"])
def test_a_seat_given_back_frees_the_guard_it_holds(client, sync, platform, tables, legacy):
    from chalicelib.services import seats

    sync(("WKSHP-MBX", {"seats": 1}))
    email = "ada+work@example.com" if not legacy else "Ada+Old@Example.com"
    assert post(client, email)[0] == 202
    body = registered(platform, email)
    item = tables.customers.get(body["id"])
    assert tables.emails.get("ada@example.com").registration_id == item.id
    if legacy:  # as stored before: no key on the registration, the guard under the lower-cased email
        tables.emails.get("ada@example.com").delete()
        tables.emails("ada+old@example.com", registration_id=item.id).save()
        item.update(actions=[type(item).email_key.remove()])
    reg = platform.stores.registrations.get(body["id"])
    assert seats.fail(platform, reg, "test", compensated=True) is not None
    assert list(tables.emails.scan()) == []
    assert tables.workshops.get("WKSHP-MBX").seats_free == 1
    assert post(client, email.replace("+work", "+again"), first="Ada")[0] == 202
    assert registered(platform, email)["id"] != body["id"]
