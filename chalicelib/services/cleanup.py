"""CLEANUP and PURGE tasks (``infra/statemachines/{cleanup,purge}.asl.json``).

Cleanup measures completion, tears the environment down (server, appliance, hub user — and
with it the student's home) and reports to the frontend, which frees the seat. A failed measure
or teardown still reports: a seat is never kept by a broken cleanup.
"""
from __future__ import annotations

import json

from chalicelib.adapters.hub import HubError
from chalicelib.domain.notebooks import completion
from chalicelib.observability import logger
from chalicelib.services.context import Context
from chalicelib.services.provisioning import Event, callback, holds


def measure_completion(ctx: Context, event: Event) -> dict:
    """Executed code cells over code cells, across the workshop's notebooks in the student's home."""
    order = event["order"]
    if not holds(ctx, order):
        return {"value": None}  # a late repeat: the seat already has another holder
    workshop = ctx.stores.seats.get_workshop(order["workshop"])
    notebooks = []
    for path, original in ctx.content.files(workshop.id, workshop.badge):
        if not path.endswith(".ipynb"):
            continue
        try:
            notebooks.append(ctx.hub.get_contents(order["student"], path)["content"])
        except HubError:  # deleted by the participant: its cells count as not done
            notebooks.append(json.loads(original))
    return {"value": completion(notebooks)}


def teardown(ctx: Context, event: Event) -> None:
    order = event["order"]
    if not holds(ctx, order):
        logger.info("teardown skipped: the student has another holder", extra={"student": order["student"]})
        return
    ctx.appliances.stop(order["student"])
    ctx.hub.delete_user(order["student"])  # stops the server; the hub removes the account and home


def report(ctx: Context, event: Event) -> None:
    order = event["order"]
    value = (event.get("completion") or {}).get("value")
    callback(ctx, {"registration": order["registration"], "student": order["student"], "outcome": "cleaned",
                   "completion": value, "errors": [k for k in ("completion_error", "teardown_error") if k in event]})
    logger.info("cleaned", extra={"registration": order["registration"], "student": order["student"],
                                  "completion": value})
