"""Where a :class:`~chalicelib.services.context.Context` is built: its tables bound, its mailer
made, and the makers of the adapters it builds on first use.

The edges build or fetch it: the web and backend handlers call :func:`for_process` (built from
the environment's settings on first use), the local stack and the tests :func:`build` their
own and :func:`install` it. Building binds the stack's tables (``chalicelib.store.tables``);
nothing touches AWS until a handler actually stores or sends something.
"""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from chalicelib.adapters.mail import Mailer, SesMailer, SmtpMailer
from chalicelib.adapters.secrets import get_secret
from chalicelib.services.context import Clock, Context, utcnow
from chalicelib.services.pacing import Pacer, pacer_for
from chalicelib.settings import Settings, get_settings
from chalicelib.store import open_stores

if TYPE_CHECKING:
    from chalicelib.adapters.appliances import EcsAppliances, LocalAppliances
    from chalicelib.adapters.content import BucketContent, FolderContent
    from chalicelib.adapters.hub import HubClient
    from chalicelib.adapters.workflows import StepFunctionsStarter


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
    return pacer_for(settings)


MAKERS = {"hub": _hub, "content": _content, "workflows": _workflows, "appliances": _appliances, "pacer": _pacer}


def mailer_for(settings: Settings) -> Mailer:
    if settings.mail_transport == "ses":
        from chalicelib.adapters.aws import client_for

        return SesMailer(lambda: client_for("ses", settings), settings.mail_from, settings.ses_configuration_set)
    return SmtpMailer(settings.smtp_host, settings.smtp_port, settings.mail_from)


def build(settings: Settings, mailer: Mailer | None = None, clock: Clock = utcnow, **adapters: Any) -> Context:
    """A context for ``settings``: its tables bound, its mailer made (unless given)."""
    return Context(settings, open_stores(settings), mailer or mailer_for(settings), clock, makers=MAKERS,
                   **adapters)


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
