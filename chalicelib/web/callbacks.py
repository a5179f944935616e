"""The backend's signed callbacks: provisioning succeeded (clock starts) or failed (seat
freed), and an environment was cleaned (seat freed, thank-you sent, waitlist served)."""
from __future__ import annotations

import time
from datetime import timedelta
from urllib.parse import quote

from chalice import Blueprint

from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.lifecycle import badge_level
from chalicelib.domain.orders import SIGNATURE_HEADER, verify_signed_json
from chalicelib.lazy import lazy_module
from chalicelib.observability import count, logger, seconds
from chalicelib.adapters.secrets import get_key
from chalicelib.web.http import json_errors, json_response

context_module = lazy_module("chalicelib.services.context")
lifecycle = lazy_module("chalicelib.services.time_checks")
outbox = lazy_module("chalicelib.services.outbox")
render = lazy_module("chalicelib.adapters.render")
lifecycle_store = lazy_module("chalicelib.store.lifecycle")
provisioning = lazy_module("chalicelib.store.provisioning")
seats = lazy_module("chalicelib.store.seats")
webhooks = lazy_module("chalicelib.services.webhooks")

callbacks = Blueprint(__name__)
CALLBACK_MAX_AGE = 300
README = "0-ReadMeFirst.ipynb"


def start_link(hub_url: str) -> str:
    """Log in, then land on the ReadMeFirst notebook in the student's own server."""
    return f"{hub_url}/hub/login?next={quote('/hub/user-redirect/lab/tree/' + README, safe='')}"


def _cleaned(context, registration_id: str, completion):
    if not (completion is None or (isinstance(completion, (int, float)) and 0 <= completion <= 100)):
        raise InvalidInput({"completion": "a percentage or null"})
    finished = lifecycle_store.finish(registration_id, completion, context.clock(), ["thanks"])
    if finished:
        level = badge_level(lifecycle_store.finished_workshops(finished.email), context.settings.badge_levels)
        if level and finished.status == "finished":
            lifecycle_store.queue(finished, [f"level:{level}"], context.clock())
            finished = lifecycle_store.get(registration_id)
        outbox.deliver(finished, context)
        if finished.status == "finished":  # a failed one was announced when it failed
            webhooks.emit("finished", finished, context)
        lifecycle.promote_waitlist(context, finished.workshop_id)
        logger.info("registration finished, seat freed",
                    extra={"registration": registration_id, "workshop": finished.workshop_id,
                           "student": finished.student_id, "completion": completion})
    return json_response({"status": finished.status if finished else "finished"})


def _send_credentials(reg, password: str, hub_url: str) -> None:
    context = context_module.current()
    workshop = seats.get_workshop(reg.workshop_id)
    context.mailer.send(render.email(
        "credentials", to=reg.email, subject=f"Your workshop is ready: {workshop.title}",
        registration=reg, workshop=workshop, password=password, hub_url=hub_url, start_url=start_link(hub_url),
        status_url=outbox.status_url(context, reg.id),
    ))


@callbacks.route("/api/callbacks/provision", methods=["POST"], content_types=["application/json"])
@json_errors
def provision_result():
    context = context_module.current()
    request = callbacks.current_request
    data = verify_signed_json(request.raw_body or b"", request.headers.get(SIGNATURE_HEADER),
                              get_key(context.settings, "callback_key"), time.time(), CALLBACK_MAX_AGE)
    registration_id, outcome = data.get("registration"), data.get("outcome")
    if not isinstance(registration_id, str) or outcome not in ("ready", "failed", "cleaned"):
        raise InvalidInput({"body": "expected registration and outcome ready|failed|cleaned"})
    if outcome == "cleaned":
        return _cleaned(context, registration_id, data.get("completion"))
    if outcome == "ready":
        password, hub_url = data.get("password"), data.get("hub_url")
        if not isinstance(password, str) or not isinstance(hub_url, str):
            raise InvalidInput({"body": "a ready callback carries password and hub_url"})
        reg, first = provisioning.activate(registration_id, context.clock(),
                                           timedelta(minutes=context.settings.reminder_minutes))
        _send_credentials(reg, password, hub_url)  # a failure here makes the backend retry
        if first:
            webhooks.emit("provisioned", reg, context)
            seconds("ProvisioningDuration", (context.clock() - reg.created_at).total_seconds())
        logger.info("registration active", extra={"registration": reg.id, "student": reg.student_id,
                                                  "workshop": reg.workshop_id, "first": first})
        return json_response({"status": reg.status})
    reason = str(data.get("reason", ""))
    count("ProvisioningFailures")
    running = lifecycle_store.get(registration_id)
    if running.status == "active":  # failed after activation (e.g. the credentials mail): clean up, apologise
        retry = timedelta(minutes=context.settings.cleanup_retry_minutes)
        if lifecycle_store.begin_cleanup(running, context.clock(), retry, "failed", extra_outbox=("apology",)):
            failed = lifecycle_store.get(registration_id)
            outbox.deliver(failed, context)
            webhooks.emit("failed", failed, context)
        return json_response({"status": "failed"})
    failed = provisioning.release(registration_id, reason, context.clock(), "apology")
    if failed:
        outbox.deliver(failed, context)
        webhooks.emit("failed", failed, context)
        logger.warning("provisioning failed, seat released",
                       extra={"registration": registration_id, "workshop": failed.workshop_id})
    return json_response({"status": "failed"})
