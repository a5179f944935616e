"""Order intake: SES inbound mail arrives as an SNS notification; this edge reads the MIME and
verifies the order, then :func:`chalicelib.services.orders.accept` starts its workflow.

Every rejection is logged with its reason and has no side effect.
"""
from __future__ import annotations

import base64
import json
import time
from email import message_from_bytes, policy

from chalicelib.domain.orders import SIGNATURE_HEADER, Order, OrderRejected, verify_order
from chalicelib.observability import count, logger
from chalicelib.services import orders
from chalicelib.services.bootstrap import for_process
from chalicelib.services.context import Context

VERDICTS = ("spamVerdict", "virusVerdict", "spfVerdict", "dkimVerdict")


def _notification(sns_message: str) -> dict:
    try:
        data = json.loads(sns_message)
    except (ValueError, RecursionError) as exc:
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


def parse_order(ctx: Context, sns_message: str) -> Order:
    """The verified order an SES notification carries; :class:`OrderRejected` otherwise."""
    notification = _notification(sns_message)
    _check_verdicts(notification.get("receipt") or {})
    mail = message_from_bytes(_raw_mime(notification), policy=policy.default)
    body_part = mail.get_body(("plain",))
    if body_part is None:
        raise OrderRejected("malformed", "the order email has no text body")
    body = body_part.get_content().strip().encode()
    signature = mail.get(SIGNATURE_HEADER)
    # freshness is wall time, whatever the business clock says (it may run faster in a demo)
    return verify_order(body, str(signature) if signature else None, ctx.key("order_key"),
                        time.time(), ctx.settings.order_max_age_seconds)


def handle(ctx: Context, sns_message: str, message_id: str = "") -> str:
    """Process one notification; return what happened (for logs and tests)."""
    try:
        order = parse_order(ctx, sns_message)
        started = orders.accept(ctx, order)
    except OrderRejected as exc:
        logger.warning("order rejected", extra={"reason": exc.reason, "detail": exc.message, "sns": message_id})
        count("RejectedOrders")
        return f"rejected:{exc.reason}"
    logger.info("order accepted" if started else "duplicate order ignored",
                extra={"registration": order.registration, "student": order.student, "workshop": order.workshop,
                       "action": order.action})
    return "started" if started else "duplicate"


def handle_order(message: str, raw_event: dict) -> str:
    """The Lambda handler's body: one SNS record."""
    message_id = ((raw_event.get("Records") or [{}])[0].get("Sns") or {}).get("MessageId", "")
    return handle(for_process(), message, message_id)
