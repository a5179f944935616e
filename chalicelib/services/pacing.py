"""Every email goes through :func:`send`: one sending budget per second for every sender together
(each Lambda invocation, each local worker process), kept in the store, so the platform never
sends faster than the mail service accepts (:mod:`chalicelib.domain.pacing`).

*Urgent* mail (orders to the backends, credentials) may use the whole budget; when the window is
full it waits for the next one, a few seconds at most, then fails as
:class:`~chalicelib.adapters.mail.MailThrottled` (the caller falls back to the outbox). *Bulk*
mail (participant emails) never waits: past its share it raises :class:`Deferred` without
sending, and its outbox entry stays due. A rate refusal from the mail service itself is handled
the same way; an exhausted daily quota is reported and stops sending for a while.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable

from chalicelib.adapters.mail import MailThrottled
from chalicelib.domain.errors import Unavailable
from chalicelib.domain.mail import Email
from chalicelib.domain.pacing import Budget, budget
from chalicelib.observability import count, logger
from chalicelib.services.context import Context
from chalicelib.settings import Settings

LOCAL_SEND_RATE = 50.0  # emails per second through the local SMTP relay unless WOD_MAIL_SEND_RATE says
QUOTA_PAUSE_SECONDS = 300.0  # after SES reports the daily quota exhausted, nothing is tried for this long
SCOPE = "mail"


class Deferred(MailThrottled):
    """Bulk mail not sent now: the rest of this window's budget is kept for urgent mail."""


class Pacer:
    """This process's side of the shared budget: where the rate comes from, the wall clock, and
    whether the daily quota was found exhausted. The tokens themselves are in the store."""

    def __init__(self, rate: Callable[[], float], share: float, max_wait: float,
                 now: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep):
        self.rate, self.share, self.max_wait, self.now, self.sleep = rate, share, max_wait, now, sleep
        self._paused_until = 0.0
        self.waits = 0  # emails this process left for later because of the rate (the outbox drain reads it)
        self._lock = threading.Lock()
        self._spent: dict[bool, int] = {}  # urgent? -> the last window found with no token left for it

    def budget(self) -> Budget:
        return budget(self.rate(), self.share)

    def paused(self) -> bool:
        """Whether the daily quota was found exhausted lately: sending waits for it to renew."""
        return self.now() < self._paused_until

    def pause(self) -> None:
        with self._lock:
            first = not self.paused()
            self._paused_until = self.now() + QUOTA_PAUSE_SECONDS
        if first:
            logger.error("the SES daily sending quota is exhausted: mail waits in the outbox until it renews "
                         "(raise the quota in the SES console)", extra={"pause_seconds": QUOTA_PAUSE_SECONDS})

    def wait_next_window(self, plan: Budget) -> None:
        self.sleep(max(0.0, plan.next_start(self.now()) - self.now()))

    def spent(self, plan: Budget, urgent: bool) -> bool:
        """Whether this process found the current window with no token left for such mail."""
        return self._spent.get(urgent) == plan.start(self.now())

    def take(self, ctx: Context, plan: Budget, urgent: bool) -> bool:
        """One token of the current window (none asked for once this process found it spent);
        when the store cannot be reached the email goes anyway (the mail service's own refusal
        still paces it)."""
        window = plan.start(self.now())
        if self._spent.get(urgent) == window:
            return False
        try:
            given = ctx.stores.limits.spend(SCOPE, window, plan.limit(urgent))
        except Unavailable as exc:
            logger.warning("mail budget not read; sending unpaced", extra={"error": exc.message})
            return True
        for kind in (False, True):  # bulk mail's share is part of the whole
            if given >= plan.limit(kind) or (not given and (urgent or not kind)):
                self._spent[kind] = max(window, self._spent.get(kind, window))
        return given > 0


def constant(rate: float) -> Callable[[], float]:
    return lambda: rate


def pacer_for(settings: Settings) -> Pacer:
    """The pacer at ``WOD_MAIL_SEND_RATE``, else SES's own rate (read and cached), else the local rate."""
    rate: Callable[[], float]
    if settings.mail_send_rate:
        rate = constant(settings.mail_send_rate)
    elif settings.mail_transport == "ses":
        from chalicelib.adapters.aws import client_for
        from chalicelib.adapters.mail import SesQuota

        rate = SesQuota(lambda: client_for("ses", settings)).rate
    else:
        rate = constant(LOCAL_SEND_RATE)
    return Pacer(rate, settings.mail_bulk_share, settings.mail_max_wait_seconds)


def send(ctx: Context, email: Email, urgent: bool) -> None:
    """Send ``email`` within the shared budget. Raises :class:`Deferred` (bulk mail past its
    share), :class:`MailThrottled` (no budget in time, or the daily quota) or ``Unavailable``."""
    pacer = ctx.pacer
    if pacer.paused():
        raise MailThrottled("the SES daily sending quota is exhausted", daily=True)
    plan = pacer.budget()
    give_up = pacer.now() + (pacer.max_wait if urgent else 0.0)
    while True:
        if pacer.take(ctx, plan, urgent):
            try:
                ctx.mailer.send(email)
            except MailThrottled as exc:
                count("MailThrottled")
                if exc.daily:
                    count("MailDailyQuotaExhausted")
                    pacer.pause()
                    raise
                if not urgent:
                    pacer.waits += 1
                    raise Deferred(exc.message) from exc
            else:
                count("MailSent")
                return
        elif not urgent:
            count("MailDeferred")
            pacer.waits += 1
            raise Deferred("participant mail waits: this second's sending budget is kept for orders and credentials")
        if plan.next_start(pacer.now()) > give_up:
            count("MailThrottled")
            pacer.waits += 1
            raise MailThrottled(f"no sending budget within {pacer.max_wait:g}s")
        pacer.wait_next_window(plan)
