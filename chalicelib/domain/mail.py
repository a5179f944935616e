"""An outbound email as the domain sees it; adapters turn it into MIME."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

# names the registration a participant email is for, so SES's bounce or complaint can be tied to it
# (ids are the status page's public token, not a secret)
REGISTRATION_HEADER = "X-WOD-Registration"
REGISTRATION_TAG = "registration"  # the same id as SES's message tag (``mail.tags`` in its notifications)


@dataclass(frozen=True)
class Part:
    """A body part besides the text and the HTML: text content goes as UTF-8 ``text/<subtype>``,
    bytes as they are; ``params`` are its Content-Type parameters (``method=REQUEST``), ``filename``
    names it as an attachment."""

    content: str | bytes
    mime_type: str  # "text/calendar", "application/ics"
    params: Mapping[str, str] = field(default_factory=dict)
    filename: str | None = None


@dataclass(frozen=True)
class Email:
    to: str
    subject: str
    text: str
    html: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    alternatives: tuple[Part, ...] = ()  # other renderings of the message (a calendar invitation)
    attachments: tuple[Part, ...] = ()
