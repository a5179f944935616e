"""Local SES inbound: mail to a backend's orders address becomes an SES notification over SNS.

The shape matches what a real SES receipt rule with an SNS action publishes
(``notificationType``, ``mail``, ``receipt`` with verdicts, ``content``), so the
intake handler runs the same code as on AWS.
"""
from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

log = logging.getLogger("wod.local.orders")
PASS = {"status": "PASS"}


def ses_notification(raw: bytes, mail_from: str, rcpt_tos: list[str]) -> dict:
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {
        "notificationType": "Received",
        "mail": {"timestamp": now, "source": mail_from, "messageId": uuid.uuid4().hex, "destination": rcpt_tos},
        "receipt": {"timestamp": now, "recipients": rcpt_tos, "spamVerdict": PASS, "virusVerdict": PASS,
                    "spfVerdict": PASS, "dkimVerdict": PASS, "dmarcVerdict": PASS,
                    "action": {"type": "SNS", "topicArn": "arn:aws:sns:us-east-1:123456789012:wod-orders",
                               "encoding": "UTF8"}},
        "content": raw.decode("utf-8", errors="replace"),
    }


def sns_event(message: str, subject: str = "Amazon SES Email Receipt Notification") -> dict:
    return {"Records": [{"EventSource": "aws:sns", "EventVersion": "1.0", "Sns": {
        "Type": "Notification", "MessageId": str(uuid.uuid4()), "Subject": subject, "Message": message,
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:wod-orders",
        "Timestamp": datetime.now(UTC).isoformat(), "MessageAttributes": {}}}]}


class OrderRouter:
    """SMTP router: orders go to the intake handler, everything else to the inbox."""

    def __init__(self, inbox: Callable, intake: Callable[[dict, object], object], orders_addresses: Iterable[str]):
        self.inbox, self.intake = inbox, intake
        self.orders = {a.lower() for a in orders_addresses}

    def __call__(self, raw: bytes, mail_from: str, rcpt_tos: list[str]):
        orders = [r for r in rcpt_tos if r.lower() in self.orders]
        others = [r for r in rcpt_tos if r.lower() not in self.orders]
        if orders:
            outcome = self.intake(sns_event(json.dumps(ses_notification(raw, mail_from, orders))), None)
            log.info("order mail to %s: %s", ", ".join(orders), outcome)
        if others:
            return self.inbox(raw, mail_from, others)
        return None
