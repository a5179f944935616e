"""The Context: everything a use case needs (settings, clock, stores, mailer, workflows, hub,
content, appliances), built once per process and passed to every service explicitly.

The edges build or fetch it: the web and backend handlers call :func:`for_process` (built from
the environment's settings on first use), the local stack and the tests :func:`build` their
own and :func:`install` it. Building binds the stack's tables (``chalicelib.store.tables``);
nothing touches AWS until a handler actually stores or sends something, and the backend's
adapters (hub client, content, appliances, workflow starter) are made on first use only.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from chalicelib.adapters.mail import Mailer, SesMailer, SmtpMailer
from chalicelib.adapters.secrets import get_key, get_secret
from chalicelib.settings import Settings, get_settings
from chalicelib.store import Stores, open_stores

if TYPE_CHECKING:
    from chalicelib.adapters.appliances import EcsAppliances, LocalAppliances
    from chalicelib.adapters.content import BucketContent, FolderContent
    from chalicelib.adapters.hub import HubClient
    from chalicelib.adapters.workflows import StepFunctionsStarter

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


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


class Context:
    """One stack's view of the world. ``hub``, ``content``, ``appliances`` and ``workflows`` are
    built from the settings on first use unless given (tests give fakes)."""

    def __init__(self, settings: Settings, stores: Stores, mailer: Mailer, clock: Clock = utcnow, *,
                 hub: HubClient | None = None, content: FolderContent | BucketContent | None = None,
                 appliances: LocalAppliances | EcsAppliances | None = None,
                 workflows: StepFunctionsStarter | None = None):
        self.settings, self.stores, self.mailer, self.clock = settings, stores, mailer, clock
        self._hub, self._content, self._appliances, self._workflows = hub, content, appliances, workflows

    def secret(self, name: str) -> str:
        return get_secret(self.settings, name)

    def key(self, name: str) -> bytes:
        return get_key(self.settings, name)

    @property
    def hub(self) -> HubClient:
        if self._hub is None:
            from chalicelib.adapters.hub import HubClient

            self._hub = HubClient(self.settings.hub_api_url or self.settings.hub_url, self.secret("hub_token"))
        return self._hub

    @hub.setter
    def hub(self, hub: HubClient) -> None:
        self._hub = hub

    @property
    def content(self) -> FolderContent | BucketContent:
        if self._content is None:
            from chalicelib.adapters.content import content_for

            self._content = content_for(self.settings)
        return self._content

    @content.setter
    def content(self, content: FolderContent | BucketContent) -> None:
        self._content = content

    @property
    def appliances(self) -> LocalAppliances | EcsAppliances:
        if self._appliances is None:
            self._appliances = _appliances(self.settings)
        return self._appliances

    @appliances.setter
    def appliances(self, appliances: LocalAppliances | EcsAppliances) -> None:
        self._appliances = appliances

    @property
    def workflows(self) -> StepFunctionsStarter:
        if self._workflows is None:
            from chalicelib.adapters.aws import client_for
            from chalicelib.adapters.workflows import StepFunctionsStarter

            settings = self.settings
            self._workflows = StepFunctionsStarter(lambda: client_for("stepfunctions", settings),
                                                   settings.state_machines)
        return self._workflows

    @workflows.setter
    def workflows(self, workflows: StepFunctionsStarter) -> None:
        self._workflows = workflows


def _appliances(settings: Settings) -> LocalAppliances | EcsAppliances:
    if settings.ecs_cluster:
        from chalicelib.adapters.appliances import EcsAppliances
        from chalicelib.adapters.aws import client_for

        return EcsAppliances(lambda: client_for("ecs", settings), settings.ecs_cluster,
                             list(settings.ecs_subnets), list(settings.ecs_security_groups))
    from chalicelib.adapters.appliances import LocalAppliances

    return LocalAppliances(settings.workshops_dir)


def mailer_for(settings: Settings) -> Mailer:
    if settings.mail_transport == "ses":
        from chalicelib.adapters.aws import client_for

        return SesMailer(lambda: client_for("ses", settings), settings.mail_from)
    return SmtpMailer(settings.smtp_host, settings.smtp_port, settings.mail_from)


def build(settings: Settings, mailer: Mailer | None = None, clock: Clock = utcnow, **adapters: Any) -> Context:
    """A context for ``settings``: its tables bound, its mailer made (unless given)."""
    return Context(settings, open_stores(settings), mailer or mailer_for(settings), clock, **adapters)


_process: Context | None = None
_lock = threading.Lock()


def for_process() -> Context:
    """The context of this process: the one installed, else one built from the environment."""
    global _process
    if _process is None:
        with _lock:
            if _process is None:
                _process = build(get_settings())
    return _process


def install(context: Context | None) -> None:
    """Make ``context`` this process's (the local stack, tests); ``None``: build anew from the
    environment on next use."""
    global _process
    _process = context
