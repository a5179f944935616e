"""Provisioning tasks, one per Task state of ``infra/statemachines/provision.asl.json``.

Each task is small and safe to repeat. The password is generated, hashed,
rendered into the notebooks and handed to the frontend inside :func:`deploy`
alone, so it never appears in the execution's input, output or history.
"""
from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from functools import lru_cache

import urllib3

from chalicelib.adapters.appliances import EcsAppliances, LocalAppliances, appliance_port
from chalicelib.adapters.content import BucketContent, FolderContent, content_for
from chalicelib.adapters.hub import HubClient, HubUnavailable
from chalicelib.domain.errors import WodError
from chalicelib.domain.notebooks import render_notebook
from chalicelib.domain.orders import SIGNATURE_HEADER, sign
from chalicelib.domain.passwords import generate_password, hash_password
from chalicelib.observability import logger
from chalicelib.adapters.secrets import get_key, get_secret
from chalicelib.settings import Settings, get_settings
from chalicelib.store import models, provisioning
from chalicelib.store.models import StudentModel, WorkshopModel

README = "0-ReadMeFirst.ipynb"


class StaleOrder(WodError):
    """The order no longer matches the seat (cancelled, reassigned): nothing to provision."""


class ServerNotReady(WodError):
    """The student's server did not come up before the deadline."""


class CallbackFailed(WodError):
    """The frontend did not take the result; the state machine retries."""


@dataclass
class Backend:
    settings: Settings
    hub: HubClient
    content: FolderContent | BucketContent
    appliances: LocalAppliances | EcsAppliances


@lru_cache(maxsize=1)
def _default() -> Backend:
    settings = get_settings()
    return build(settings)


def build(settings: Settings) -> Backend:
    models.bind(settings)
    hub = HubClient(settings.hub_api_url or settings.hub_url, get_secret(settings, "hub_token"))
    if settings.ecs_cluster:
        from chalicelib.adapters.aws import client_for

        appliances = EcsAppliances(lambda: client_for("ecs", settings), settings.ecs_cluster,
                                   list(settings.ecs_subnets), list(settings.ecs_security_groups))
    else:
        appliances = LocalAppliances(settings.workshops_dir)
    return Backend(settings, hub, content_for(settings), appliances)


_override: list[Backend] = []


def use(backend: Backend | None) -> None:
    """Install a backend (tests, local stack); ``None`` goes back to the environment's."""
    _override[:] = [backend] if backend else []


def current() -> Backend:
    return _override[0] if _override else _default()


def _order(event: dict) -> dict:
    return event["order"]


def holds(order: dict) -> bool:
    """Does the order's registration still hold its student? A late or repeated workflow must
    never tear down the environment of the seat's next holder."""
    try:
        student = StudentModel.get(order["student"], consistent_read=True)
    except StudentModel.DoesNotExist:
        return False
    if student.registration_id is None:  # an orphan freed by a purge: its environment is nobody's
        return order["registration"] == f"purge-{order['student']}"
    return student.registration_id == order["registration"]


def prepare(event: dict) -> dict:
    order = _order(event)
    current()
    student = StudentModel.get(order["student"], consistent_read=True)
    if student.registration_id != order["registration"] or student.workshop_id != order["workshop"]:
        raise StaleOrder(f"{order['student']} is not reserved for registration {order['registration']}")
    if not provisioning.record_progress(order["registration"], "creating_account"):
        raise StaleOrder(f"registration {order['registration']} is no longer waiting for provisioning")
    logger.info("provisioning", extra={"registration": order["registration"], "student": order["student"],
                                       "workshop": order["workshop"]})
    return {"deadline": int(time.time()) + current().settings.ready_timeout_seconds, "warm": bool(student.warm)}


def create_hub_user(event: dict) -> None:
    order = _order(event)
    hub = current().hub
    if not event.get("ctx", {}).get("warm"):  # a warm student's home is fresh and its server runs
        hub.delete_user(order["student"])  # nothing a previous holder of the seat left survives
    hub.ensure_user(order["student"])
    provisioning.record_progress(order["registration"], "starting_server")


def _appliance(workshop: WorkshopModel, student: str) -> tuple[dict, int] | None:
    if not workshop.appliance:
        return None
    number = int(student.removeprefix(workshop.student_prefix))
    return workshop.appliance, appliance_port(workshop.appliance, number, int(workshop.student_from))


def start_server(event: dict) -> dict:
    """The student's server (the container) and, where the workshop has one, its appliance."""
    order = _order(event)
    backend = current()
    appliance = _appliance(WorkshopModel.get(order["workshop"]), order["student"])
    if appliance:
        backend.appliances.start(order["workshop"], order["student"], *appliance)
    return {"ready": backend.hub.start_server(order["student"]) == "ready" and not appliance}


def check_ready(event: dict) -> dict:
    """Ready yet? A spawn the hub throttled (too many at once) is asked for again here, so a
    burst waits its turn within the deadline instead of failing."""
    order = _order(event)
    backend = current()
    appliance = _appliance(WorkshopModel.get(order["workshop"]), order["student"])
    state = backend.hub.server_state(order["student"])
    if state == "none":
        state = backend.hub.start_server(order["student"])
    if state == "ready" and (not appliance or backend.appliances.ready(order["student"], *appliance)):
        return {"ready": True}
    if time.time() > event["ctx"]["deadline"]:
        raise ServerNotReady(f"the server of {order['student']} was not ready in time")
    return {"ready": False}


def _upload(backend: Backend, workshop: WorkshopModel, student: str, variables: dict) -> int:
    count = 0
    for path, data in backend.content.files(workshop.id, workshop.badge):
        if path.endswith(".ipynb"):
            model = {"type": "notebook", "format": "json", "content": render_notebook(data, variables)}
        else:
            try:
                model = {"type": "file", "format": "text", "content": data.decode("utf-8")}
            except UnicodeDecodeError:
                model = {"type": "file", "format": "base64", "content": base64.b64encode(data).decode()}
        folders = path.split("/")[:-1]
        for depth in range(1, len(folders) + 1):
            backend.hub.put_contents(student, "/".join(folders[:depth]), {"type": "directory"})
        backend.hub.put_contents(student, path, model)
        count += 1
    return count


def _callback(backend: Backend, payload: dict) -> None:
    settings = backend.settings
    body = json.dumps(payload | {"issued_at": int(time.time())}).encode()
    url = f"{settings.callback_url or settings.public_url}/api/callbacks/provision"
    try:
        response = urllib3.request("POST", url, body=body, timeout=30, retries=False, headers={
            "Content-Type": "application/json", SIGNATURE_HEADER: sign(body, get_key(settings, "callback_key"))})
    except urllib3.exceptions.HTTPError as exc:
        raise CallbackFailed(f"the frontend at {url} did not answer: {exc}") from exc
    if response.status >= 300:
        raise CallbackFailed(f"the frontend answered {response.status}: {response.data[:200]!r}")


def deploy(event: dict) -> None:
    """Password, notebooks, callback: the only place the password exists, and only in memory.

    A RESET of scope ``password`` (credentials resent by an organiser) keeps the notebooks."""
    order = _order(event)
    backend = current()
    provisioning.record_progress(order["registration"], "copying_notebooks")
    workshop = WorkshopModel.get(order["workshop"])
    password = generate_password()
    provisioning.store_password_hash(order["student"], order["registration"], hash_password(password),
                                     backend.settings.hub_url)
    variables = {"student_id": order["student"], "password": password, "hub_url": backend.settings.hub_url,
                 "workshop_id": workshop.id, "workshop_title": workshop.title}
    appliance = _appliance(workshop, order["student"])
    if appliance:
        variables["appliance_url"] = backend.appliances.url(order["student"], appliance[1])
    uploaded = 0 if order.get("scope") == "password" else _upload(backend, workshop, order["student"], variables)
    _callback(backend, {"registration": order["registration"], "student": order["student"], "outcome": "ready",
                        "password": password, "hub_url": backend.settings.hub_url})
    logger.info("provisioned", extra={"registration": order["registration"], "student": order["student"],
                                      "files": uploaded})


def compensate(event: dict) -> None:
    """Undo what provisioning did and tell the frontend, which frees the seat and apologises."""
    order = _order(event)
    backend = current()
    error = event.get("error") or {}
    reason = f"{error.get('Error', 'error')}: {str(error.get('Cause', ''))[:300]}"
    if holds(order):
        backend.appliances.stop(order["student"])
        try:
            backend.hub.delete_user(order["student"])
        except (HubUnavailable, WodError) as exc:
            logger.warning("hub user not removed", extra={"student": order["student"], "error": str(exc)})
    _callback(backend, {"registration": order["registration"], "student": order["student"], "outcome": "failed",
                        "reason": reason})
    logger.warning("provisioning failed", extra={"registration": order["registration"],
                                                 "student": order["student"], "reason": reason})
