"""Registration rules: what a valid applicant is, and the registration life states."""
from __future__ import annotations

import ipaddress
import re
import secrets
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from chalicelib.domain import languages
from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.text import N_, Text

# Registration statuses (docs/architecture.md, "Data model").
UNCONFIRMED = "unconfirmed"  # a seat (or waitlist place) held until the address confirms it
EXPIRED = "expired"  # a hold nobody confirmed in time: its seat went back
WAITLISTED = "waitlisted"
PENDING = "pending"
PROVISIONING = "provisioning"
ACTIVE = "active"
EXPIRING = "expiring"
FINISHED = "finished"
FAILED = "failed"
CANCELLED = "cancelled"
LIVE_STATUSES = frozenset({UNCONFIRMED, WAITLISTED, PENDING, PROVISIONING, ACTIVE, EXPIRING})

# A closed registration's personal data is deleted (DynamoDB TTL) this long after it ends.
PERSONAL_DATA_RETENTION_DAYS = 30


def confirm_window(minutes: int, workshop_confirms: bool) -> timedelta | None:
    """How long a new registration holds its seat unconfirmed; None when it needs no confirmation
    (``WOD_CONFIRM_MINUTES=0``, or a workshop with ``confirm: false``)."""
    return timedelta(minutes=minutes) if minutes > 0 and workshop_confirms else None


def personal_data_expiry(closed_at: datetime) -> int:
    """The TTL (epoch seconds) of a registration closed at ``closed_at``."""
    return int((closed_at + timedelta(days=PERSONAL_DATA_RETENTION_DAYS)).timestamp())


NAME_MAX = 64
COMPANY_MAX = 100
EMAIL_MAX = 254
TRUE_WORDS = frozenset({"on", "true", "yes", "1"})
EMAIL, FIRST_NAME, LAST_NAME, COMPANY = N_("Email"), N_("First name"), N_("Last name"), N_("Company")
RAW_SLACK = 4  # a field may arrive this many times longer than its limit (spaces are collapsed) before it is read


@dataclass(frozen=True)
class Applicant:
    email: str  # normalised, as shown to the participant
    first_name: str
    last_name: str
    company: str
    language: str = languages.DEFAULT  # of every mail the registration is sent

    @property
    def email_key(self) -> str:
        """The key of "one live registration per mailbox" (:func:`mailbox_key`)."""
        return mailbox_key(self.email)


# Providers whose mailboxes ignore dots in the local part, and their other domain names.
DOTLESS_DOMAINS = frozenset({"gmail.com"})
DOMAIN_ALIASES = {"googlemail.com": "gmail.com"}


def mailbox_key(email: str) -> str:
    """One identity per mailbox: case folded, a ``+tag`` dropped (``ada+1@x`` is ``ada@x``), and
    the dots of a provider that ignores them (``a.da@gmail.com`` is ``ada@gmail.com``)."""
    local, _, domain = email.rpartition("@")
    domain = DOMAIN_ALIASES.get(domain.lower(), domain.lower())
    local = local.casefold().split("+", 1)[0] or local.casefold()
    if domain in DOTLESS_DOMAINS:
        local = local.replace(".", "") or local
    return f"{local}@{domain}"


def client_key(address: str) -> str:
    """Who a client is for the rate limits: its IPv4 address, or the /64 network of an IPv6 one
    (a single host is routinely given a whole /64, so its addresses are one client)."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return str(parsed)


def in_venue(address: str, networks: tuple[str, ...]) -> bool:
    """Whether a client address is one of a venue's (``WOD_VENUE_NETWORKS``)."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        parsed = parsed.ipv4_mapped
    return any(parsed in ipaddress.ip_network(network) for network in networks)


def new_registration_id() -> str:
    """An unguessable, public id (webhooks, reports, audit); the participant's links carry their
    action token (chalicelib.domain.links) instead. It starts with a letter or a digit: one
    starting with ``-`` would be a formula to a spreadsheet, and the organisers' CSV would show it
    quoted."""
    while True:
        value = secrets.token_urlsafe(18)
        if value[0].isalnum():
            return value


# A workshop's id; also the schema of workshop.yaml (chalicelib.domain.workshop_spec)
WORKSHOP_ID_PATTERN = r"^WKSHP-[A-Z0-9]{1,32}$"
_WORKSHOP_ID = re.compile(WORKSHOP_ID_PATTERN)


def is_workshop_id(value: Any) -> bool:
    return isinstance(value, str) and _WORKSHOP_ID.fullmatch(value) is not None


def is_registration_id(value: str) -> bool:
    return 16 <= len(value) <= 64 and all(c.isascii() and (c.isalnum() or c in "-_") for c in value)


def _has_control(value: str) -> bool:
    return any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn") for ch in value)


def _text(data: Mapping[str, Any], name: str, label: Text, limit: int, errors: dict[str, str]) -> str:
    raw = data.get(name)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        errors[name] = N_("%(label)s is required.", label=label)
        return ""
    if not isinstance(raw, str):
        errors[name] = N_("%(label)s must be text.", label=label)
        return ""
    if len(raw) > RAW_SLACK * limit:  # before anything reads it: no scan of a megabyte-long name
        errors[name] = N_("%(label)s must be at most %(limit)s characters.", label=label, limit=limit)
        return ""
    value = raw.strip()
    if _has_control(value):
        errors[name] = N_("%(label)s must not contain control or invisible characters.", label=label)
        return value
    value = unicodedata.normalize("NFC", " ".join(value.split()))
    if len(value) > limit:
        errors[name] = N_("%(label)s must be at most %(limit)s characters.", label=label, limit=limit)
    elif any(ch in value for ch in "<>"):
        errors[name] = N_("%(label)s must not contain < or >.", label=label)
    elif _WEB_ADDRESS.search(as_a_browser_reads(value)):
        errors[name] = N_("%(label)s must not contain a web or email address.", label=label)
    return value


# What a mail client turns into a link: a scheme, www., or a host name (labels, then a
# top-level domain of letters) — names and company reach emails to addresses nobody confirmed yet.
def as_a_browser_reads(value: str) -> str:
    """The text as a host name is read (IDNA): wide letters as ASCII, every full stop as "."."""
    return unicodedata.normalize("NFKC", value).translate(_FULL_STOPS)


_FULL_STOPS = {0x3002: ".", 0xFF0E: ".", 0xFF61: "."}
_WEB_ADDRESS = re.compile(r"(?i)(\w+:/+|www\.|\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,24}(?![a-z0-9-]))")


def _email(raw: Any, deny_domains: Iterable[str], errors: dict[str, str]) -> str:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        errors["email"] = N_("%(label)s is required.", label=EMAIL)
        return ""
    if not isinstance(raw, str):
        errors["email"] = N_("%(label)s must be text.", label=EMAIL)
        return ""
    if len(raw) > RAW_SLACK * EMAIL_MAX:
        errors["email"] = N_("Enter a valid email address.")
        return ""
    raw = raw.strip()
    if len(raw) > EMAIL_MAX or _has_control(raw):
        errors["email"] = N_("Enter a valid email address.")
        return ""
    from email_validator import EmailNotValidError, validate_email

    try:
        checked = validate_email(raw, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        errors["email"] = N_("Enter a valid email address (%(reason)s).", reason=str(exc))
        return ""
    email = checked.ascii_email or checked.normalized
    domain = email.rsplit("@", 1)[1].lower()
    if any(domain == d or domain.endswith("." + d) for d in deny_domains):
        errors["email"] = N_("Addresses at %(domain)s cannot register; please use your work or personal address.",
                             domain=domain)
    return email


def _accepted(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    return isinstance(raw, str) and raw.strip().lower() in TRUE_WORDS


def _language(raw: Any, default: str, errors: dict[str, str]) -> str:
    """The body's ``language`` (a shipped one; a regional tag counts as its language), else ``default``."""
    if raw is None:
        return languages.shipped(default) or languages.DEFAULT
    found = languages.shipped(raw)
    if found is None:
        errors["language"] = N_("Choose one of these languages: %(languages)s.", languages=", ".join(languages.SHIPPED))
        return languages.DEFAULT
    return found


def validate_applicant(data: Any, deny_domains: Iterable[str] = (), language: str = languages.DEFAULT) -> Applicant:
    """Check a registration form or API body; raise :class:`InvalidInput` with every problem.
    ``language``: the participant's when the body names none."""
    if not isinstance(data, Mapping):
        raise InvalidInput({"body": N_("Expected a JSON object.")}, N_("The request body must be a JSON object."))
    errors: dict[str, str] = {}
    email = _email(data.get("email"), deny_domains, errors)
    first = _text(data, "first_name", FIRST_NAME, NAME_MAX, errors)
    last = _text(data, "last_name", LAST_NAME, NAME_MAX, errors)
    company = _text(data, "company", COMPANY, COMPANY_MAX, errors)
    if not _accepted(data.get("accept_terms")):
        errors["accept_terms"] = N_("You must accept the terms to register.")
    spoken = _language(data.get("language"), language, errors)
    if errors:
        raise InvalidInput(errors, N_("Some fields need attention."))
    return Applicant(email=email, first_name=first, last_name=last, company=company, language=spoken)
