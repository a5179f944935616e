"""The participant's own links: built from, and resolved to, their secret action token, which opens
the registration while it is live and for ``WOD_LINK_DAYS_AFTER_END`` days after it ended; and the
links of a verifiable badge, whose token shows that credential only, for as long as the registration is kept."""
from __future__ import annotations

import re
from datetime import timedelta

from chalicelib.domain import links
from chalicelib.domain.errors import NotFound
from chalicelib.domain.openbadges import bakeable, has_credential
from chalicelib.domain.registration import LIVE_STATUSES, is_registration_id
from chalicelib.domain.text import N_
from chalicelib.domain.values import Registration, Workshop
from chalicelib.services.context import Context

MAX_TOKEN_LENGTH = 128
PAGE = re.compile(r"[a-z]+")  # the first segment of a page's route


def action_token(ctx: Context, registration_id: str) -> str:
    return links.action_token(ctx.key("link_key"), registration_id)


def page_url(ctx: Context, registration_id: str, page: str = "registrations") -> str:
    """A page of the participant's own, opened by their action token: ``/<page>/<token>``, the status
    page by default (a mail's template asks for the others: ``page_url("confirm")``)."""
    if not PAGE.fullmatch(page):
        raise ValueError(f"not a page's name: {page!r}")
    return f"{ctx.settings.public_url}/{page}/{action_token(ctx, registration_id)}"


def status_url(ctx: Context, registration_id: str) -> str:
    return page_url(ctx, registration_id)


def registration_id(ctx: Context, token: str) -> str:
    """The registration a participant's token opens; NotFound for anything else (a bare public
    id included), without saying which part was wrong."""
    found = (links.registration_of(ctx.key("link_key"), token)
             if isinstance(token, str) and len(token) <= MAX_TOKEN_LENGTH else None)
    if found is None or not is_registration_id(found):
        raise NotFound(N_("No registration has this link. Open the link from your latest email."))
    reg = ctx.stores.registrations.get(found)
    ended = reg.finished_at if reg.status not in LIVE_STATUSES else None
    if ended is not None and ctx.clock() - ended > timedelta(days=ctx.settings.link_days_after_end):
        raise NotFound(N_("This link has expired: the registration ended. Register again from the catalog."))
    return found


def credential_url(ctx: Context, registration_id: str) -> str:
    """The verifiable badge's own link (JSON; ``/jwt``, ``/image`` beside it): a token for that
    credential only, which opens no registration and does not expire with the participant's links."""
    token = links.action_token(ctx.key("link_key"), registration_id, "credential")
    return f"{ctx.settings.public_url}/openbadges/credentials/{token}"


def verifiable_badge(ctx: Context, reg: Registration, workshop: Workshop | None) -> dict[str, str | None] | None:
    """The links of a registration's verifiable badge, once it has one: the credential (JSON), the
    same as a VC-JWT, and the badge image with it baked in (None when the badge is no image of
    the workshop's folder)."""
    if workshop is None or not has_credential(reg, workshop):
        return None
    url = credential_url(ctx, reg.id)
    return {"credential": url, "jwt": f"{url}/jwt", "image": f"{url}/image" if bakeable(workshop) else None}


def credential_registration(ctx: Context, token: str) -> str:
    """The registration a verifiable badge's token was made for; NotFound for anything else."""
    found = (links.registration_of(ctx.key("link_key"), token, "credential")
             if isinstance(token, str) and len(token) <= MAX_TOKEN_LENGTH else None)
    if found is None or not is_registration_id(found):
        raise NotFound("No verifiable badge has this link.")
    return found
