"""Typed settings, parsed once from the environment.

Domain code never reads ``os.environ``; it receives a :class:`Settings`.
Secrets are not settings: :mod:`chalicelib.adapters.secrets` loads them from a file
(local mode) or from Secrets Manager (AWS).
"""
from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

DEFAULT_DENY_DOMAINS = (
    "mailinator.com", "guerrillamail.com", "10minutemail.com", "yopmail.com",
    "trashmail.com", "tempmail.com", "temp-mail.org", "sharklasers.com",
    "dispostable.com", "getnada.com", "maildrop.cc", "throwawaymail.com",
)


@dataclass(frozen=True)
class Settings:
    stage: str = "local"
    region: str = "us-east-1"
    table_prefix: str = "wod"
    aws_endpoint: str | None = None
    public_url: str = "http://127.0.0.1:8000"
    mail_transport: str = "smtp"  # "smtp" or "ses"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 2525
    mail_from: str = "Workshops-on-Demand <noreply@wod.local>"
    # emails per second for every sender together; unset: SES's own rate (GetSendQuota) with
    # transport "ses", else LOCAL_SEND_RATE
    mail_send_rate: float | None = None
    mail_bulk_share: float = 0.7  # the part of each second participant mail may use: the rest is for orders
    mail_max_wait_seconds: float = 5.0  # how long an order or credentials email waits for the rate
    ses_configuration_set: str | None = None  # SES configuration set named on every send (events, metrics)
    # location name -> inbound address of that backend's order intake
    locations: Mapping[str, str] = field(default_factory=lambda: {"local": "orders@backend.wod.local"})
    # location name -> the hub participants of that location log in to (unset: hub_url)
    location_hubs: Mapping[str, str] = field(default_factory=dict)
    deny_domains: tuple[str, ...] = DEFAULT_DENY_DOMAINS
    secrets_file: str | None = None
    secrets_prefix: str = "/wod"
    location: str = "local"  # this backend's location (its hub token is per location)
    outbox_retry_seconds: int = 60
    # "inline": a state change delivers what it owes before it answers; "stream": the dispatcher
    # (chalicelib.services.outbox.dispatch) reads the registrations' stream and delivers it
    outbox_dispatch: str = "stream"
    # the participants' pages read the workshops as they were this many seconds ago at most (0: fresh)
    workshop_cache_seconds: float = 2.0
    confirm_minutes: int = 15  # a new registration's seat is held this long for its email confirmation (0: none)
    claim_retry_seconds: int = 120  # a claim repeating a live registration's body this soon answers with it
    rate_limit_per_minute: int = 30  # registrations from one client address per minute (0: no limit)
    domain_rate_limit_per_minute: int = 300  # registrations for one email domain per minute (0: no limit)
    holds_per_client: int = 10  # unconfirmed holds one client address takes per confirmation window (0: no limit)
    # a venue: addresses (CIDR networks) behind which many participants share one address (a
    # conference's NAT); its clients get these limits instead, and no email domain's limit slows them
    venue_networks: tuple[str, ...] = ()
    venue_rate_limit_per_minute: int = 600
    venue_holds: int = 1000
    link_days_after_end: int = 7  # a participant's links open their registration this long after it ends
    mailbox_mails_per_day: int = 8  # emails registering sends one mailbox a day (confirmations, "already registered")
    order_max_age_seconds: int = 900
    # backend side
    hub_url: str = "http://127.0.0.1:8001"  # what participants open
    hub_api_url: str | None = None  # what the backend calls (defaults to hub_url)
    workshops_dir: str = "workshops"  # workshop content (local mode)
    content_bucket: str | None = None  # workshop content in S3 (AWS): ``<workshop>/<path>``
    state_machines: Mapping[str, str] = field(default_factory=dict)  # order action -> state machine ARN
    callback_url: str | None = None  # the frontend the backend calls back (defaults to public_url)
    ready_timeout_seconds: int = 180
    ecs_cluster: str | None = None  # appliances as ECS tasks (AWS); unset: local processes
    ecs_subnets: tuple[str, ...] = ()
    ecs_security_groups: tuple[str, ...] = ()
    # run phase
    reminder_minutes: int = 60  # the "ends in one hour" email
    stuck_minutes: int = 10  # provisioning past this fails
    cleanup_retry_minutes: int = 5  # a cleanup not finished by then is ordered again
    warm_lead_minutes: int = 15  # an expected turnout's servers start this long before the scheduled start
    warm_drain_minutes: int = 30  # ... and the spare ones stop this long after it
    warm_at_once: int = 50  # servers warming at the same time, all workshops together
    badge_levels: tuple[int, ...] = (3, 5, 7, 10, 15)
    schedule_lead_minutes: int = 10  # a scheduled session's environments are ordered this long before its start
    report_to: tuple[str, ...] = ()  # the organisers the event report is mailed to (none: on the dashboard only)
    report_delay_minutes: int = 60  # the report is mailed this long after the event's last seat came back

    def table_name(self, kind: str) -> str:
        return f"{self.table_prefix}-{kind}"

    def orders_address(self, location: str) -> str | None:
        return self.locations.get(location)

    def hub_url_for(self, location: str) -> str:
        """Where a participant of ``location`` logs in: configured here, never taken from a callback."""
        return (self.location_hubs.get(location) or self.hub_url).rstrip("/")

    @property
    def orders_addresses(self) -> frozenset[str]:
        return frozenset(address.lower() for address in self.locations.values())


class SettingsError(ValueError):
    """A ``WOD_*`` variable whose value cannot work; the message names it."""


def _number(env: Mapping[str, str], name: str, default: float, low: float, high: float,
            low_open: bool = False) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: expected a number") from None
    if not (low < value if low_open else low <= value) or value > high or value != value:
        lowest = f"above {low:g}" if low_open else f"at least {low:g}"
        raise SettingsError(f"{name}={raw!r}: expected a number {lowest} and at most {high:g}")
    return value


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = (env.get(name) or default).strip().lower()
    if value not in choices:
        raise SettingsError(f"{name}={env.get(name)!r}: expected one of {', '.join(choices)}")
    return value


def _networks(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """Comma-separated addresses or CIDR networks, normalised; a bad one is named."""
    found = []
    for part in _split(env.get(name, "")):
        try:
            found.append(str(ipaddress.ip_network(part, strict=False)))
        except ValueError:
            raise SettingsError(f"{name}: {part!r} is not an address or a network (e.g. 203.0.113.0/24)") from None
    return tuple(found)


def _split(value: str) -> tuple[str, ...]:
    return tuple(part.strip().lower() for part in value.split(",") if part.strip())


def _addresses(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """Comma-separated email addresses, each checked (no display names); a bad one is named."""
    from email_validator import EmailNotValidError, validate_email

    found = []
    for part in _split(env.get(name, "")):
        try:
            found.append(validate_email(part, check_deliverability=False).normalized)
        except EmailNotValidError as exc:
            raise SettingsError(f"{name}: {part!r} is not an email address ({exc})") from None
    return tuple(found)


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build settings from ``WOD_*`` variables; unset ones keep their defaults."""
    env = os.environ if env is None else env
    defaults = Settings()
    locations = env.get("WOD_LOCATIONS")
    deny = env.get("WOD_DENY_DOMAINS")
    return Settings(
        stage=env.get("WOD_STAGE", defaults.stage),
        region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or defaults.region,
        table_prefix=env.get("WOD_TABLE_PREFIX", defaults.table_prefix),
        aws_endpoint=env.get("WOD_AWS_ENDPOINT") or None,
        public_url=env.get("WOD_PUBLIC_URL", defaults.public_url).rstrip("/"),
        mail_transport=env.get("WOD_MAIL_TRANSPORT", defaults.mail_transport),
        smtp_host=env.get("WOD_SMTP_HOST", defaults.smtp_host),
        smtp_port=int(env.get("WOD_SMTP_PORT", defaults.smtp_port)),
        mail_from=env.get("WOD_MAIL_FROM", defaults.mail_from),
        mail_send_rate=_number(env, "WOD_MAIL_SEND_RATE", 0, 0, 100_000, low_open=True)
        if env.get("WOD_MAIL_SEND_RATE", "").strip() else None,
        mail_bulk_share=_number(env, "WOD_MAIL_BULK_SHARE", defaults.mail_bulk_share, 0, 1, low_open=True),
        mail_max_wait_seconds=_number(env, "WOD_MAIL_MAX_WAIT_SECONDS", defaults.mail_max_wait_seconds, 0, 20),
        ses_configuration_set=env.get("WOD_SES_CONFIGURATION_SET", "").strip() or None,
        locations=json.loads(locations) if locations else defaults.locations,
        location_hubs=json.loads(env["WOD_LOCATION_HUBS"]) if env.get("WOD_LOCATION_HUBS") else {},
        deny_domains=_split(deny) if deny is not None else defaults.deny_domains,
        secrets_file=env.get("WOD_SECRETS_FILE") or None,
        secrets_prefix=env.get("WOD_SECRETS_PREFIX", defaults.secrets_prefix),
        location=env.get("WOD_LOCATION", defaults.location),
        outbox_retry_seconds=int(env.get("WOD_OUTBOX_RETRY_SECONDS", defaults.outbox_retry_seconds)),
        outbox_dispatch=_choice(env, "WOD_OUTBOX_DISPATCH", defaults.outbox_dispatch, ("inline", "stream")),
        workshop_cache_seconds=_number(env, "WOD_WORKSHOP_CACHE_SECONDS", defaults.workshop_cache_seconds, 0, 300),
        confirm_minutes=int(env.get("WOD_CONFIRM_MINUTES", defaults.confirm_minutes)),
        claim_retry_seconds=int(env.get("WOD_CLAIM_RETRY_SECONDS", defaults.claim_retry_seconds)),
        rate_limit_per_minute=int(env.get("WOD_RATE_LIMIT_PER_MINUTE", defaults.rate_limit_per_minute)),
        domain_rate_limit_per_minute=int(env.get("WOD_DOMAIN_RATE_LIMIT_PER_MINUTE",
                                                 defaults.domain_rate_limit_per_minute)),
        holds_per_client=int(env.get("WOD_HOLDS_PER_CLIENT", defaults.holds_per_client)),
        venue_networks=_networks(env, "WOD_VENUE_NETWORKS"),
        venue_rate_limit_per_minute=int(_number(env, "WOD_VENUE_RATE_LIMIT_PER_MINUTE",
                                                defaults.venue_rate_limit_per_minute, 1, 1_000_000)),
        venue_holds=int(_number(env, "WOD_VENUE_HOLDS", defaults.venue_holds, 1, 1_000_000)),
        link_days_after_end=int(_number(env, "WOD_LINK_DAYS_AFTER_END", defaults.link_days_after_end, 0, 3650)),
        mailbox_mails_per_day=int(_number(env, "WOD_MAILBOX_MAILS_PER_DAY", defaults.mailbox_mails_per_day, 1, 1000)),
        order_max_age_seconds=int(env.get("WOD_ORDER_MAX_AGE_SECONDS", defaults.order_max_age_seconds)),
        hub_url=env.get("WOD_HUB_URL", defaults.hub_url).rstrip("/"),
        hub_api_url=env.get("WOD_HUB_API_URL") or None,
        workshops_dir=env.get("WOD_WORKSHOPS_DIR", defaults.workshops_dir),
        content_bucket=env.get("WOD_CONTENT_BUCKET") or None,
        state_machines=json.loads(env["WOD_STATE_MACHINES"]) if env.get("WOD_STATE_MACHINES") else {},
        callback_url=env.get("WOD_CALLBACK_URL") or None,
        ready_timeout_seconds=int(env.get("WOD_READY_TIMEOUT_SECONDS", defaults.ready_timeout_seconds)),
        ecs_cluster=env.get("WOD_ECS_CLUSTER") or None,
        ecs_subnets=_split(env.get("WOD_ECS_SUBNETS", "")),
        ecs_security_groups=_split(env.get("WOD_ECS_SECURITY_GROUPS", "")),
        reminder_minutes=int(env.get("WOD_REMINDER_MINUTES", defaults.reminder_minutes)),
        stuck_minutes=int(env.get("WOD_STUCK_MINUTES", defaults.stuck_minutes)),
        cleanup_retry_minutes=int(env.get("WOD_CLEANUP_RETRY_MINUTES", defaults.cleanup_retry_minutes)),
        warm_lead_minutes=int(_number(env, "WOD_WARM_LEAD_MINUTES", defaults.warm_lead_minutes, 0, 1440)),
        warm_drain_minutes=int(_number(env, "WOD_WARM_DRAIN_MINUTES", defaults.warm_drain_minutes, 0, 1440)),
        warm_at_once=int(_number(env, "WOD_WARM_AT_ONCE", defaults.warm_at_once, 1, 1000)),
        badge_levels=tuple(int(n) for n in _split(env["WOD_BADGE_LEVELS"])) if env.get("WOD_BADGE_LEVELS")
        else defaults.badge_levels,
        schedule_lead_minutes=int(_number(env, "WOD_SCHEDULE_LEAD_MINUTES", defaults.schedule_lead_minutes, 1, 1440)),
        report_to=_addresses(env, "WOD_REPORT_TO"),
        report_delay_minutes=int(_number(env, "WOD_REPORT_DELAY_MINUTES", defaults.report_delay_minutes, 0, 10080)),
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
