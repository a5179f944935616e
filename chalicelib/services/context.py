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
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from chalicelib.adapters.mail import Mailer, SesMailer, SmtpMailer
from chalicelib.adapters.secrets import get_key, get_secret
from chalicelib.settings import Settings, get_settings
from chalicelib.store import Stores, open_stores

if TYPE_CHECKING:
    from chalicelib.adapters.appliances import EcsAppliances, LocalAppliances
    from chalicelib.adapters.content import BucketContent, FolderContent
    from chalicelib.adapters.hub import HubClient
    from chalicelib.adapters.workflows import StepFunctionsStarter
    from chalicelib.services.pacing import Pacer

Clock = Callable[[], datetime]
T = TypeVar("T")


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


class _Adapter(Generic[T]):
    """A context attribute made from the settings on first use, unless one was given (tests give
    fakes); assigning it replaces it."""

    def __init__(self, make: Callable[[Settings], T]):
        self.make = make

    def __set_name__(self, owner: type, name: str) -> None:
        self.slot = f"_{name}"

    def __get__(self, ctx: Context, owner: type | None = None) -> T:
        value = ctx.__dict__.get(self.slot)
        if value is None:
            value = ctx.__dict__[self.slot] = self.make(ctx.settings)
        return value

    def __set__(self, ctx: Context, value: T) -> None:
        ctx.__dict__[self.slot] = value


def _hub(settings: Settings) -> HubClient:
    from chalicelib.adapters.hub import HubClient

    return HubClient(settings.hub_api_url or settings.hub_url, get_secret(settings, "hub_token"))


def _content(settings: Settings) -> FolderContent | BucketContent:
    from chalicelib.adapters.content import content_for

    return content_for(settings)


def _workflows(settings: Settings) -> StepFunctionsStarter:
    from chalicelib.adapters.aws import client_for
    from chalicelib.adapters.workflows import StepFunctionsStarter

    return StepFunctionsStarter(lambda: client_for("stepfunctions", settings), settings.state_machines)


def _appliances(settings: Settings) -> LocalAppliances | EcsAppliances:
    if settings.ecs_cluster:
        from chalicelib.adapters.appliances import EcsAppliances
        from chalicelib.adapters.aws import client_for

        return EcsAppliances(lambda: client_for("ecs", settings), settings.ecs_cluster,
                             list(settings.ecs_subnets), list(settings.ecs_security_groups))
    from chalicelib.adapters.appliances import LocalAppliances

    return LocalAppliances(settings.workshops_dir)


def _pacer(settings: Settings) -> Pacer:
    from chalicelib.services.pacing import pacer_for

    return pacer_for(settings)


class Context:
    """One stack's view of the world. ``hub``, ``content``, ``appliances``, ``workflows`` and the
    mail ``pacer`` are built from the settings on first use unless given."""

    hub = _Adapter(_hub)
    pacer = _Adapter(_pacer)
    content = _Adapter(_content)
    appliances = _Adapter(_appliances)
    workflows = _Adapter(_workflows)

    def __init__(self, settings: Settings, stores: Stores, mailer: Mailer, clock: Clock = utcnow, *,
                 hub: HubClient | None = None, content: FolderContent | BucketContent | None = None,
                 appliances: LocalAppliances | EcsAppliances | None = None,
                 workflows: StepFunctionsStarter | None = None):
        self.settings, self.stores, self.mailer, self.clock = settings, stores, mailer, clock
        for name, given in (("hub", hub), ("content", content), ("appliances", appliances),
                            ("workflows", workflows)):
            if given is not None:
                setattr(self, name, given)

    def secret(self, name: str, location: str | None = None) -> str:
        return get_secret(self.settings, name, location)

    def key(self, name: str, location: str | None = None) -> bytes:
        """A signing key; per-location keys default to this stack's own location's."""
        return get_key(self.settings, name, location)


def mailer_for(settings: Settings) -> Mailer:
    if settings.mail_transport == "ses":
        from chalicelib.adapters.aws import client_for

        return SesMailer(lambda: client_for("ses", settings), settings.mail_from, settings.ses_configuration_set)
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
