"""WARM tasks (``infra/statemachines/warm.asl.json``): start a free student's server ahead of time.

Nothing to compensate: a student that fails to warm stays free and cold, and the time
checks try again later.
"""
from __future__ import annotations

import time

from chalicelib.backend.provision import StaleOrder, _appliance, check_ready, current
from chalicelib.store import warm
from chalicelib.store.models import StudentModel, WorkshopModel

__all__ = ["prepare", "start", "check_ready", "mark"]


def prepare(event: dict) -> dict:
    return {"deadline": int(time.time()) + current().settings.ready_timeout_seconds}


def start(event: dict) -> dict:
    order = event["order"]
    backend = current()
    student = StudentModel.get(order["student"], consistent_read=True)
    if student.status != "free" or student.warm:
        raise StaleOrder(f"{order['student']} is no longer a cold free student")
    backend.hub.delete_user(order["student"])  # a fresh home
    backend.hub.ensure_user(order["student"])
    appliance = _appliance(WorkshopModel.get(order["workshop"]), order["student"])
    if appliance:
        backend.appliances.start(order["workshop"], order["student"], *appliance)
    return {"ready": backend.hub.start_server(order["student"]) == "ready" and not appliance}


def mark(event: dict) -> dict:
    return {"warm": warm.mark_warm(event["order"]["student"])}
