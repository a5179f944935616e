"""What the store hands out: plain, read-only values for workshops, students, registrations and
webhooks. Pages, emails, webhooks and CSV render these; nothing above ``store/`` ever holds a
pynamodb model (docs/architecture.md, "Data model").

Numbers arrive from DynamoDB as ``int`` or ``float``; counters are ``int`` here.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from chalicelib.domain.outbox import Entry


@dataclass(frozen=True)
class Workshop:
    id: str
    title: str = ""
    description: str = ""
    category: str = ""
    duration_minutes: int = 0
    location: str = ""
    presenter: dict[str, Any] | None = None
    replay_url: str | None = None
    badge: str | None = None
    active: bool = True
    beta: bool = False
    priority: int = 100
    content_version: str | None = None
    student_prefix: str = ""
    student_from: int = 0
    student_to: int = 0
    appliance: dict[str, Any] | None = None
    extension_minutes: int = 30
    extension_max: int = 2
    warm_pool: int = 0
    checks: int = 0  # exercise checks in its notebooks: completion and the badge come from them
    expected: int = 0  # the turnout an organiser expects: that many servers are warmed ahead (warming.py)
    starts_at: datetime | None = None  # a scheduled start: warming begins shortly before it, ends after it
    confirm: bool = True  # new registrations wait for their email confirmation
    message: str | None = None  # the facilitator's message to every participant (live room)
    message_at: datetime | None = None
    extend_round: str | None = None  # the live room's last "extend all": its form carries the round it saw
    seats_total: int = 0
    seats_free: int = 0
    waitlist_seq: int = 0
    overrides: dict[str, Any] | None = None  # an organiser's edits, kept by a catalog sync
    handed_back: list[str] | None = None  # fields the next catalog sync takes from the folder again
    survey: list[dict[str, Any]] | None = None  # the workshop's own survey questions (workshop.yaml)
    translations: dict[str, dict[str, str]] | None = None  # its title and description in other languages
    timezone: str | None = None  # an IANA zone name: the calendar invitations' times are given in it
    last_return_at: datetime | None = None  # when a seat last came back (the event report waits for the last)
    report_sent_at: datetime | None = None  # when the event report was last mailed to the organisers


@dataclass(frozen=True)
class Student:
    """A seat: ``free`` -> ``reserved`` -> ``active`` -> ``cleaning`` -> ``free``."""

    id: str
    workshop_id: str = ""
    location: str = ""
    status: str = "free"
    free_workshop: str | None = None
    registration_id: str | None = None
    password_hash: str | None = None
    expires_at: datetime | None = None
    hub_url: str | None = None
    warm: bool | None = None  # a free student whose server already runs (warm pool)
    warming_since: datetime | None = None
    warm_cycles: int = 0
    holder: str | None = None  # the name of whoever holds the seat (the live room)
    live: Mapping[str, Any] | None = None  # what the notebook reported (domain/live.py)
    live_seq: int | None = None


@dataclass(frozen=True)
class Registration:
    """A participant's registration (the ``customers`` table)."""

    id: str
    email: str = ""
    first_name: str = ""
    last_name: str = ""
    company: str = ""
    workshop_id: str = ""
    student_id: str | None = None
    status: str = ""
    created_at: datetime | None = None
    started_at: datetime | None = None
    ends_at: datetime | None = None
    reminder_sent: bool = False
    extensions_used: int = 0
    extensions_total: int = 0  # every extension, the organiser's too: the calendar invitation's revision
    completion: float | None = None
    checks_passed: int | None = None  # of the workshop's exercise checks, measured at cleanup
    waitlist_workshop: str | None = None
    waitlist_seq: int | None = None
    outbox: tuple[Entry, ...] = ()
    outbox_state: str | None = None
    outbox_due_at: datetime | None = None
    outbox_attempts: int = 0
    outbox_error: str | None = None
    progress: str | None = None  # the provisioning step shown on the status page
    due_state: str | None = None
    due_at: datetime | None = None
    confirm_by: datetime | None = None  # an unconfirmed hold expires then
    finished_at: datetime | None = None
    cleanup_attempts: int = 0
    resets_used: int = 0
    failure: str | None = None
    ttl: int | None = None
    email_key: str | None = None  # the email guard's key (older registrations: none, the email lower-cased)
    survey: Mapping[str, Any] | None = None  # the participant's survey answer (domain/survey.py)
    survey_at: datetime | None = None
    confirmed_at: datetime | None = None  # the address confirmed its hold (the event report)
    waitlisted_at: datetime | None = None
    promoted_at: datetime | None = None
    first_seen_at: datetime | None = None  # the first event from the participant's notebook, kept at the end
    ordered_at: datetime | None = None  # a scheduled session's seat: when its environment was ordered
    badge_earned: bool | None = None  # decided when it finished, against the workshop's checks then
    reschedules: int = 0  # times its scheduled start moved before it started (the invitation's SEQUENCE)
    language: str | None = None  # of every mail it is sent (domain/languages.py); none: the default
    mail_bounced_at: datetime | None = None  # SES reported a bounce of, or a complaint about, its mail
    mail_bounce: str | None = None  # "permanent", "transient" or "complaint" (domain/lifecycle.py BOUNCE_MARKS)

    @property
    def guard_key(self) -> str:
        """The key of the email guard this registration holds while live."""
        return self.email_key or self.email.lower()


@dataclass(frozen=True)
class Hook:
    id: str
    url: str = ""
    events: list[str] = field(default_factory=list)
    secret: str = ""
    description: str | None = None
    created_at: datetime | None = None


@dataclass(frozen=True)
class Delivery:
    """One webhook event for one hook, and how its attempts went."""

    id: str
    hook_id: str = ""
    event: str = ""  # empty in a key read off the due index
    body: str = ""
    status: str = "pending"  # pending | delivered | failed
    attempts: int = 0
    created_at: datetime | None = None
    last_code: int | None = None
    last_error: str | None = None
    last_attempt_at: datetime | None = None
    delivered_at: datetime | None = None
    due_at: datetime | None = None  # the next attempt, while one is due
