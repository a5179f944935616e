"""Nobody can keep the people of one email domain from registering.

The per-domain limit once counted every request naming the domain, before the workshop was even
looked up: 300 requests for a workshop that does not exist, from 10 addresses within a minute,
answered 404 and stored nothing, yet ``cfo@victimcorp.example`` then got 429. Now nothing is
counted before the checks that cost nothing pass (a valid body, an open workshop), and the domain's
limit is soft: past it, only the addresses that keep registering for the domain are slowed.

Each test measures what the attack costs (printed with ``-s``; docs/security.md quotes it), with the
limits scaled down ten times: the same attack in a tenth of the registrations."""
from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest

from chalicelib.domain.errors import NotFound, RateLimited
from chalicelib.services import registrations

WORKSHOP = "WKSHP-DOM"
DOMAIN = "victimcorp.example"
PER_CLIENT, PER_DOMAIN = 3, 30


def body(email: str, workshop: str = WORKSHOP) -> dict:
    return {"workshop": workshop, "email": email, "first_name": "Pat", "last_name": "Doe", "company": "Victim Corp",
            "accept_terms": True}


@pytest.fixture
def limits(platform, sync, monkeypatch):
    """The default limits (30 per client address, 300 per domain, per minute) scaled down ten times,
    inside one minute."""
    sync((WORKSHOP, {"seats": 40}))
    monkeypatch.setattr(platform, "settings", dataclasses.replace(
        platform.settings, rate_limit_per_minute=PER_CLIENT, domain_rate_limit_per_minute=PER_DOMAIN,
        holds_per_client=0))
    monkeypatch.setattr(registrations, "time", SimpleNamespace(time=lambda: 1_800_000_030.0))
    return platform


def cfo_can_register(platform) -> bool:
    try:
        registrations.register(platform, body(f"cfo@{DOMAIN}"), client="198.51.100.77")
    except RateLimited:
        return False
    return True


def flood(platform, requests: int, workshop: str, per_address: int = PER_CLIENT) -> tuple[int, int]:
    """``requests`` registrations of fresh addresses at the domain, ``per_address`` from each client
    address (the client limit); returns (answered 404, refused 429)."""
    missing = refused = 0
    for n in range(requests):
        try:
            registrations.register(platform, body(f"user{n}@{DOMAIN}", workshop),
                                   client=f"203.0.113.{n // per_address}")
        except NotFound:
            missing += 1
        except RateLimited:
            refused += 1
    return missing, refused


def test_requests_for_a_workshop_that_does_not_exist_charge_nothing(limits, tables):
    missing, refused = flood(limits, 60, "WKSHP-NOSUCH")
    print(f"\n60 requests for an unknown workshop from 20 addresses: {missing} x 404, {refused} x 429")
    assert (missing, refused) == (60, 0)
    assert list(tables.customers.scan()) == []
    assert cfo_can_register(limits), "the domain was blocked by requests that stored nothing"


def test_a_domain_flooded_from_many_addresses_still_takes_its_own_people(limits, tables):
    """Real registrations: past the domain's limit in a minute, each flooding address gets 2 more."""
    _, refused = flood(limits, 45, WORKSHOP)
    stored = len(list(tables.customers.scan()))
    print(f"\n45 registrations for the domain from 15 addresses: {stored} stored, {refused} x 429")
    assert (stored, refused) == (30 + 5 * 2, 15 - 5 * 2)  # the last 5 addresses came after the limit
    assert cfo_can_register(limits), "someone at the domain was blocked by strangers' registrations"


def test_an_address_flooding_a_busy_domain_is_slowed(limits):
    flood(limits, PER_DOMAIN, WORKSHOP)  # the domain is at its limit for this minute
    client, outcomes = "192.0.2.9", []
    for n in range(PER_CLIENT):  # within the client's own limit
        try:
            registrations.register(limits, body(f"again{n}@{DOMAIN}"), client=client)
            outcomes.append(202)
        except RateLimited as exc:
            assert f"for addresses at {DOMAIN}" in exc.message and 1 <= exc.retry_after <= 60
            outcomes.append(429)
    assert outcomes == [202, 202, 429]


def test_an_invalid_body_charges_nothing(limits):
    from chalicelib.domain.errors import InvalidInput

    for n in range(4 * PER_CLIENT):  # more than the client limit, from one address
        with pytest.raises(InvalidInput):
            registrations.register(limits, body(f"bad{n}@{DOMAIN}") | {"accept_terms": False}, client="203.0.113.250")
    registrations.register(limits, body(f"good@{DOMAIN}"), client="203.0.113.250")
