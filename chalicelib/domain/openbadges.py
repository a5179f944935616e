"""A workshop's badge as an Open Badges 3.0 credential: a W3C verifiable credential of type
``OpenBadgeCredential``, secured as a VC-JWT (a compact JWS whose payload is the credential).

* The **issuer** is the platform: a ``Profile`` published at its own URL, which is its id.
* Each workshop is an **achievement** (``Achievement``, published at its URL): its criteria are
  the workshop's exercise checks, every one passed (taking part, in a workshop without checks).
* A **credential** says that the holder of an email address earned it: the subject carries no
  address, only ``sha256$`` of the address (lower case) followed by a salt, with the salt, so that
  whoever is told the address can check it and nobody else learns it.
* The **key** is an Ed25519 key derived from the platform's ``badge_key`` secret (HKDF-SHA256), so
  any random string of that secret works and every function that holds it signs alike. The JWS
  header's ``kid`` is the URL where its public key is published as a JWK.

A credential is made from the registration each time it is asked for; Ed25519 signatures are
deterministic, so the same registration gets the same JWT. Heavy imports (PyJWT, cryptography) are
made where a credential is signed, not when this module is loaded.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from chalicelib.domain.checks import earned
from chalicelib.domain.registration import FINISHED
from chalicelib.domain.values import Registration, Workshop

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

CONTEXT = ["https://www.w3.org/ns/credentials/v2", "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"]
CREDENTIAL_TYPE = ["VerifiableCredential", "OpenBadgeCredential"]
SCHEMA = [{"id": "https://purl.imsglobal.org/spec/ob/v3p0/schema/json/ob_v3p0_achievementcredential_schema.json",
           "type": "1EdTechJsonSchemaValidator2019"}]
ALGORITHM = "EdDSA"
TOKEN_TYPE = "vc+jwt"  # the JOSE header's typ; the JWT's media type is application/vc+jwt
IMAGE_SUFFIXES = (".png", ".svg")  # the badge images a credential can be baked into
SEED_INFO = b"wod-openbadges:ed25519-seed"
SALT_INFO = b"wod-openbadges:identity-salt"
SALT_LENGTH = 32  # hex characters: 128 bits


@dataclass(frozen=True)
class Issuer:
    """The platform as an issuer: ``id`` is its profile's URL, ``url`` its home page."""

    id: str
    name: str
    url: str

    def profile(self) -> dict[str, Any]:
        return {"id": self.id, "type": ["Profile"], "name": self.name, "url": self.url}


def has_credential(reg: Registration, workshop: Workshop) -> bool:
    """A registration's credential exists once it finished and earned the workshop's badge."""
    return (reg.status == FINISHED and reg.finished_at is not None
            and earned(reg.badge_earned, workshop.checks, reg.completion, reg.checks_passed))


def bakeable(workshop: Workshop) -> bool:
    """Whether the workshop's badge is an image of its own folder that a credential can be baked into."""
    badge = workshop.badge or ""
    return bool(badge) and "://" not in badge and badge.lower().endswith(IMAGE_SUFFIXES)


def criteria(issuer: Issuer, workshop: Workshop) -> str:
    title = workshop.title or workshop.id
    if not workshop.checks:
        return (f"Took part in the workshop \"{title}\" on {issuer.name}, in a Jupyter environment of their own; "
                "the workshop has no checked exercises.")
    checks = "its exercise check" if workshop.checks == 1 else f"every one of its {workshop.checks} exercise checks"
    return (f"Passed {checks} in the workshop \"{title}\" on {issuer.name}: "
            "notebook cells that test the participant's own answers, run in a Jupyter environment of their own "
            "and measured by the platform when the session ended.")


def achievement(issuer: Issuer, achievement_id: str, workshop: Workshop, image_url: str | None) -> dict[str, Any]:
    """The workshop as an ``Achievement`` (embedded in each credential, and published at ``achievement_id``)."""
    found: dict[str, Any] = {
        "id": achievement_id,
        "type": ["Achievement"],
        "achievementType": "Badge",
        "name": workshop.title or workshop.id,
        "description": workshop.description or workshop.title or workshop.id,
        "criteria": {"narrative": criteria(issuer, workshop)},
        "creator": issuer.profile(),
    }
    if image_url:
        found["image"] = {"id": image_url, "type": "Image", "caption": f"{found['name']} badge"}
    return found


def published(document: Mapping[str, Any]) -> dict[str, Any]:
    """A profile or an achievement as a document of its own (JSON-LD: with its contexts)."""
    return {"@context": CONTEXT, **document}


def identity_hash(email: str, salt: str) -> str:
    """``sha256$`` and the hex digest of the address (lower case) followed by the salt."""
    return "sha256$" + hashlib.sha256((email.strip().lower() + salt).encode()).hexdigest()


def credential_id(issuer: Issuer, registration_id: str) -> str:
    """The credential's id: a URN that never changes for a registration and names no one."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"{issuer.id}#{registration_id}").urn


def _moment(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(microsecond=0)


def credential(issuer: Issuer, earned: Mapping[str, Any], reg: Registration, salt: str,
               valid_from: datetime) -> dict[str, Any]:
    """The ``OpenBadgeCredential`` saying that ``reg``'s address earned the ``earned`` achievement,
    with the JWT's registered claims beside its members (iss, sub, jti, nbf, iat)."""
    moment = _moment(valid_from)
    subject_hash = identity_hash(reg.email, salt)
    vc_id = credential_id(issuer, reg.id)
    return {
        "@context": CONTEXT,
        "id": vc_id,
        "type": CREDENTIAL_TYPE,
        "issuer": issuer.profile(),
        "validFrom": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "name": earned["name"],
        "credentialSubject": {
            "type": ["AchievementSubject"],
            "identifier": [{"type": "IdentityObject", "identityHash": subject_hash, "identityType": "emailAddress",
                            "hashed": True, "salt": salt}],
            "achievement": dict(earned),
        },
        "credentialSchema": SCHEMA,
        "iss": issuer.id,
        "sub": subject_hash,
        "jti": vc_id,
        "nbf": int(moment.timestamp()),
        "iat": int(moment.timestamp()),
    }


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class IssuerKey:
    """The issuer's Ed25519 key, and the key of the subjects' salts, both derived from the secret."""

    def __init__(self, secret: bytes):
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        if not secret:
            raise ValueError("the badge key is empty")

        def derive(info: bytes) -> bytes:
            return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret)

        self.private: Ed25519PrivateKey = Ed25519PrivateKey.from_private_bytes(derive(SEED_INFO))
        self._salt_key = derive(SALT_INFO)

    @property
    def x(self) -> str:
        """The public key, as a JWK's ``x``."""
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        return _b64url(self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))

    @property
    def thumbprint(self) -> str:
        """The JWK thumbprint (RFC 7638): what names this key among the ones ever published."""
        members = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": self.x}, separators=(",", ":"), sort_keys=True)
        return _b64url(hashlib.sha256(members.encode()).digest())

    def jwk(self, kid: str) -> dict[str, str]:
        """The public key as a JWK, ``kid`` the URL it is published at."""
        return {"kty": "OKP", "crv": "Ed25519", "x": self.x, "kid": kid, "alg": ALGORITHM, "use": "sig"}

    def salt(self, registration_id: str) -> str:
        """A registration's salt: the same at every issue, unknown to anyone without the secret."""
        return hmac.new(self._salt_key, registration_id.encode(), hashlib.sha256).hexdigest()[:SALT_LENGTH]

    def sign(self, claims: Mapping[str, Any], kid: str) -> str:
        """``claims`` as a compact JWS (VC-JWT): EdDSA, ``kid`` the URL of the public JWK."""
        import jwt

        return jwt.encode(dict(claims), self.private, algorithm=ALGORITHM, headers={"kid": kid, "typ": TOKEN_TYPE})


@functools.lru_cache(maxsize=4)
def issuer_key(secret: bytes) -> IssuerKey:
    return IssuerKey(secret)
