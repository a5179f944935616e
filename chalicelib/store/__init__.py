"""DynamoDB through pynamodb. Models stay behind this package's classes, which take and return
the domain's values (:mod:`chalicelib.domain.values`).

:func:`open_stores` binds one stack's tables and hands out one object per store module; the
:class:`~chalicelib.services.context.Context` holds them as ``ctx.stores``. Importing this package
loads no pynamodb: that happens when a stack's stores are first opened.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chalicelib.settings import Settings
    from chalicelib.store.catalog import Catalog
    from chalicelib.store.limits import Limits
    from chalicelib.store.live import Live
    from chalicelib.store.organiser import Organiser
    from chalicelib.store.outbox import Outbox
    from chalicelib.store.provisioning import Provisioning
    from chalicelib.store.recent import RecentWorkshops
    from chalicelib.store.registrations import Registrations
    from chalicelib.store.seats import Seats
    from chalicelib.store.tables import Tables
    from chalicelib.store.warm import Warm
    from chalicelib.store.webhooks import Webhooks


@dataclass(frozen=True)
class Stores:
    tables: Tables
    seats: Seats
    registrations: Registrations
    provisioning: Provisioning
    outbox: Outbox
    warm: Warm
    webhooks: Webhooks
    organiser: Organiser
    catalog: Catalog
    limits: Limits
    live: Live
    recent: RecentWorkshops


def open_stores(settings: Settings) -> Stores:
    """The stores of the stack ``settings`` names (its tables bound once per prefix, region and endpoint)."""
    from chalicelib.store.catalog import Catalog
    from chalicelib.store.limits import Limits
    from chalicelib.store.live import Live
    from chalicelib.store.organiser import Organiser
    from chalicelib.store.outbox import Outbox
    from chalicelib.store.provisioning import Provisioning
    from chalicelib.store.recent import RecentWorkshops
    from chalicelib.store.registrations import Registrations
    from chalicelib.store.seats import Seats
    from chalicelib.store.tables import bind
    from chalicelib.store.warm import Warm
    from chalicelib.store.webhooks import Webhooks

    tables = bind(settings)
    return Stores(tables=tables, seats=Seats(tables), registrations=Registrations(tables),
                  provisioning=Provisioning(tables), outbox=Outbox(tables), warm=Warm(tables),
                  webhooks=Webhooks(tables), organiser=Organiser(tables), catalog=Catalog(tables),
                  limits=Limits(tables), live=Live(tables),
                  recent=RecentWorkshops(tables, settings.workshop_cache_seconds))
