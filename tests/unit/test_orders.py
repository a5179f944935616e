"""Signed orders: the backend accepts only fresh, well-signed, well-formed ones."""
from __future__ import annotations

import json

import pytest

from chalicelib.domain.orders import Order, OrderRejected, sign, verify_order

KEY = b"k" * 32
NOW = 1_790_000_000


def signed(order: Order, key: bytes = KEY) -> tuple[bytes, str]:
    body = order.body()
    return body, sign(body, key)


def test_round_trip_and_human_subject():
    order = Order.new("CREATE", "WKSHP-API101", "student397", "reg123", NOW)
    body, signature = signed(order)
    assert order.subject == "CREATE WKSHP-API101 student397"
    assert verify_order(body, signature, KEY, NOW + 5, 60) == order
    assert order.execution_name == "reg123-CREATE"


def test_nonces_differ_between_orders():
    assert Order.new("CREATE", "W", "s", "r", NOW).nonce != Order.new("CREATE", "W", "s", "r", NOW).nonce


@pytest.mark.parametrize("reason, tamper", [
    ("missing_signature", lambda body, sig: (body, None)),
    ("bad_signature", lambda body, sig: (body, sign(body, b"other-key"))),
    ("bad_signature", lambda body, sig: (body.replace(b"student397", b"student398"), sig)),
    ("bad_signature", lambda body, sig: (body, "v1=é" + sig[4:])),  # not ASCII: refused, not a crash
])
def test_forged_orders_are_rejected(reason, tamper):
    body, signature = tamper(*signed(Order.new("CREATE", "W", "student397", "r", NOW)))
    with pytest.raises(OrderRejected) as caught:
        verify_order(body, signature, KEY, NOW, 60)
    assert caught.value.reason == reason


@pytest.mark.parametrize("skew", [-61, 61])
def test_stale_or_future_orders_are_rejected(skew):
    body, signature = signed(Order.new("CREATE", "W", "s", "r", NOW))
    with pytest.raises(OrderRejected) as caught:
        verify_order(body, signature, KEY, NOW + skew, 60)
    assert caught.value.reason == "stale"


def test_unknown_action_and_malformed_bodies_are_rejected():
    data = json.loads(Order.new("CREATE", "W", "s", "r", NOW).body()) | {"action": "DESTROY"}
    body = json.dumps(data).encode()
    with pytest.raises(OrderRejected) as caught:
        verify_order(body, sign(body, KEY), KEY, NOW, 60)
    assert caught.value.reason == "unknown_action"
    for junk in (b"not json", b'{"v": 1}', b"[]"):
        with pytest.raises(OrderRejected) as caught:
            verify_order(junk, sign(junk, KEY), KEY, NOW, 60)
        assert caught.value.reason == "malformed"


def test_new_refuses_unknown_actions():
    with pytest.raises(ValueError):
        Order.new("DESTROY", "W", "s", "r", NOW)


def test_password_hashes_verify_and_never_contain_the_password():
    from chalicelib.domain.passwords import generate_password, hash_password, verify_password

    password = generate_password()
    encoded = hash_password(password, iterations=1000)
    assert len(password) == 12 and password not in encoded
    assert verify_password(password, encoded)
    assert not verify_password(password + "x", encoded)
    assert not verify_password(password, None) and not verify_password(password, "md5$1$x$y")
    assert hash_password(password, iterations=1000) != encoded  # salted


def test_a_callback_signature_that_is_not_ascii_is_refused_not_a_crash():
    from chalicelib.domain.orders import verify_signed_json

    body = json.dumps({"registration": "r", "issued_at": NOW}).encode()
    assert verify_signed_json(body, sign(body, KEY), KEY, NOW, 60)["registration"] == "r"
    with pytest.raises(OrderRejected) as caught:
        verify_signed_json(body, "v1=ünïcode", KEY, NOW, 60)
    assert caught.value.reason == "bad_signature"
