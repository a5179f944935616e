"""The Context: everything a use case needs (settings, clock, stores, mailer, workflows, hub,
content, appliances, mail pacer), passed to every service explicitly.

It is built in one place, :mod:`chalicelib.services.bootstrap`: once per process for the web and
backend handlers, by the local stack and the tests for theirs. The backend's adapters (hub client,
content, appliances, workflow starter, pacer) are made on first use, by the makers it was given.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from chalicelib.adapters.secrets import get_key, get_secret
from chalicelib.settings import Settings

if TYPE_CHECKING:
    from chalicelib.adapters.appliances import EcsAppliances, LocalAppliances
    from chalicelib.adapters.content import BucketContent, FolderContent
    from chalicelib.adapters.hub import HubClient
    from chalicelib.adapters.mail import Mailer
    from chalicelib.adapters.workflows import StepFunctionsStarter
    from chalicelib.services.pacing import Pacer
    from chalicelib.store import Stores

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
    """A context attribute made from the settings on first use by the context's maker of that name,
    unless one was given (tests give fakes); assigning it replaces it."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name, self.slot = name, f"_{name}"

    def __get__(self, ctx: Context, owner: type | None = None) -> T:
        value = ctx.__dict__.get(self.slot)
        if value is None:
            make = ctx.makers.get(self.name)
            if make is None:
                raise LookupError(f"this context has no {self.name} (none given, no maker)")
            value = ctx.__dict__[self.slot] = make(ctx.settings)
        return value

    def __set__(self, ctx: Context, value: T) -> None:
        ctx.__dict__[self.slot] = value


class Context:
    """One stack's view of the world. ``hub``, ``content``, ``appliances``, ``workflows`` and the
    mail ``pacer`` are built from the settings on first use unless given."""

    hub: _Adapter[HubClient] = _Adapter()
    pacer: _Adapter[Pacer] = _Adapter()
    content: _Adapter[FolderContent | BucketContent] = _Adapter()
    appliances: _Adapter[LocalAppliances | EcsAppliances] = _Adapter()
    workflows: _Adapter[StepFunctionsStarter] = _Adapter()

    def __init__(self, settings: Settings, stores: Stores, mailer: Mailer, clock: Clock = utcnow, *,
                 makers: Mapping[str, Callable[[Settings], Any]] | None = None,
                 hub: HubClient | None = None, content: FolderContent | BucketContent | None = None,
                 appliances: LocalAppliances | EcsAppliances | None = None,
                 workflows: StepFunctionsStarter | None = None):
        self.settings, self.stores, self.mailer, self.clock = settings, stores, mailer, clock
        self.makers = dict(makers or {})
        for name, given in (("hub", hub), ("content", content), ("appliances", appliances),
                            ("workflows", workflows)):
            if given is not None:
                setattr(self, name, given)

    def secret(self, name: str, location: str | None = None) -> str:
        return get_secret(self.settings, name, location)

    def key(self, name: str, location: str | None = None) -> bytes:
        """A signing key; per-location keys default to this stack's own location's."""
        return get_key(self.settings, name, location)
