"""The mail port and its two adapters: SES (AWS) and SMTP (local mode, own relays)."""
from __future__ import annotations

import smtplib
import threading
import time
from collections.abc import Callable
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate, make_msgid, parseaddr
from typing import Any, Protocol

from chalicelib.domain.errors import Unavailable
from chalicelib.domain.mail import REGISTRATION_HEADER, REGISTRATION_TAG, Email, Part

# what SES (v1 and v2) answers when a send goes past the account's rate or daily quota
THROTTLE_CODES = frozenset({"Throttling", "ThrottlingException", "MaxSendingRateExceeded", "TooManyRequestsException",
                            "LimitExceededException", "LimitExceeded"})
DAILY_QUOTA = "daily message quota exceeded"


class MailThrottled(Unavailable):
    """The mail service refused a send for its rate (try again in a second) or its daily quota
    (``daily``: not before the quota renews). Nothing is wrong with the email itself."""

    def __init__(self, message: str, daily: bool = False):
        super().__init__(message)
        self.daily = daily


class Mailer(Protocol):
    def send(self, email: Email) -> None: ...


def to_mime(email: Email, sender: str) -> EmailMessage:
    """Build the MIME message; the SMTP policy refuses CR/LF in any header value."""
    msg = EmailMessage(policy=SMTP)
    msg["From"] = sender
    msg["To"] = email.to
    msg["Subject"] = email.subject
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = make_msgid(domain=parseaddr(sender)[1].rpartition("@")[2] or None)
    for name, value in email.headers.items():
        msg[name] = value
    msg.set_content(email.text)
    if email.html:
        msg.add_alternative(email.html, subtype="html")
    for part in email.alternatives:
        _add(msg.add_alternative, part)
    for part in email.attachments:
        _add(msg.add_attachment, part)
    return msg


def _add(add: Callable[..., None], part: Part) -> None:
    """Text goes as UTF-8 (Content-Type ``text/<subtype>; charset="utf-8"``), bytes as base64;
    a part with a filename is an attachment."""
    maintype, _, subtype = part.mime_type.partition("/")
    named = {"filename": part.filename} if part.filename else {}
    if isinstance(part.content, str):
        if maintype != "text":
            raise ValueError(f"text content needs a text/* type, not {part.mime_type}")
        add(part.content, subtype=subtype, params=dict(part.params), **named)
    else:
        add(part.content, maintype=maintype, subtype=subtype, params=dict(part.params), **named)


class SmtpMailer:
    def __init__(self, host: str, port: int, sender: str, timeout: float = 10.0):
        self.host, self.port, self.sender, self.timeout = host, port, sender, timeout

    def send(self, email: Email) -> None:
        msg = to_mime(email, self.sender)
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                smtp.send_message(msg)
        except (OSError, smtplib.SMTPException) as exc:
            raise Unavailable(f"SMTP relay {self.host}:{self.port} refused the mail: {exc}") from exc


class SesMailer:
    """Sends raw MIME so custom headers (the order signature) survive; names the configuration set
    (SES's event publishing) when one is set, and tags a participant's mail with its registration.
    SES's rate and daily-quota refusals are
    :class:`MailThrottled`, every other failure :class:`Unavailable`."""

    def __init__(self, client_factory: Callable[[], Any], sender: str, configuration_set: str | None = None):
        self.client_factory, self.sender, self.configuration_set = client_factory, sender, configuration_set

    def send(self, email: Email) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        msg = to_mime(email, self.sender)
        request: dict[str, Any] = {"Source": parseaddr(self.sender)[1], "Destinations": [email.to],
                                   "RawMessage": {"Data": msg.as_bytes()}}
        if self.configuration_set:
            request["ConfigurationSetName"] = self.configuration_set
        registration = email.headers.get(REGISTRATION_HEADER)
        if registration:  # SES's bounce and complaint notifications carry the tag
            request["Tags"] = [{"Name": REGISTRATION_TAG, "Value": registration}]
        try:
            self.client_factory().send_raw_email(**request)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            message = str(error.get("Message", ""))
            if DAILY_QUOTA in message.lower():
                raise MailThrottled(f"SES daily sending quota exhausted: {message}", daily=True) from exc
            if error.get("Code") in THROTTLE_CODES:
                raise MailThrottled(f"SES sending rate exceeded: {message}") from exc
            raise Unavailable(f"SES refused the mail: {exc}") from exc
        except BotoCoreError as exc:
            raise Unavailable(f"SES refused the mail: {exc}") from exc


class SesQuota:
    """The account's SES sending rate (``GetSendQuota``'s MaxSendRate, emails per second), read
    at most once per ``ttl`` seconds in this process. When it cannot be read, ``fallback`` (the
    sandbox's rate) until the next try."""

    def __init__(self, client_factory: Callable[[], Any], ttl: float = 300.0, fallback: float = 1.0,
                 clock: Callable[[], float] = time.monotonic):
        self.client_factory, self.ttl, self.fallback, self.clock = client_factory, ttl, fallback, clock
        self._rate: float | None = None
        self._read_at = 0.0
        self._lock = threading.Lock()

    def rate(self) -> float:
        with self._lock:
            if self._rate is None or self.clock() - self._read_at >= self.ttl:
                self._rate, self._read_at = self._read(), self.clock()
            return self._rate

    def _read(self) -> float:
        from botocore.exceptions import BotoCoreError, ClientError

        from chalicelib.observability import logger

        try:
            rate = float(self.client_factory().get_send_quota()["MaxSendRate"])
        except (BotoCoreError, ClientError, KeyError, TypeError, ValueError) as exc:
            logger.warning("SES sending rate not read; pacing at the sandbox's rate",
                           extra={"error": str(exc)[:300], "rate": self.fallback})
            return self.fallback
        return rate if rate > 0 else self.fallback
