"""Provisioning tasks, one per Task state of ``infra/statemachines/provision.asl.json`` (and
``reset.asl.json``'s Deploy). Each is small and safe to repeat.

The password is generated, hashed, rendered into the notebooks and handed to the frontend
inside :func:`deploy` alone, so it never appears in the execution's input, output or history.

A busy hub is not a failure: a hub call that times out or answers 5xx/429 raises
:class:`HubUnavailable` (any storage or appliance outage :class:`Unavailable`), which the state
machine retries with backoff, until the provisioning deadline (:func:`deadline`, set by
:func:`prepare`) has passed; only then does it become :class:`ProvisioningTimedOut`, which
compensates. A server's readiness has its own deadline,
``ready_timeout_seconds`` from when the hub actually began to spawn it, not from when the spawn
was queued behind the hub's concurrent-spawn limit.
"""
from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import urllib3

from chalicelib.adapters.appliances import appliance_port
from chalicelib.adapters.hub import HubUnavailable, Spawn
from chalicelib.adapters.render import render_notebook
from chalicelib.domain.checks import release
from chalicelib.domain.errors import NotFound, Unavailable, WodError
from chalicelib.domain.lifecycle import PROGRESS
from chalicelib.domain.orders import SIGNATURE_HEADER, sign
from chalicelib.domain.passwords import generate_password, hash_password
from chalicelib.domain.registration import PROVISIONING
from chalicelib.domain.values import Registration, Workshop
from chalicelib.observability import count, logger
from chalicelib.services.commit import commit
from chalicelib.services.context import Context

Event = dict[str, Any]
MIN_WAIT, MAX_WAIT = 2, 30  # seconds between two looks at a spawn (the hub's Retry-After within these)


class StaleOrder(WodError):
    """The order no longer matches the seat (cancelled, reassigned): nothing to provision."""


class ServerNotReady(WodError):
    """The student's server did not come up before the deadline."""


class CallbackFailed(WodError):
    """The frontend did not take the result; the state machine retries."""


class ProvisioningTimedOut(WodError):
    """The hub stayed busy or unreachable past the provisioning deadline."""


def _progress(ctx: Context, registration_id: str, step: str) -> bool:
    """Show a provisioning step; False when the registration is no longer being provisioned. Not
    read first (a task's role updates registrations, never reads them): the order says it is in
    flight, and the write's condition checks that it still is."""
    return commit(ctx, Registration(registration_id, status=PROVISIONING), PROGRESS, reason=step) is not None


@contextmanager
def patience(event: Event) -> Iterator[None]:
    """Let a busy hub (or storage, or appliance service) be retried (the state machine's Retry on
    ``HubUnavailable``/``Unavailable``) until the execution's deadline; past it, give up
    (:class:`ProvisioningTimedOut`: compensation)."""
    try:
        yield
    except Unavailable as exc:
        until = (event.get("ctx") or {}).get("deadline")
        if until is not None and time.time() > until:
            raise ProvisioningTimedOut(f"still unavailable at the deadline: {exc.message}") from exc
        raise


def holds(ctx: Context, order: dict) -> bool:
    """Does the order's registration still hold its student? A late or repeated workflow must
    never tear down the environment of the seat's next holder."""
    try:
        student = ctx.stores.seats.get_student(order["student"])
    except NotFound:
        return False
    if student.registration_id is None:  # an orphan freed by a purge: its environment is nobody's
        return bool(order["registration"] == f"purge-{order['student']}")
    return student.registration_id == order["registration"]


def appliance_of(workshop: Workshop, student: str) -> tuple[dict, int] | None:
    """The workshop's appliance and the port of ``student``'s, if the workshop has one."""
    if not workshop.appliance:
        return None
    number = int(student.removeprefix(workshop.student_prefix))
    return workshop.appliance, appliance_port(workshop.appliance, number, workshop.student_from)


def deadline(ctx: Context) -> int:
    """When an execution stops waiting for a busy hub: a minute before the time checks would call
    the registration stuck (``stuck_minutes``), at least the readiness timeout from now."""
    patience = max(ctx.settings.ready_timeout_seconds, ctx.settings.stuck_minutes * 60 - 60)
    return int(time.time()) + patience


def spawned(ctx: Context, spawn: Spawn, appliance: bool) -> dict:
    """A task's answer to asking for a server: ``ready``; ``ready_by``, the readiness deadline of a
    spawn the hub began; ``wait``, the seconds before the next look (the hub's Retry-After)."""
    if spawn.state == "ready" and not appliance:
        return {"ready": True, "wait": 0}
    ready_by = int(time.time()) + ctx.settings.ready_timeout_seconds if spawn.state != "throttled" else None
    return {"ready": False, "ready_by": ready_by, "wait": _wait(spawn.retry_after)}


def _wait(retry_after: float | None) -> int:
    return int(min(MAX_WAIT, max(MIN_WAIT, retry_after or MIN_WAIT)))


def callback(ctx: Context, payload: dict) -> None:
    """Report to the frontend, signed with the callback key; raises :class:`CallbackFailed`."""
    settings = ctx.settings
    # a fresh nonce per call: the frontend takes each callback once (a retry is a new call)
    body = json.dumps(payload | {"issued_at": int(time.time()), "nonce": secrets.token_urlsafe(18)}).encode()
    url = f"{settings.callback_url or settings.public_url}/api/callbacks/provision"
    try:
        response = urllib3.request("POST", url, body=body, timeout=30, retries=False, headers={
            "Content-Type": "application/json", SIGNATURE_HEADER: sign(body, ctx.key("callback_key"))})
    except urllib3.exceptions.HTTPError as exc:
        raise CallbackFailed(f"the frontend at {url} did not answer: {exc}") from exc
    if response.status >= 300:
        raise CallbackFailed(f"the frontend answered {response.status}: {response.data[:200]!r}")


def prepare(ctx: Context, event: Event) -> dict:
    order = event["order"]
    student = ctx.stores.seats.get_student(order["student"])
    if student.registration_id != order["registration"] or student.workshop_id != order["workshop"]:
        raise StaleOrder(f"{order['student']} is not reserved for registration {order['registration']}")
    if not _progress(ctx, order["registration"], "creating_account"):
        raise StaleOrder(f"registration {order['registration']} is no longer waiting for provisioning")
    logger.info("provisioning", extra={"registration": order["registration"], "student": order["student"],
                                       "workshop": order["workshop"]})
    return {"deadline": deadline(ctx), "warm": bool(student.warm)}


def create_hub_user(ctx: Context, event: Event) -> None:
    order = event["order"]
    with patience(event):
        if not event.get("ctx", {}).get("warm"):  # a warm student's home is fresh and its server runs
            ctx.appliances.stop(order["student"])  # nothing a previous holder of the seat left survives:
            ctx.hub.delete_user(order["student"])  # appliance (and its token), server, account and home
        ctx.hub.ensure_user(order["student"])
    _progress(ctx, order["registration"], "starting_server")


def start_server(ctx: Context, event: Event) -> dict:
    """The student's server (the container) and, where the workshop has one, its appliance."""
    order = event["order"]
    with patience(event):
        appliance = appliance_of(ctx.stores.seats.get_workshop(order["workshop"]), order["student"])
        if appliance:
            ctx.appliances.start(order["workshop"], order["student"], *appliance)
        return spawned(ctx, ctx.hub.start_server(order["student"]), bool(appliance))


def check_ready(ctx: Context, event: Event) -> dict:
    """Ready yet? A spawn the hub throttled (too many at once) is asked for again here, so a
    burst waits its turn instead of failing; a spawn the hub began has ``ready_timeout_seconds``."""
    order = event["order"]
    ready_by = (event.get("server") or {}).get("ready_by")
    wait = MIN_WAIT
    with patience(event):
        appliance = appliance_of(ctx.stores.seats.get_workshop(order["workshop"]), order["student"])
        state = ctx.hub.server_state(order["student"])
        if state == "none":  # not asked for yet, throttled, or stopped: (again) now, a new readiness clock
            spawn = ctx.hub.start_server(order["student"])
            state, wait, ready_by = spawn.state, _wait(spawn.retry_after), None
        if state == "ready" and (not appliance or ctx.appliances.ready(order["student"], *appliance)):
            return {"ready": True, "wait": 0}
    now = time.time()
    if ready_by is None and state != "throttled":
        ready_by = int(now) + ctx.settings.ready_timeout_seconds  # the hub spawns it from now on
    if now > event["ctx"]["deadline"] or (ready_by is not None and now > ready_by):
        raise ServerNotReady(f"the server of {order['student']} was not ready in time")
    return {"ready": False, "ready_by": ready_by, "wait": wait}


def _upload(ctx: Context, workshop: Workshop, student: str, variables: dict) -> int:
    count = 0
    for path, data in ctx.content.files(workshop.id, workshop.badge):
        model: dict[str, Any]
        if path.endswith(".ipynb"):
            # the participant's copy: solutions stubbed, hidden tests left out (domain/checks.py)
            model = {"type": "notebook", "format": "json", "content": release(render_notebook(data, variables))}
        else:
            try:
                model = {"type": "file", "format": "text", "content": data.decode("utf-8")}
            except UnicodeDecodeError:
                model = {"type": "file", "format": "base64", "content": base64.b64encode(data).decode()}
        folders = path.split("/")[:-1]
        for depth in range(1, len(folders) + 1):
            ctx.hub.put_contents(student, "/".join(folders[:depth]), {"type": "directory"})
        ctx.hub.put_contents(student, path, model)
        count += 1
    return count


def deploy(ctx: Context, event: Event) -> None:
    """Password, notebooks, callback: the only place the password exists, and only in memory.

    A RESET of scope ``password`` (credentials resent by an organiser) keeps the notebooks."""
    with patience(event):
        _deploy(ctx, event)


def _deploy(ctx: Context, event: Event) -> None:
    order = event["order"]
    _progress(ctx, order["registration"], "copying_notebooks")
    ctx.hub.mark_participant(order["student"])  # from now on the hub stops the server when idle
    workshop = ctx.stores.seats.get_workshop(order["workshop"])
    password = generate_password()
    ctx.stores.provisioning.store_password_hash(order["student"], order["registration"], hash_password(password),
                                                ctx.settings.hub_url)
    variables = {"student_id": order["student"], "password": password, "hub_url": ctx.settings.hub_url,
                 "workshop_id": workshop.id, "workshop_title": workshop.title}
    appliance = appliance_of(workshop, order["student"])
    if appliance:
        variables["appliance_url"] = ctx.appliances.url(order["student"], appliance[1])
        variables["appliance_token"] = ctx.appliances.token(order["student"])
    uploaded = 0 if order.get("scope") == "password" else _upload(ctx, workshop, order["student"], variables)
    callback(ctx, {"registration": order["registration"], "student": order["student"], "outcome": "ready",
                   "password": password, "hub_url": ctx.settings.hub_url})
    logger.info("provisioned", extra={"registration": order["registration"], "student": order["student"],
                                      "files": uploaded})


def compensate(ctx: Context, event: Event) -> None:
    """Undo what provisioning did and tell the frontend, which frees the seat and apologises."""
    order = event["order"]
    error = event.get("error") or {}
    reason = f"{error.get('Error', 'error')}: {str(error.get('Cause', ''))[:300]}"
    if holds(ctx, order):
        ctx.appliances.stop(order["student"])
        try:
            ctx.hub.delete_user(order["student"])
        except (HubUnavailable, WodError) as exc:
            logger.warning("hub user not removed", extra={"student": order["student"], "error": str(exc)})
    callback(ctx, {"registration": order["registration"], "student": order["student"], "outcome": "failed",
                   "reason": reason})
    count("ProvisioningCompensated")  # the execution ends in success: this metric is what alarms
    logger.warning("provisioning failed", extra={"registration": order["registration"],
                                                 "student": order["student"], "reason": reason})
