"""Order intake: only fresh, signed, unseen orders with passing SES verdicts start a workflow."""
from __future__ import annotations

import json
import time

import pytest

from chalicelib.adapters.mail import to_mime
from chalicelib.adapters.secrets import get_key
from chalicelib.backend.intake import handle
from chalicelib.domain.mail import Email
from chalicelib.domain.orders import SIGNATURE_HEADER, Order, sign
from local.orders import ses_notification


class Starter:
    def __init__(self):
        self.started: list[str] = []

    def __call__(self, order):
        if order.execution_name in self.started:
            return False
        self.started.append(order.execution_name)
        return True


@pytest.fixture
def starter(platform):
    """The platform's workflow starter, recording what it started."""
    platform.workflows = Starter()
    return platform.workflows


def order_mail(platform, order=None, key=None, headers=None):
    order = order or Order.new("CREATE", "WKSHP-X", "student7", "reg-1234567890abcdef", time.time())
    body = order.body()
    signature = sign(body, key or get_key(platform.settings, "order_key"))
    email = Email(to="orders@backend.wod.local", subject=order.subject, text=body.decode(),
                  headers={SIGNATURE_HEADER: signature} if headers is None else headers)
    raw = to_mime(email, "noreply@wod.local").as_bytes()
    return json.dumps(ses_notification(raw, "noreply@wod.local", ["orders@backend.wod.local"]))


def test_valid_order_starts_one_workflow_and_a_duplicate_delivery_none(platform, starter):
    message = order_mail(platform)
    assert handle(platform, message) == "started"
    assert starter.started == ["reg-1234567890abcdef-CREATE"]
    assert handle(platform, message) == "rejected:replay"  # same email delivered twice
    resent = order_mail(platform)  # the outbox resending: a new nonce, same registration
    assert handle(platform, resent) == "duplicate"
    assert starter.started == ["reg-1234567890abcdef-CREATE"]


def test_a_crash_between_the_start_and_the_nonce_loses_no_order(platform, tables, starter, monkeypatch):
    """The function stops (a timeout) after the workflow started, before the nonce was kept: SNS
    delivers the same message again, which starts nothing new and is not refused as a replay."""
    message = order_mail(platform)

    def timed_out(*args, **kwargs):
        raise TimeoutError("Task timed out after 30.00 seconds")

    with monkeypatch.context() as patched:
        patched.setattr(platform.stores.provisioning, "remember_nonce", timed_out)
        with pytest.raises(TimeoutError):
            handle(platform, message)
    assert starter.started == ["reg-1234567890abcdef-CREATE"] and tables.nonces.count() == 0
    assert handle(platform, message) == "duplicate"  # the redelivery
    assert starter.started == ["reg-1234567890abcdef-CREATE"] and tables.nonces.count() == 1
    assert handle(platform, message) == "rejected:replay"  # and once kept, a replay is refused


@pytest.mark.parametrize("case, reason", [
    ("forged", "bad_signature"), ("unsigned", "missing_signature"), ("stale", "stale"),
    ("spam", "verdict"), ("dkim", "verdict"), ("not-ses", "malformed"), ("unknown-action", "unknown_action"),
])
def test_bad_orders_are_rejected_without_side_effects(platform, tables, starter, case, reason):
    now = time.time()
    if case == "forged":
        message = order_mail(platform, key=b"not-the-key")
    elif case == "unsigned":
        message = order_mail(platform, headers={})
    elif case == "stale":
        message = order_mail(platform, Order.new("CREATE", "W", "s", "r", now - 3600))
    elif case in ("spam", "dkim"):
        note = json.loads(order_mail(platform))
        note["receipt"]["spamVerdict" if case == "spam" else "dkimVerdict"] = {"status": "FAIL"}
        message = json.dumps(note)
    elif case == "not-ses":
        message = "hello"
    else:
        message = order_mail(platform, Order("DESTROY", "W", "s", "r", int(now), "n" * 32))
    assert handle(platform, message) == f"rejected:{reason}"
    assert starter.started == []
    assert tables.nonces.count() == 0
