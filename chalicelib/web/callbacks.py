"""The backend's signed callbacks (``POST /api/callbacks/provision``): the signature and the body
are checked here, what they mean is :mod:`chalicelib.services.callbacks`'s business."""
from __future__ import annotations

import time

from chalice import Blueprint

from chalicelib.domain.errors import InvalidInput, Malformed
from chalicelib.domain.orders import SIGNATURE_HEADER, verify_signed_json
from chalicelib.web.http import ctx as process_context
from chalicelib.web.http import json_errors, json_response, load_json

callbacks = Blueprint(__name__)
CALLBACK_MAX_AGE = 300
OUTCOMES = ("ready", "failed", "cleaned")


def _claimed(body: bytes) -> tuple[object, object]:
    """The registration and student a body names, before its signature is checked: they say whose
    key checks it. A body too large or too deep is refused (400) here, before anything else."""
    try:
        data = load_json(body)
    except InvalidInput as exc:
        if isinstance(exc, Malformed):
            raise
        return None, None
    return (data.get("registration"), data.get("student")) if isinstance(data, dict) else (None, None)


@callbacks.route("/api/callbacks/provision", methods=["POST"], content_types=["application/json"])
@json_errors
def provision_result():
    from chalicelib.services import callbacks as results

    ctx = process_context()
    request = callbacks.current_request
    body = request.raw_body or b""
    location = results.signer_location(ctx, *_claimed(body))
    data = verify_signed_json(body, request.headers.get(SIGNATURE_HEADER), ctx.key("callback_key", location),
                              time.time(), CALLBACK_MAX_AGE)
    registration_id, outcome, nonce = data.get("registration"), data.get("outcome"), data.get("nonce")
    if not isinstance(registration_id, str) or outcome not in OUTCOMES:
        raise InvalidInput({"body": "expected registration and outcome ready|failed|cleaned"})
    if not isinstance(nonce, str) or not 16 <= len(nonce) <= 64:
        raise InvalidInput({"nonce": "a callback carries a nonce of 16 to 64 characters"})
    results.take_nonce(ctx, nonce, CALLBACK_MAX_AGE)
    if outcome == "ready":
        password, hub_url = data.get("password"), data.get("hub_url")
        if not isinstance(password, str) or not isinstance(hub_url, str):
            raise InvalidInput({"body": "a ready callback carries password and hub_url"})
        return json_response({"status": results.ready(ctx, registration_id, password, hub_url)})
    if outcome == "failed":
        return json_response({"status": results.failed(ctx, registration_id, str(data.get("reason", "")))})
    return json_response({"status": results.cleaned(ctx, registration_id, data.get("completion"),
                                                     data.get("checks_passed"))})


EVENTS_MAX_AGE = 300


@callbacks.route("/api/events", methods=["POST"], content_types=["application/json"])
@json_errors
def notebook_events():
    """A batch of a participant's notebook events, relayed by their hub: signed with the events key
    of the student's location (the hub took the student's own token first)."""
    from chalicelib.services import live

    ctx = process_context()
    request = callbacks.current_request
    body = request.raw_body or b""
    try:
        claimed = load_json(body)
    except InvalidInput as exc:
        if isinstance(exc, Malformed):
            raise
        claimed = None
    location = live.signer_location(ctx, claimed.get("student") if isinstance(claimed, dict) else None)
    data = verify_signed_json(body, request.headers.get(SIGNATURE_HEADER), ctx.key("events_key", location),
                              time.time(), EVENTS_MAX_AGE)
    return json_response(live.ingest(ctx, data))
