"""One client cannot take the seats by itself: registrations per client address are limited per minute,
and past an email domain's limit each client's for that domain (429 with Retry-After, nothing stored,
nothing sent); the limits are settings,
and 0 turns one off (load benchmarks). Through the app, and the client address the local web
process hands the app is the socket's peer, never a header the client wrote."""
from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace

import pytest

from chalicelib.domain.errors import RateLimited
from chalicelib.services import registrations

WORKSHOP = "WKSHP-RATE"


def body(n: int, domain: str = "example.com") -> dict:
    return {"workshop": WORKSHOP, "email": f"person{n}@{domain}", "first_name": "Pat", "last_name": str(n),
            "company": "Acme", "accept_terms": True}


@pytest.fixture
def limited(platform, sync, monkeypatch):
    sync((WORKSHOP, {"seats": 60}))
    # the limits count per wall-clock minute: the test stays inside one (mid-window, not at a boundary)
    monkeypatch.setattr(registrations, "time", SimpleNamespace(time=lambda: 1_800_000_030.0))

    def limit(per_client: int, per_domain: int = 0):
        monkeypatch.setattr(platform, "settings", dataclasses.replace(
            platform.settings, rate_limit_per_minute=per_client, domain_rate_limit_per_minute=per_domain))
    return limit


def test_one_client_registering_sixty_times_is_stopped_at_the_limit(platform, limited, tables, recording):
    limited(per_client=10)
    outcomes = []
    for n in range(60):
        try:
            registrations.register(platform, body(n), client="203.0.113.7")
            outcomes.append(201)
        except RateLimited as exc:
            assert 1 <= exc.retry_after <= 60
            outcomes.append(429)
    assert outcomes == [201] * 10 + [429] * 50
    assert len(list(tables.customers.scan())) == 10
    assert tables.workshops.get(WORKSHOP).seats_free == 50
    registrations.register(platform, body(99), client="198.51.100.1")  # another client is not affected


def test_one_domain_flooded_across_clients_slows_each_flooding_client(platform, limited):
    """Past the domain's limit each client gets two more for it (tests/security/test_domain_blocking.py)."""
    limited(per_client=100, per_domain=5)
    for n in range(5):
        registrations.register(platform, body(n, "bots.example"), client="203.0.113.1")
    for n in range(5, 7):
        registrations.register(platform, body(n, "bots.example"), client="203.0.113.1")
    with pytest.raises(RateLimited, match="for addresses at bots.example"):
        registrations.register(platform, body(7, "bots.example"), client="203.0.113.1")
    registrations.register(platform, body(8, "bots.example"), client="203.0.113.200")  # someone else at the domain
    registrations.register(platform, body(9, "people.example"), client="203.0.113.1")


def test_zero_turns_the_limits_off(platform, limited):
    limited(per_client=0, per_domain=5)  # 0 for the client turns the domain's off too (load benchmarks)
    for n in range(40):
        registrations.register(platform, body(n), client="203.0.113.7")


def test_the_api_answers_429_with_retry_after(client, platform, limited, tables):
    limited(per_client=2)
    statuses = []
    for n in range(3):
        response = client.http.post("/api/registrations", headers={"Content-Type": "application/json"},
                                    body=json.dumps(body(n)))
        statuses.append(response.status_code)
    assert statuses == [202, 202, 429]
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert json.loads(response.body)["error"] == "rate_limited"


def test_the_local_web_process_gives_the_app_the_sockets_peer():
    from chalice import Chalice

    from local.web import ChaliceWsgi

    app = Chalice(app_name="peer")

    @app.route("/who")
    def who():
        return {"ip": app.current_request.context["identity"]["sourceIp"]}

    wsgi = ChaliceWsgi(app)
    seen = {}
    out = wsgi({"REQUEST_METHOD": "GET", "PATH_INFO": "/who", "RAW_URI": "/who", "REMOTE_ADDR": "192.0.2.44",
                "HTTP_X_FORWARDED_FOR": "1.2.3.4", "wsgi.input": None},
               lambda status, headers: seen.update(status=status))
    assert seen["status"].startswith("200") and json.loads(b"".join(out)) == {"ip": "192.0.2.44"}


def test_addresses_of_one_ipv6_network_share_the_client_limit(platform, limited):
    limited(per_client=3)
    for n in range(3):  # a host with a /64 has 2^64 addresses: they count as one client
        registrations.register(platform, body(n), client=f"2001:db8:7:1::{n + 1:x}")
    with pytest.raises(RateLimited, match="from your network"):
        registrations.register(platform, body(3), client="2001:db8:7:1:ffff:ffff:ffff:fffe")
    registrations.register(platform, body(4), client="2001:db8:7:2::1")  # another network
    registrations.register(platform, body(5), client="203.0.113.8")


def test_one_client_holds_few_unconfirmed_seats_however_long_it_keeps_registering(platform, limited, tables,
                                                                                     monkeypatch):
    """Within the per-minute limit, one client registering throwaway addresses (a new domain each
    time) for the whole confirmation window holds at most ``WOD_HOLDS_PER_CLIENT`` seats."""
    limited(per_client=30)
    monkeypatch.setattr(platform, "settings", dataclasses.replace(platform.settings, confirm_minutes=15,
                                                                  holds_per_client=10))
    now = [1_800_000_030.0]
    monkeypatch.setattr(registrations, "time", SimpleNamespace(time=lambda: now[0]))
    taken = refused = 0
    for minute in range(14):
        now[0] = 1_800_000_030.0 + 60 * minute
        for n in range(30):
            try:
                registrations.register(platform, body(n, f"d{minute}-{n}.example"), client="203.0.113.7")
                taken += 1
            except RateLimited as exc:
                assert "from your network" in exc.message and exc.retry_after >= 1
                refused += 1
    assert taken == 10 and refused == 14 * 30 - 10
    assert tables.workshops.get(WORKSHOP).seats_free == 50
    registrations.register(platform, body(1, "someone.example"), client="198.51.100.1")  # others still can


def test_requests_refused_for_another_limit_still_count_for_the_client(platform, limited, monkeypatch, counted):
    """A claim refused by the holds or the mailbox limit commits nothing, its count of the client's
    requests included: the refusal counts it, so one client cannot go on asking for free."""
    limited(per_client=12)
    monkeypatch.setattr(platform, "settings", dataclasses.replace(platform.settings, confirm_minutes=15,
                                                                  holds_per_client=2))
    answers = []
    for n in range(20):
        try:
            registrations.register(platform, body(n, f"d{n}.example"), client="203.0.113.7")
            answers.append("held")
        except RateLimited as exc:
            answers.append("holds" if exc.retry_after > 60 else "minute")
    assert answers == ["held"] * 2 + ["holds"] * 10 + ["minute"] * 8
    counted.clear()
    with pytest.raises(RateLimited):
        registrations.register(platform, body(99, "late.example"), client="203.0.113.7")
    assert sum(counted.values()) <= 3  # the client's counter refuses it before much is read


def test_a_venue_address_has_the_venues_limits_and_no_domains_and_others_keep_theirs(platform, limited, tables):
    """A conference room behind one address (``WOD_VENUE_NETWORKS``): its participants, often of one
    company, register many times a minute; they are still counted, at the venue's limit, while
    an address outside the venue keeps the ordinary limits."""
    limited(per_client=5, per_domain=5)
    platform.settings = dataclasses.replace(platform.settings, venue_networks=("203.0.113.0/24",),
                                            venue_rate_limit_per_minute=40)
    for n in range(40):
        registrations.register(platform, body(n, "bigcorp.example"), client="203.0.113.9")
    with pytest.raises(RateLimited, match="from your network"):
        registrations.register(platform, body(40, "bigcorp.example"), client="203.0.113.9")  # still counted
    for n in range(41, 46):
        registrations.register(platform, body(n), client="198.51.100.1")
    with pytest.raises(RateLimited, match="from your network"):
        registrations.register(platform, body(46), client="198.51.100.1")
    assert len(list(tables.customers.scan())) == 45


def test_venue_networks_that_are_not_networks_are_refused_by_name():
    from chalicelib.settings import SettingsError, load_settings

    assert load_settings({"WOD_VENUE_NETWORKS": "127.0.0.1, 2001:db8::/48"}).venue_networks == (
        "127.0.0.1/32", "2001:db8::/48")
    with pytest.raises(SettingsError, match="WOD_VENUE_NETWORKS: 'the-hall'"):
        load_settings({"WOD_VENUE_NETWORKS": "the-hall"})
