"""The mail port and its two adapters: SES (AWS) and SMTP (local mode, own relays)."""
from __future__ import annotations

import smtplib
from collections.abc import Callable
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate, make_msgid, parseaddr
from typing import Any, Protocol

from chalicelib.domain.errors import Unavailable
from chalicelib.domain.mail import Email


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
    return msg


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
    """Sends raw MIME so custom headers (the order signature) survive."""

    def __init__(self, client_factory: Callable[[], Any], sender: str):
        self.client_factory, self.sender = client_factory, sender

    def send(self, email: Email) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        msg = to_mime(email, self.sender)
        try:
            self.client_factory().send_raw_email(
                Source=parseaddr(self.sender)[1], Destinations=[email.to], RawMessage={"Data": msg.as_bytes()}
            )
        except (BotoCoreError, ClientError) as exc:
            raise Unavailable(f"SES refused the mail: {exc}") from exc
