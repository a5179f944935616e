"""Outbox entries: what a state change still owes the outside world.

Every email, order and webhook event that a registration's state change owes is written, as an
:class:`Entry`, on the registration in the same transaction as the change; one dispatcher
(``chalicelib.services.outbox``) delivers them right after it, and the time checks retry what
failed. This module is the only place that knows how an entry is written down.

Stored form (a string in the registration's ``outbox`` list)::

    confirm | already | welcome | waitlisted | promoted | reminder |
    extended | thanks | apology                                        an email
    level:<N>                                                          the level-N badge email
    order:<ACTION>[:<attempt>[:<scope>]]                               a signed order
    webhook:<event>                                                    a webhook event
"""
from __future__ import annotations

from dataclasses import dataclass

MAIL, ORDER, WEBHOOK = "mail", "order", "webhook"
MAILS = ("confirm", "already", "welcome", "waitlisted", "promoted", "reminder", "extended", "thanks", "apology",
         "level", "rescheduled")
ORDER_SCOPES = ("all", "password")
OUTBOX_PENDING = "pending"  # the registration's ``outbox_state`` while something is left to send


@dataclass(frozen=True)
class Entry:
    kind: str  # mail | order | webhook
    action: str  # the email's template, the order's action, the webhook's event
    attempt: int = 0  # orders: a repeated CLEANUP or RESET gets its own workflow; mail "level": the level
    scope: str = "all"  # orders: what a RESET renews

    def __post_init__(self) -> None:
        if self.kind not in (MAIL, ORDER, WEBHOOK):
            raise ValueError(f"unknown outbox entry kind {self.kind!r}")
        if self.kind == MAIL and self.action not in MAILS:
            raise ValueError(f"unknown email {self.action!r}")
        if self.scope not in ORDER_SCOPES:
            raise ValueError(f"unknown order scope {self.scope!r}")

    def format(self) -> str:
        if self.kind == MAIL:
            return f"level:{self.attempt}" if self.action == "level" else self.action
        if self.kind == WEBHOOK:
            return f"webhook:{self.action}"
        text = f"order:{self.action}"
        if self.attempt or self.scope != "all":
            text += f":{self.attempt}"
        return text + (f":{self.scope}" if self.scope != "all" else "")

    def __str__(self) -> str:
        return self.format()


def mail(name: str) -> Entry:
    return Entry(MAIL, name)


def level(reached: int) -> Entry:
    return Entry(MAIL, "level", attempt=reached)


def order(action: str, attempt: int = 0, scope: str = "all") -> Entry:
    return Entry(ORDER, action, attempt, scope)


def webhook(event: str) -> Entry:
    return Entry(WEBHOOK, event)


def parse(text: str) -> Entry:
    """The entry a stored string stands for; ValueError for anything else."""
    head, _, rest = text.partition(":")
    if head == "order":
        action, _, rest = rest.partition(":")
        attempt, _, scope = rest.partition(":")
        if not action or (attempt and not attempt.isdigit()):
            raise ValueError(f"not an order entry: {text!r}")
        return order(action, int(attempt or 0), scope or "all")
    if head == "webhook" and rest:
        return webhook(rest)
    if head == "level" and rest.isdigit():
        return level(int(rest))
    if not rest and head != "level":
        return mail(head)
    raise ValueError(f"not an outbox entry: {text!r}")
