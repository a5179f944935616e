"""Open Badges 3.0 credentials (chalicelib/domain/openbadges.py): what a credential says, who gets
one, the issuer's key derived from its secret, and a VC-JWT that PyJWT verifies with the published
JWK and refuses once anything in it changed or another key signed it."""
from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from chalicelib.domain import links
from chalicelib.domain.openbadges import (
    CONTEXT,
    Issuer,
    IssuerKey,
    achievement,
    bakeable,
    credential,
    has_credential,
    issuer_key,
    published,
)
from chalicelib.domain.values import Registration, Workshop

ISSUER = Issuer("https://wod.example/openbadges/issuer", "Workshops-on-Demand", "https://wod.example")
KID = "https://wod.example/openbadges/keys/current"
ACHIEVEMENT = "https://wod.example/openbadges/achievements/WKSHP-PY101"
ENDED = datetime(2026, 11, 26, 11, 0, 30, 123456, tzinfo=UTC)
WORKSHOP = Workshop("WKSHP-PY101", title="Python automation", description="Files, CSV and JSON.", checks=4,
                    badge="badge.png")
FINISHED = Registration("0123456789abcdef0123", email="Ada.Lovelace@Example.com", workshop_id=WORKSHOP.id,
                        status="finished", finished_at=ENDED, completion=100.0, checks_passed=4)


def key(secret: bytes = b"a random string from the secrets") -> IssuerKey:
    return IssuerKey(secret)


def issued(reg: Registration = FINISHED, workshop: Workshop = WORKSHOP, signer: IssuerKey | None = None,
           valid_from: datetime = ENDED) -> tuple[dict, str]:
    signer = signer or key()
    earned = achievement(ISSUER, ACHIEVEMENT, workshop, "https://wod.example/badges/WKSHP-PY101")
    claims = credential(ISSUER, earned, reg, signer.salt(reg.id), valid_from)
    return claims, signer.sign(claims, KID)


def verify(token: str, jwk: dict, **options) -> dict:
    """What a verifier does: the key of the JWK it fetched, EdDSA only, the issuer it expects."""
    return jwt.decode(token, jwt.PyJWK(jwk).key, algorithms=["EdDSA"], issuer=ISSUER.id,
                      options={"require": ["iss", "sub", "jti", "nbf", "iat"], **options})


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_a_credential_is_an_open_badge_credential_of_the_workshop_for_the_hashed_address():
    claims, _ = issued()
    assert claims["@context"] == ["https://www.w3.org/ns/credentials/v2",
                                  "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"]
    assert claims["type"] == ["VerifiableCredential", "OpenBadgeCredential"]
    assert claims["issuer"] == {"id": ISSUER.id, "type": ["Profile"], "name": "Workshops-on-Demand",
                                "url": "https://wod.example"}
    assert claims["validFrom"] == "2026-11-26T11:00:30Z" and claims["name"] == "Python automation"
    subject = claims["credentialSubject"]
    assert subject["type"] == ["AchievementSubject"] and "id" not in subject
    [identity] = subject["identifier"]
    salt = key().salt(FINISHED.id)
    assert identity == {"type": "IdentityObject", "identityType": "emailAddress", "hashed": True, "salt": salt,
                        "identityHash": "sha256$" + hashlib.sha256(f"ada.lovelace@example.com{salt}".encode())
                        .hexdigest()}
    assert "Ada" not in json.dumps(claims) and "example.com" not in json.dumps(claims).replace("wod.example", "")
    earned = subject["achievement"]
    assert earned["id"] == ACHIEVEMENT and earned["type"] == ["Achievement"] and earned["name"] == "Python automation"
    assert earned["description"] == "Files, CSV and JSON."
    assert earned["criteria"]["narrative"].startswith("Passed every one of its 4 exercise checks")
    assert earned["image"] == {"id": "https://wod.example/badges/WKSHP-PY101", "type": "Image",
                               "caption": "Python automation badge"}
    # the JWT's registered claims, as OB 3.0 maps them
    assert claims["iss"] == ISSUER.id and claims["jti"] == claims["id"] and claims["id"].startswith("urn:uuid:")
    assert claims["sub"] == identity["identityHash"]
    assert claims["nbf"] == claims["iat"] == int(datetime(2026, 11, 26, 11, 0, 30, tzinfo=UTC).timestamp())
    assert "exp" not in claims and "validUntil" not in claims  # a badge does not expire


def test_a_workshop_without_checks_is_for_taking_part_and_one_without_a_badge_has_no_image():
    plain = replace(WORKSHOP, checks=0, badge=None, description="")
    earned = achievement(ISSUER, ACHIEVEMENT, plain, None)
    assert "no checked exercises" in earned["criteria"]["narrative"] and "image" not in earned
    assert earned["description"] == "Python automation"  # a description is required: the title stands in
    assert published(earned)["@context"] == CONTEXT and published(earned)["id"] == ACHIEVEMENT


def test_the_same_registration_gets_the_same_credential_and_another_one_another_id_and_salt():
    claims, token = issued()
    again, token_again = issued()
    other, _ = issued(replace(FINISHED, id="fedcba9876543210fedc"))
    assert (claims, token) == (again, token_again)  # Ed25519 signatures are deterministic
    assert other["id"] != claims["id"]
    assert other["credentialSubject"]["identifier"][0]["salt"] != claims["credentialSubject"]["identifier"][0]["salt"]
    assert len(key().salt(FINISHED.id)) == 32 and int(key().salt(FINISHED.id), 16) >= 0


@pytest.mark.parametrize(("change", "has"), [
    ({}, True),
    ({"status": "active"}, False),
    ({"status": "failed"}, False),
    ({"finished_at": None}, False),
    ({"checks_passed": 3, "completion": 75.0}, False),
    ({"checks_passed": None, "completion": None}, False),  # not measured
])
def test_only_a_finished_registration_that_passed_every_check_has_a_credential(change, has):
    assert has_credential(replace(FINISHED, **change), WORKSHOP) is has


def test_in_a_workshop_without_checks_a_participant_who_ran_a_cell_has_one():
    plain = replace(WORKSHOP, checks=0)
    assert has_credential(replace(FINISHED, completion=20.0, checks_passed=None), plain)
    assert not has_credential(replace(FINISHED, completion=0.0, checks_passed=None), plain)  # never showed up
    assert not has_credential(replace(FINISHED, completion=None, checks_passed=None), plain)
    assert not has_credential(replace(FINISHED, status="cancelled"), plain)


def test_whether_it_was_earned_is_kept_from_when_the_session_ended():
    """The workshop's checks changing later (added or taken out) changes no credential already decided."""
    passed_all = replace(FINISHED, checks_passed=2, badge_earned=True)
    assert has_credential(passed_all, replace(WORKSHOP, checks=3))
    passed_none = replace(FINISHED, checks_passed=0, completion=0.0, badge_earned=False)
    assert not has_credential(passed_none, replace(WORKSHOP, checks=0))


@pytest.mark.parametrize(("badge", "can"), [("badge.png", True), ("art/Badge.SVG", True), (None, False),
                                            ("https://cdn.example/badge.png", False), ("badge.gif", False)])
def test_a_credential_is_baked_only_into_a_png_or_svg_of_the_workshops_folder(badge, can):
    assert bakeable(replace(WORKSHOP, badge=badge)) is can


def test_the_key_is_derived_from_the_secret_and_published_as_an_ed25519_jwk():
    signer = key()
    assert issuer_key(b"a random string from the secrets").thumbprint == signer.thumbprint  # the same secret
    assert key(b"another secret").thumbprint != signer.thumbprint
    jwk = signer.jwk(KID)
    assert jwk == {"kty": "OKP", "crv": "Ed25519", "x": jwk["x"], "kid": KID, "alg": "EdDSA", "use": "sig"}
    raw = base64.urlsafe_b64decode(jwk["x"] + "==")
    assert Ed25519PublicKey.from_public_bytes(raw).public_bytes_raw() == raw and len(raw) == 32
    # RFC 7638: the SHA-256 of the required members, in order, without spaces
    members = '{"crv":"Ed25519","kty":"OKP","x":"' + jwk["x"] + '"}'
    assert signer.thumbprint == b64(hashlib.sha256(members.encode()).digest())
    with pytest.raises(ValueError):
        IssuerKey(b"")


def test_pyjwt_verifies_the_credential_with_the_published_jwk():
    claims, token = issued()
    assert jwt.get_unverified_header(token) == {"alg": "EdDSA", "kid": KID, "typ": "vc+jwt"}
    assert verify(token, key().jwk(KID)) == claims
    assert len(token.split(".")) == 3


def test_a_changed_payload_or_signature_is_refused():
    _, token = issued()
    header, payload, signature = token.split(".")
    forged = json.loads(base64.urlsafe_b64decode(payload + "=="))
    forged["credentialSubject"]["achievement"]["name"] = "Something else"
    changed_payload = ".".join((header, b64(json.dumps(forged).encode()), signature))
    with pytest.raises(jwt.InvalidSignatureError):
        verify(changed_payload, key().jwk(KID))
    flipped = bytearray(base64.urlsafe_b64decode(signature + "=="))
    flipped[0] ^= 1
    with pytest.raises(jwt.InvalidSignatureError):
        verify(".".join((header, payload, b64(bytes(flipped)))), key().jwk(KID))
    # a header that says "none" is not taken either
    unsigned = ".".join((b64(b'{"alg":"none","typ":"vc+jwt"}'), payload, ""))
    with pytest.raises(jwt.InvalidAlgorithmError):
        verify(unsigned, key().jwk(KID))


def test_a_credential_signed_by_another_key_is_refused():
    _, token = issued(signer=key(b"someone else's secret"))
    with pytest.raises(jwt.InvalidSignatureError):
        verify(token, key().jwk(KID))


def test_a_credential_is_valid_from_the_end_of_the_session_on():
    _, token = issued(valid_from=datetime.now(UTC) + timedelta(hours=1))
    with pytest.raises(jwt.ImmatureSignatureError):
        verify(token, key().jwk(KID))
    _, other_issuer = issued()
    with pytest.raises(jwt.InvalidIssuerError):
        jwt.decode(other_issuer, jwt.PyJWK(key().jwk(KID)).key, algorithms=["EdDSA"],
                   issuer="https://elsewhere.example/issuer")


def test_a_badge_link_is_not_an_action_token_and_an_action_token_is_not_a_badge_link():
    secret = b"link key"
    badge = links.action_token(secret, FINISHED.id, "credential")
    action = links.action_token(secret, FINISHED.id)
    assert badge != action
    assert links.registration_of(secret, badge, "credential") == FINISHED.id
    assert links.registration_of(secret, badge) is None and links.registration_of(secret, action, "credential") is None
    assert links.registration_of(b"another key", badge, "credential") is None
