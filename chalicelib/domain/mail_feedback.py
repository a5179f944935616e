"""SES's word on a mail it sent: a bounce or a complaint, as the configuration set's event
destination publishes it to SNS (``eventType``; an identity's own feedback notification says
``notificationType``), read into whose registration it was and what it marks.

Every participant email names its registration in the :data:`chalicelib.domain.mail.REGISTRATION_HEADER`
header, which event publishing returns in ``mail.headers``; the SES mailer also sends it as the
``registration`` message tag (``mail.tags``), kept when SES leaves the headers out. Pure: anything
that is not such a notification is None.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from chalicelib.domain.mail import REGISTRATION_HEADER, REGISTRATION_TAG

BOUNCE, COMPLAINT = "bounce", "complaint"
ID_SHAPED = re.compile(r"[A-Za-z0-9_-]{1,80}")  # a registration id (an item key)


@dataclass(frozen=True)
class Feedback:
    """``kind``: bounce or complaint; ``bounce_type``: SES's (Permanent, Transient, Undetermined),
    bounces only; ``registration``: the id the mail named, None when it named none (or nothing
    id-shaped)."""

    kind: str
    bounce_type: str | None
    registration: str | None

    @property
    def mark(self) -> str:
        """What the registration is marked with: ``complaint``, ``permanent``, or ``transient``
        (a bounce SES could not tell: it may deliver next time)."""
        if self.kind == COMPLAINT:
            return COMPLAINT
        return "permanent" if self.bounce_type == "Permanent" else "transient"


def _registration(mail: dict[str, Any]) -> str | None:
    found = None
    headers = mail.get("headers")
    if isinstance(headers, list):
        found = next((h.get("value") for h in headers if isinstance(h, dict)
                      and str(h.get("name", "")).lower() == REGISTRATION_HEADER.lower()), None)
    if found is None:
        tags = mail.get("tags")
        values = tags.get(REGISTRATION_TAG) if isinstance(tags, dict) else None
        found = values[0] if isinstance(values, list) and values else None
    found = found.strip() if isinstance(found, str) else None
    return found if found and ID_SHAPED.fullmatch(found) else None


def parse(message: str | bytes) -> Feedback | None:
    """The feedback an SES notification (SNS's ``Message``) carries; None when it is not JSON,
    not a bounce or a complaint, or not shaped as SES writes one."""
    try:
        notification = json.loads(message)
    except (TypeError, ValueError):
        return None
    if not isinstance(notification, dict):
        return None
    kind = str(notification.get("eventType") or notification.get("notificationType") or "").lower()
    mail = notification.get("mail")
    if kind not in (BOUNCE, COMPLAINT) or not isinstance(mail, dict):
        return None
    bounce_type = None
    if kind == BOUNCE:
        bounce = notification.get("bounce")
        bounce_type = bounce.get("bounceType") if isinstance(bounce, dict) else None
        if not isinstance(bounce_type, str):
            return None
    return Feedback(kind, bounce_type, _registration(mail))
