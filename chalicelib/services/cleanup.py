"""CLEANUP and PURGE tasks (``infra/statemachines/{cleanup,purge}.asl.json``).

Cleanup measures completion (checks passed), tears the environment down (server, appliance, hub user — and
with it the student's home) and reports to the frontend, which frees the seat. A failed measure
or teardown still reports: a seat is never kept by a broken cleanup.
"""
from __future__ import annotations

import json

from chalicelib.adapters.hub import HubError
from chalicelib.domain.checks import completion, release
from chalicelib.observability import logger
from chalicelib.services.context import Context
from chalicelib.services.provisioning import Event, callback, holds


def measure_completion(ctx: Context, event: Event) -> dict:
    """The workshop's checks the participant passed, over all its checks (executed code cells
    over code cells for a workshop without checks), across its notebooks in the student's home."""
    order = event["order"]
    if not holds(ctx, order):
        return {"value": None}  # a late repeat: the seat already has another holder
    workshop = ctx.stores.seats.get_workshop(order["workshop"])
    mine, originals = [], []
    for path, original in ctx.content.files(workshop.id, workshop.badge):
        if not path.endswith(".ipynb"):
            continue
        originals.append(json.loads(original))
        try:
            mine.append(ctx.hub.get_contents(order["student"], path)["content"])
        except HubError:  # deleted by the participant: nothing in it counts as done
            mine.append(release(json.loads(original)))
    done = completion(mine, originals)
    return {"value": done.percent, "basis": done.basis, "checks_passed": done.passed, "checks": done.total}


def teardown(ctx: Context, event: Event) -> None:
    order = event["order"]
    if not holds(ctx, order):
        logger.info("teardown skipped: the student has another holder", extra={"student": order["student"]})
        return
    ctx.appliances.stop(order["student"])
    ctx.hub.delete_user(order["student"])  # stops the server; the hub removes the account and home


def report(ctx: Context, event: Event) -> None:
    order = event["order"]
    measured = event.get("completion") or {}
    value = measured.get("value")
    passed = measured.get("checks_passed") if measured.get("basis") == "checks" else None
    callback(ctx, {"registration": order["registration"], "student": order["student"], "outcome": "cleaned",
                   "completion": value, "checks_passed": passed,
                   "errors": [k for k in ("completion_error", "teardown_error") if k in event]})
    logger.info("cleaned", extra={"registration": order["registration"], "student": order["student"],
                                  "completion": value})
