"""WARM tasks (``infra/statemachines/warm.asl.json``): start a free student's server ahead of time.

Nothing to compensate: a student that fails to warm stays free and cold, and the time checks try
again later. Its readiness check is provisioning's (:func:`chalicelib.services.provisioning.check_ready`).
"""
from __future__ import annotations

from chalicelib.services.context import Context
from chalicelib.services.provisioning import Event, StaleOrder, appliance_of, check_ready, deadline, spawned

__all__ = ["prepare", "start", "check_ready", "mark"]


def prepare(ctx: Context, event: Event) -> dict:
    return {"deadline": deadline(ctx)}


def start(ctx: Context, event: Event) -> dict:
    order = event["order"]
    student = ctx.stores.seats.get_student(order["student"])
    if student.status != "free" or student.warm:
        raise StaleOrder(f"{order['student']} is no longer a cold free student")
    ctx.appliances.stop(order["student"])  # a fresh appliance and token
    ctx.hub.delete_user(order["student"])  # a fresh home
    ctx.hub.ensure_user(order["student"])
    appliance = appliance_of(ctx.stores.seats.get_workshop(order["workshop"]), order["student"])
    if appliance:
        ctx.appliances.start(order["workshop"], order["student"], *appliance)
    return spawned(ctx, ctx.hub.start_server(order["student"]), bool(appliance))


def mark(ctx: Context, event: Event) -> dict:
    return {"warm": ctx.stores.warm.mark_warm(event["order"]["student"])}
