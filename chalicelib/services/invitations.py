"""The calendar invitation a participant email carries (:mod:`chalicelib.domain.calendar`), made
with this platform's sender, public host and the participant's status page."""
from __future__ import annotations

from urllib.parse import urlsplit

from chalicelib.adapters import translations
from chalicelib.domain import calendar, languages
from chalicelib.domain.mail import Email
from chalicelib.domain.values import Registration, Workshop
from chalicelib.services import links
from chalicelib.services.context import Context


def invitation(ctx: Context, reg: Registration, workshop: Workshop, method: str) -> calendar.Invitation:
    """In the registration's language (the caller gives the workshop with its title in it)."""
    language = languages.shipped(reg.language) or languages.DEFAULT
    return calendar.invitation(reg, workshop, method, host=urlsplit(ctx.settings.public_url).hostname or "localhost",
                               sender=ctx.settings.mail_from, url=links.status_url(ctx, reg.id), now=ctx.clock(),
                               say=lambda text: translations.translate(text, language))


def with_invitation(ctx: Context, email: Email, reg: Registration, workshop: Workshop, method: str | None) -> Email:
    """``email`` with the session's ``method`` invitation attached; as it is without a method."""
    if method is None:
        return email
    return calendar.attach(email, invitation(ctx, reg, workshop, method))
