"""The stack's tables, bound once: one pynamodb subclass per table, named from the settings.

``bind(settings)`` is called while a :class:`~chalicelib.services.context.Context` is built,
never as a side effect of a use case; two settings with different prefixes (two stacks, two
tests) get two independent sets of classes in one process.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import pynamodb.connection.base
from pynamodb.connection import Connection

from chalicelib.adapters.aws import sdk_session
from chalicelib.settings import Settings
from chalicelib.store.models import (
    MODELS,
    AdminModel,
    EmailClaimModel,
    NonceModel,
    RegistrationModel,
    StudentModel,
    WorkshopModel,
)

MAX_POOL_CONNECTIONS = 64
# pynamodb makes a botocore session per connection and thread: ours share the SDK's service models
pynamodb.connection.base.get_session = sdk_session


@dataclass(frozen=True)
class Tables:
    workshops: type[WorkshopModel]
    students: type[StudentModel]
    customers: type[RegistrationModel]
    emails: type[EmailClaimModel]
    nonces: type[NonceModel]
    admin: type[AdminModel]
    connection: Connection  # what transactions run on

    def connect(self) -> None:
        """Make every table's SDK client now. Made on first use otherwise: the threads of a process
        serving its first burst would each build them at once."""
        for model in (self.workshops, self.students, self.customers, self.emails, self.nonces, self.admin):
            model._get_connection().connection.client  # noqa: B018 (the property builds it)
        self.connection.client  # noqa: B018


def _bound(kind: str, base: Any, settings: Settings) -> Any:
    meta = type("Meta", (base.Meta,), {"table_name": settings.table_name(kind), "region": settings.region,
                                       "host": settings.aws_endpoint, "max_retry_attempts": 3,
                                       "max_pool_connections": MAX_POOL_CONNECTIONS})
    # One DoesNotExist for every binding of a model: ``except Tables.customers.DoesNotExist`` and
    # ``except RegistrationModel.DoesNotExist`` mean the same.
    return type(base.__name__, (base,), {"Meta": meta, "__module__": base.__module__, "_connection": None,
                                         "DoesNotExist": base.DoesNotExist})


BOUND_KEEP = 4  # bindings kept: each holds its SDK clients (tens of MB); a process uses one or two
_cache: OrderedDict[tuple[str, str, str | None], Tables] = OrderedDict()
_lock = threading.Lock()


def bind(settings: Settings) -> Tables:
    """The tables of ``settings`` (the same object for the same prefix, region and endpoint, among
    the last few bound)."""
    key = (settings.table_prefix, settings.region, settings.aws_endpoint)
    with _lock:
        if key not in _cache:
            classes = {kind: _bound(kind, base, settings) for kind, base in MODELS.items()}
            _cache[key] = Tables(**classes, connection=Connection(
                region=settings.region, host=settings.aws_endpoint, max_pool_connections=MAX_POOL_CONNECTIONS))
            while len(_cache) > BOUND_KEEP:
                _cache.popitem(last=False)
        _cache.move_to_end(key)
        return _cache[key]
