"""Verifiable badges (Open Badges 3.0, :mod:`chalicelib.domain.openbadges`): the platform's issuer
profile and public key, each workshop's achievement, and each earned credential, as the public
routes under ``/openbadges/`` show them.

The signing key comes from the ``badge_key`` secret. A credential is made again from its
registration whenever it is asked for, so it lives as long as the registration's personal data;
what the participant downloaded (the JWT, the baked image) stays verifiable against the published
key as long as that key is the platform's.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parseaddr
from typing import Any

from chalicelib.domain import baking, openbadges
from chalicelib.domain.errors import NotFound
from chalicelib.domain.registration import is_workshop_id
from chalicelib.domain.values import Registration, Workshop
from chalicelib.services import links, outbox, registrations
from chalicelib.services.context import Context

DEFAULT_ISSUER_NAME = "Workshops-on-Demand"
BASE = "/openbadges"


@dataclass(frozen=True)
class Issued:
    """An earned credential: its members and claims (``claims``), and the same signed (``jwt``)."""

    claims: dict[str, Any]
    jwt: str
    workshop: Workshop


def issuer(ctx: Context) -> openbadges.Issuer:
    """The platform as issuer; its name is the display name of the mail sender (``WOD_MAIL_FROM``)."""
    public = ctx.settings.public_url
    name = parseaddr(ctx.settings.mail_from)[0].strip() or DEFAULT_ISSUER_NAME
    return openbadges.Issuer(id=f"{public}{BASE}/issuer", name=name, url=public)


def issuer_key(ctx: Context) -> openbadges.IssuerKey:
    return openbadges.issuer_key(ctx.key("badge_key"))


def key_url(ctx: Context, key: openbadges.IssuerKey) -> str:
    """The JWS ``kid``: where the public key is published as a JWK."""
    return f"{ctx.settings.public_url}{BASE}/keys/{key.thumbprint}"


def achievement_url(ctx: Context, workshop_id: str) -> str:
    return f"{ctx.settings.public_url}{BASE}/achievements/{workshop_id}"


def profile(ctx: Context) -> dict[str, Any]:
    return openbadges.published(issuer(ctx).profile())


def key_set(ctx: Context) -> dict[str, Any]:
    """The issuer's public keys (JWKS): the one it signs with."""
    key = issuer_key(ctx)
    return {"keys": [key.jwk(key_url(ctx, key))]}


def public_key(ctx: Context, key_id: str) -> dict[str, str]:
    """The JWK a credential's ``kid`` names; NotFound for any other."""
    key = issuer_key(ctx)
    if key_id != key.thumbprint:
        raise NotFound("The issuer publishes no key of this name.")
    return key.jwk(key_url(ctx, key))


def _achievement(ctx: Context, workshop: Workshop) -> dict[str, Any]:
    return openbadges.achievement(issuer(ctx), achievement_url(ctx, workshop.id), workshop,
                                  outbox.badge_url(ctx, workshop))


def achievement(ctx: Context, workshop_id: str) -> dict[str, Any]:
    """A workshop's achievement, active or not (a credential names it for good)."""
    if not is_workshop_id(workshop_id):
        raise NotFound("There is no such workshop.")
    return openbadges.published(_achievement(ctx, ctx.stores.recent.get(workshop_id)))


def issue(ctx: Context, reg: Registration, workshop: Workshop) -> Issued:
    """The credential of a registration that has one (:func:`openbadges.has_credential`). It is valid
    from the end of the session, or from now when the business clock runs ahead (a local demo)."""
    if reg.finished_at is None or not openbadges.has_credential(reg, workshop):
        raise NotFound("This registration has not earned the workshop's badge, so it has no verifiable badge.")
    key = issuer_key(ctx)
    valid_from = min(reg.finished_at, datetime.now(UTC))
    claims = openbadges.credential(issuer(ctx), _achievement(ctx, workshop), reg, key.salt(reg.id), valid_from)
    return Issued(claims, key.sign(claims, key_url(ctx, key)), workshop)


def credential(ctx: Context, token: str) -> Issued:
    """The credential a verifiable badge's link shows; NotFound for a token that is not one, a
    registration that is gone or has not earned the badge."""
    reg = ctx.stores.registrations.get(links.credential_registration(ctx, token))
    return issue(ctx, reg, ctx.stores.recent.get(reg.workshop_id))


def baked_badge(ctx: Context, token: str) -> tuple[bytes, str]:
    """The workshop's badge image with the credential baked in (bytes, ``.png`` or ``.svg``)."""
    issued = credential(ctx, token)
    found = registrations.workshop_badge(ctx, issued.workshop.id) if openbadges.bakeable(issued.workshop) else None
    if found is None:
        raise NotFound("This workshop's badge is no image of its own that the credential can be baked into: "
                       "download the credential itself.")
    image, suffix = found
    try:
        return baking.bake(image, suffix, issued.jwt), suffix
    except baking.UnbakeableImage as exc:
        raise NotFound(f"This workshop's badge image cannot carry the credential ({exc}): download the credential "
                       "itself.") from exc
