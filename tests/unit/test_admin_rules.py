"""Pure rules of the organiser's side: sessions, CSRF, inputs, webhook signing and backoff, CSV,
the charts' geometry, and the password-only RESET order."""
from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.domain import charts, reports, webhooks
from chalicelib.domain import organiser as admin
from chalicelib.domain import registration as registration_rules
from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.orders import Order, OrderRejected, sign, verify_order

KEY = admin.derive_key("the-admin-token", "session")
NOW = 1_790_000_000


def test_a_session_names_its_organiser_until_it_expires():
    token = admin.new_session(KEY, "Grace", NOW)
    assert admin.session_claims(KEY, token, NOW + admin.SESSION_SECONDS - 1)[0] == "Grace"
    assert admin.session_claims(KEY, token, NOW + admin.SESSION_SECONDS) is None


@pytest.mark.parametrize("tamper", [
    lambda t: t.replace(t.split(".")[0], admin.seal(KEY, {"a": "Mallory", "e": NOW + 999}).split(".")[0]),
    lambda t: t[:-1] + ("0" if t[-1] != "0" else "1"),
    lambda t: t.split(".")[0],
    lambda t: "",
    lambda t: t + ".x",
])
def test_a_tampered_session_is_nobody(tamper):
    assert admin.session_claims(KEY, tamper(admin.new_session(KEY, "Grace", NOW)), NOW) is None


def test_another_admin_token_voids_sessions_and_forms():
    token = admin.new_session(KEY, "Grace", NOW)
    other = admin.derive_key("rotated-token", "session")
    assert admin.session_claims(other, token, NOW) is None
    assert admin.csrf_ok(KEY, token, admin.csrf_token(KEY, token))
    assert not admin.csrf_ok(other, token, admin.csrf_token(KEY, token))
    assert not admin.csrf_ok(KEY, admin.new_session(KEY, "Grace", NOW), admin.csrf_token(KEY, token))
    assert not admin.csrf_ok(KEY, token, None)


@pytest.mark.parametrize("raw, ok", [("  Grace   Hopper ", "Grace Hopper"), ("Zoë Ñúñez", "Zoë Ñúñez"),
                                     ("", None), (None, None), ("a" * 65, None), ("<b>", None), ("a\u200bb", None),
                                     ("tab\there", "tab here"), (42, None)])
def test_the_actor_name(raw, ok):
    if ok is None:
        with pytest.raises(InvalidInput):
            admin.validate_actor(raw)
    else:
        assert admin.validate_actor(raw) == ok


@pytest.mark.parametrize("path, expected", [
    ("/admin", "/admin"), ("/admin/registrations?q=a", "/admin/registrations?q=a"), ("/admin?x=1", "/admin?x=1"),
    ("/administrator", "/admin"), ("https://evil/admin", "/admin"), ("//evil", "/admin"), ("/admin//evil", "/admin"),
    ("/admin/\\evil", "/admin"), ("/admin/../api", "/admin"), ("/admin/\r\nSet-Cookie:x", "/admin"), (None, "/admin"),
    ("/api/admin", "/admin"),
])
def test_only_dashboard_paths_are_followed(path, expected):
    assert admin.safe_next(path) == expected


def test_workshop_edits_are_checked_field_by_field():
    assert admin.validate_workshop_edit({"capacity": "12", "active": False, "duration_minutes": None}) == {
        "capacity": 12, "active": False, "duration_minutes": None}
    with pytest.raises(InvalidInput) as caught:
        admin.validate_workshop_edit({"capacity": 1.5, "duration_minutes": 481, "active": 1, "seats": 3})
    assert set(caught.value.fields) == {"capacity", "duration_minutes", "active", "seats"}
    assert admin.validate_minutes(None) is None and admin.validate_minutes("45") == 45
    with pytest.raises(InvalidInput):
        admin.validate_minutes(241)


def test_webhook_signature_covers_timestamp_and_body():
    body = b'{"event":"extended"}'
    expected = "sha256=" + hmac.new(b"whsec_x", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert webhooks.signature("whsec_x", 1700000000, body) == expected
    assert webhooks.signature("whsec_x", 1700000001, body) != expected
    headers = webhooks.delivery_headers("extended", "d1", "whsec_x", 1700000000, body)
    assert headers["X-WOD-Signature"] == expected and headers["X-WOD-Delivery"] == "d1"


def test_failed_deliveries_wait_1_2_4_8_16_minutes_then_give_up():
    waits = [webhooks.retry_delay(n) for n in range(1, webhooks.MAX_ATTEMPTS + 1)]
    assert waits == [timedelta(minutes=m) for m in (1, 2, 4, 8, 16)] + [None]


def test_hook_events_default_to_the_registration_events_and_keep_their_order():
    assert webhooks.validate_hook({"url": "https://x.example/h"}) == (
        "https://x.example/h", list(webhooks.REGISTRATION_EVENTS), "")
    assert webhooks.validate_hook({"url": "https://x.example/h", "events": ["help_requested", "check"]})[1] == [
        "check", "help_requested"]  # the live room's events only when asked
    assert webhooks.validate_hook({"url": " http://x.example ", "events": "failed, registered"}, local=True)[1] == [
        "registered", "failed"]


def test_csv_round_trips_commas_quotes_newlines_and_accents_and_defuses_formulas():
    rows = [{"id": "r1", "first_name": "Zoë", "last_name": "Ñúñez, Jr.", "company": '"Quoted" & Co\nLine 2',
             "email": "z@example.com", "completion": 62.5},
            {"id": "r2", "first_name": "=HYPERLINK(\"http://evil\")", "last_name": "+1", "company": "@SUM(A1)",
             "email": "-2@example.com"}]
    text = reports.to_csv(rows)
    assert text.startswith("\ufeff") and "\r\n" in text
    parsed = list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"))))
    assert list(parsed[0]) == list(reports.CSV_COLUMNS)
    assert (parsed[0]["last_name"], parsed[0]["company"], parsed[0]["completion"]) == (
        "Ñúñez, Jr.", '"Quoted" & Co\nLine 2', "62.5")
    assert [parsed[1][k] for k in ("first_name", "last_name", "company", "email")] == [
        "'=HYPERLINK(\"http://evil\")", "'+1", "'@SUM(A1)", "'-2@example.com"]


def test_registrations_per_hour_count_the_last_hours_only():
    now = datetime(2026, 11, 26, 9, 40, tzinfo=UTC)
    created = [now, now - timedelta(minutes=39), now - timedelta(minutes=41), now - timedelta(hours=30)]
    series = reports.per_hour(created, now, hours=3)
    assert [(start.hour, n) for start, n in series] == [(7, 0), (8, 1), (9, 2)]


def test_completion_is_the_mean_of_finished_registrations():
    records = [{"status": "finished", "workshop": "W", "completion": 50}, {"status": "finished", "workshop": "W",
                                                                              "completion": 100},
               {"status": "failed", "workshop": "W", "completion": 0}, {"status": "finished", "workshop": "V",
                                                                         "completion": None}]
    assert reports.completion_by_workshop(records) == {"W": (75.0, 2)}


def test_the_seat_map_draws_one_square_per_seat_then_the_queue():
    seat_map = charts.seat_map(total=5, free=3, warm=1, waiting=2, columns=4, size=10, gap=2)
    kinds = [c.kind for c in seat_map.cells]
    assert kinds == ["taken", "taken", "warm", "free", "free", "waiting", "waiting"]
    assert (seat_map.cells[4].x, seat_map.cells[4].y) == (0, 12)  # second row
    assert seat_map.cells[5].y == 36  # a blank row between seats and the queue
    assert (seat_map.width, seat_map.height) == (46, 46)
    assert charts.seat_map(2, 2, 0, 500, waiting_drawn=80).more_waiting == 420


def test_the_tallest_hour_fills_the_chart():
    start = datetime(2026, 1, 1, tzinfo=UTC)
    chart = charts.hourly_histogram([(start, 2), (start + timedelta(hours=1), 4), (start, 0)], width=300, height=100)
    assert [b.height for b in chart.bars] == [50, 100, 0] and chart.peak == 4
    assert chart.bars[1].y == 0 and chart.ticks == [(50.0, "00:00")]


def test_a_password_only_reset_is_signed_like_any_order_and_only_for_reset():
    order = Order.new("RESET", "W", "s", "r", NOW, 2, "password")
    body = order.body()
    assert json.loads(body)["scope"] == "password"
    assert verify_order(body, sign(body, b"k"), b"k", NOW, 60) == order
    assert "scope" not in json.loads(Order.new("RESET", "W", "s", "r", NOW).body())
    with pytest.raises(ValueError):
        Order.new("CREATE", "W", "s", "r", NOW, scope="password")
    for scope in ("password", "everything"):
        data = json.loads(Order.new("CLEANUP", "W", "s", "r", NOW).body()) | {"scope": scope}
        forged = json.dumps(data).encode()
        with pytest.raises(OrderRejected) as caught:
            verify_order(forged, sign(forged, b"k"), b"k", NOW, 60)
        assert caught.value.reason == "malformed"


@pytest.mark.parametrize("raw", ["²", "1²", "٣", "１２", "3.0", " ", "-5", True, 2.0])
def test_only_ascii_digits_make_a_whole_number(raw):
    assert admin.whole_number(raw, 1, 1000) is None
    with pytest.raises(InvalidInput):
        admin.validate_workshop_edit({"capacity": raw})
    with pytest.raises(InvalidInput):
        admin.validate_minutes(raw)


def test_whole_numbers_within_range():
    assert admin.whole_number(" 12 ", 1, 1000) == 12 and admin.whole_number(7, 1, 10) == 7
    assert admin.whole_number("0", 1, 10) is None and admin.whole_number("11", 1, 10) is None


@pytest.mark.parametrize("supplied", ["é", "a" * 63 + "é", "\u0000", "ü" * 64])
def test_a_non_ascii_csrf_token_is_refused_not_an_error(supplied):
    token = admin.new_session(KEY, "Grace", NOW)
    assert admin.csrf_ok(KEY, token, supplied) is False


@pytest.mark.parametrize("sealed", ["a.é", "é.é", "eyJ9.ü" + "0" * 63])
def test_a_non_ascii_seal_is_nobody_not_an_error(sealed):
    assert admin.unseal(KEY, sealed) is None
    assert admin.session_claims(KEY, sealed, NOW) is None


@pytest.mark.parametrize("address, kind", [
    ("127.0.0.1", "loopback"), ("::1", "loopback"), ("169.254.169.254", "link-local"), ("fe80::1%eth0", "link-local"),
    ("10.0.0.1", "private"), ("172.16.5.4", "private"), ("192.168.1.1", "private"), ("fd12::1", "private"),
    ("224.0.0.251", "multicast"), ("ff02::1", "multicast"), ("0.0.0.0", "unspecified"), ("::", "unspecified"),
    ("240.0.0.1", "reserved"), ("100.64.0.1", "non-public"), ("::ffff:169.254.169.254", "link-local"),
    ("2002:7f00:1::", "loopback"), ("nonsense", "not an IP address"),
])
def test_webhooks_never_go_to_internal_addresses(address, kind):
    problem = webhooks.address_problem("hooks.example", address)
    assert problem is not None and kind in problem


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_receive_webhooks(address):
    assert webhooks.address_problem("hooks.example", address) is None


def test_outside_local_mode_only_https_hooks():
    with pytest.raises(InvalidInput) as caught:
        webhooks.validate_hook({"url": "http://x.example/h"})
    assert caught.value.fields["url"] == webhooks.HTTPS_ONLY
    with pytest.raises(InvalidInput) as caught:
        webhooks.validate_hook({"url": "https://169.254.169.254/latest/meta-data/"})
    assert "link-local" in caught.value.fields["url"]
    assert webhooks.validate_hook({"url": "http://127.0.0.1:8080/h"}, local=True)[0] == "http://127.0.0.1:8080/h"


@pytest.mark.parametrize("value, ok", [("WKSHP-API101", True), ("WKSHP-API101\n", False), ("wkshp-api101", False),
                                       ("WKSHP-", False), (None, False), ("WKSHP-" + "A" * 33, False)])
def test_one_workshop_id_rule(value, ok):
    from chalicelib.domain import workshop_spec as spec
    from chalicelib.domain.registration import is_workshop_id

    assert is_workshop_id(value) is ok
    assert spec.ID_PATTERN == registration_rules.WORKSHOP_ID_PATTERN
