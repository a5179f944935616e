"""Order intake: SES inbound mail arrives as an SNS notification; verify it, then start a workflow.

Every rejection is logged with its reason and has no side effect. Starting is
idempotent: the execution name comes from registration + action, so a
duplicate delivery starts nothing new.
"""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email import message_from_bytes, policy
from typing import Callable

from chalicelib.domain.orders import SIGNATURE_HEADER, Order, OrderRejected, verify_order
from chalicelib.observability import count, logger
from chalicelib.adapters.secrets import get_key
from chalicelib.settings import Settings
from chalicelib.store import provisioning

VERDICTS = ("spamVerdict", "virusVerdict", "spfVerdict", "dkimVerdict")


@dataclass(frozen=True)
class Intake:
    settings: Settings
    start: Callable[[Order], bool]  # starts the workflow; False when it already exists
    clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)


def _notification(sns_message: str) -> dict:
    try:
        data = json.loads(sns_message)
    except ValueError as exc:
        raise OrderRejected("malformed", "the SNS message is not an SES notification") from exc
    if not isinstance(data, dict) or data.get("notificationType") != "Received":
        raise OrderRejected("malformed", "not an SES 'Received' notification")
    return data


def _check_verdicts(receipt: dict) -> None:
    for name in VERDICTS:
        status = (receipt.get(name) or {}).get("status")
        if status != "PASS":
            raise OrderRejected("verdict", f"SES {name} is {status or 'missing'}")


def _raw_mime(notification: dict) -> bytes:
    content = notification.get("content")
    if not isinstance(content, str):
        raise OrderRejected("malformed", "the notification carries no message content")
    encoding = ((notification.get("receipt") or {}).get("action") or {}).get("encoding", "UTF8")
    return base64.b64decode(content) if encoding == "BASE64" else content.encode("utf-8")


def parse_order(intake: Intake, sns_message: str) -> Order:
    notification = _notification(sns_message)
    _check_verdicts(notification.get("receipt") or {})
    mail = message_from_bytes(_raw_mime(notification), policy=policy.default)
    body_part = mail.get_body(("plain",))
    if body_part is None:
        raise OrderRejected("malformed", "the order email has no text body")
    body = body_part.get_content().strip().encode()
    signature = mail.get(SIGNATURE_HEADER)
    now = intake.clock()
    order = verify_order(body, str(signature) if signature else None, get_key(intake.settings, "order_key"),
                         now.timestamp(), intake.settings.order_max_age_seconds)
    if not provisioning.remember_nonce(order.nonce, now + timedelta(seconds=2 * intake.settings.order_max_age_seconds)):
        raise OrderRejected("replay", "this order was already received")
    return order


def handle(intake: Intake, sns_message: str, message_id: str = "") -> str:
    """Process one notification; return what happened (for logs and tests)."""
    try:
        order = parse_order(intake, sns_message)
    except OrderRejected as exc:
        logger.warning("order rejected", extra={"reason": exc.reason, "detail": exc.message, "sns": message_id})
        count("RejectedOrders")
        return f"rejected:{exc.reason}"
    try:
        started = intake.start(order)
    except Exception:
        provisioning.forget_nonce(order.nonce)  # so the redelivery SNS makes is not taken for a replay
        raise
    logger.info("order accepted" if started else "duplicate order ignored",
                extra={"registration": order.registration, "student": order.student, "workshop": order.workshop,
                       "action": order.action})
    return "started" if started else "duplicate"
