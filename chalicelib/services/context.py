"""What a handler needs (settings, clock, mailer), assembled once per process.

Tests and the local stack install their own context with :func:`use`; nothing
here touches AWS until a handler actually sends or stores something.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

from chalicelib.adapters.mail import Mailer, SesMailer, SmtpMailer
from chalicelib.settings import Settings, get_settings
from chalicelib.store import models


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class ScaledClock:
    """Business time that runs ``scale`` times faster than the wall clock (local demos).

    Only the platform's own deadlines follow it; signatures and their freshness use wall time.
    """

    def __init__(self, scale: float, start: datetime | None = None):
        if scale <= 0:
            raise ValueError("the time scale must be positive")
        self.scale, self.start = scale, start or utcnow()
        self.wall_start = utcnow()

    def __call__(self) -> datetime:
        return self.start + (utcnow() - self.wall_start) * self.scale


@dataclass
class Context:
    settings: Settings
    mailer: Mailer
    clock: Callable[[], datetime] = utcnow


def build(settings: Settings, mailer: Mailer | None = None, clock: Callable[[], datetime] = utcnow) -> Context:
    models.bind(settings)
    if mailer is None:
        if settings.mail_transport == "ses":
            from chalicelib.adapters.aws import client_for

            mailer = SesMailer(lambda: client_for("ses", settings), settings.mail_from)
        else:
            mailer = SmtpMailer(settings.smtp_host, settings.smtp_port, settings.mail_from)
    return Context(settings=settings, mailer=mailer, clock=clock)


_current: Context | None = None


def use(context: Context | None) -> None:
    """Install a context (or ``None`` to rebuild from the environment on next use)."""
    global _current
    _current = context
    if context is not None:
        models.bind(context.settings)


def current() -> Context:
    global _current
    if _current is None:
        _current = build(get_settings())
    return _current
