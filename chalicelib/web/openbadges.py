"""Verifiable badges (Open Badges 3.0), public and read-only: the issuer's profile and key, each
workshop's achievement, and each earned credential at its own unguessable link, as JSON, as a
VC-JWT and baked into the badge image. Any site may read them (verifiers run in browsers too)."""
from __future__ import annotations

from chalice import Blueprint, Response

from chalicelib.web.http import SECURITY_HEADERS, ctx, html_errors, json_errors, json_response
from chalicelib.web.pages import BADGE_TYPES

openbadges = Blueprint(__name__)
ANYONE = {"Access-Control-Allow-Origin": "*"}
PUBLIC = {**ANYONE, "Cache-Control": "public, max-age=300"}
# a credential's link is its holder's to share: not cached on the way, not indexed
PRIVATE = {**ANYONE, "Cache-Control": "no-store", "X-Robots-Tag": "noindex"}
JWT_TYPE = "application/vc+jwt"


@openbadges.route("/openbadges/issuer", methods=["GET"])
@json_errors
def issuer():
    from chalicelib.services import openbadges as badges
    return json_response(badges.profile(ctx()), headers=PUBLIC)


@openbadges.route("/openbadges/jwks", methods=["GET"])
@json_errors
def key_set():
    from chalicelib.services import openbadges as badges
    return json_response(badges.key_set(ctx()), headers={**PUBLIC, "Content-Type": "application/jwk-set+json"})


@openbadges.route("/openbadges/keys/{key_id}", methods=["GET"])
@json_errors
def public_key(key_id):
    """The JWK that a credential's ``kid`` (this URL) names."""
    from chalicelib.services import openbadges as badges
    return json_response(badges.public_key(ctx(), key_id), headers={**PUBLIC, "Content-Type": "application/jwk+json"})


@openbadges.route("/openbadges/achievements/{workshop_id}", methods=["GET"])
@json_errors
def achievement(workshop_id):
    from chalicelib.services import openbadges as badges
    return json_response(badges.achievement(ctx(), workshop_id), headers=PUBLIC)


@openbadges.route("/openbadges/credentials/{token}", methods=["GET"])
@json_errors
def credential(token):
    """The credential as signed (its members and the JWT's claims)."""
    from chalicelib.services import openbadges as badges
    return json_response(badges.credential(ctx(), token).claims, headers=PRIVATE)


@openbadges.route("/openbadges/credentials/{token}/jwt", methods=["GET"])
@json_errors
def credential_jwt(token):
    from chalicelib.services import openbadges as badges
    return Response(body=badges.credential(ctx(), token).jwt,
                    headers={**SECURITY_HEADERS, **PRIVATE, "Content-Type": JWT_TYPE})


@openbadges.route("/openbadges/credentials/{token}/image", methods=["GET"])
@html_errors
def baked_badge(token):
    """The workshop's badge image carrying the credential (``/badges/<id>`` is the image alone)."""
    from chalicelib.services import openbadges as badges
    data, suffix = badges.baked_badge(ctx(), token)
    return Response(body=data.decode() if suffix == ".svg" else data,
                    headers={**PRIVATE, "Content-Type": BADGE_TYPES[suffix],
                             "Content-Disposition": f'inline; filename="badge{suffix}"',
                             "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
                             "X-Content-Type-Options": "nosniff"})
