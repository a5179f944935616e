"""The participant's own links: built from, and resolved to, their secret action token, which opens
the registration while it is live and for ``WOD_LINK_DAYS_AFTER_END`` days after it ended."""
from __future__ import annotations

from datetime import timedelta

from chalicelib.domain import links
from chalicelib.domain.errors import NotFound
from chalicelib.domain.registration import LIVE_STATUSES, is_registration_id
from chalicelib.services.context import Context

MAX_TOKEN_LENGTH = 128


def action_token(ctx: Context, registration_id: str) -> str:
    return links.action_token(ctx.key("link_key"), registration_id)


def status_url(ctx: Context, registration_id: str) -> str:
    return f"{ctx.settings.public_url}/registrations/{action_token(ctx, registration_id)}"


def survey_url(ctx: Context, registration_id: str) -> str:
    """The survey page (the thank-you mail's buttons add ``?rating=N``)."""
    return f"{ctx.settings.public_url}/survey/{action_token(ctx, registration_id)}"


def registration_id(ctx: Context, token: str) -> str:
    """The registration a participant's token opens; NotFound for anything else (a bare public
    id included), without saying which part was wrong."""
    found = (links.registration_of(ctx.key("link_key"), token)
             if isinstance(token, str) and len(token) <= MAX_TOKEN_LENGTH else None)
    if found is None or not is_registration_id(found):
        raise NotFound("No registration has this link. Open the link from your latest email.")
    reg = ctx.stores.registrations.get(found)
    ended = reg.finished_at if reg.status not in LIVE_STATUSES else None
    if ended is not None and ctx.clock() - ended > timedelta(days=ctx.settings.link_days_after_end):
        raise NotFound("This link has expired: the registration ended. Register again from the catalog.")
    return found
