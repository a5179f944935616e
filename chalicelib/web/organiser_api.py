"""The organiser's JSON API (``/api/admin/...``): ``Authorization: Bearer <admin token>``, refused
with 401/403 before any handler runs (:mod:`chalicelib.web.auth`); the operations are
:mod:`chalicelib.services.organiser`'s, shared with the dashboard."""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from chalice import Blueprint, Response

from chalicelib.domain.errors import InvalidInput
from chalicelib.web import auth
from chalicelib.web.http import ctx, json_errors, json_response, parse_json

organiser_api = Blueprint(__name__)
JSON = ["application/json"]


def api_route(path: str, methods: tuple[str, ...] = ("GET",)):
    """An admin API route: ``handler(actor, **url_params)``, refused with 401/403 before it runs."""
    def register(handler: Callable[..., Response]):
        @functools.wraps(handler)
        def guarded(**params):
            return handler(auth.api_actor(organiser_api.current_request), **params)

        options: dict[str, Any] = {"methods": list(methods)}
        if set(methods) & {"POST", "PATCH"}:
            options["content_types"] = JSON
        organiser_api.route(path, **options)(json_errors(guarded))
        return handler
    return register


def _body(required: bool = True) -> dict[str, Any]:
    raw = organiser_api.current_request.raw_body
    if not raw and not required:
        return {}
    data = parse_json(raw if isinstance(raw, bytes) else raw.encode()) if raw else None
    if not isinstance(data, dict):
        raise InvalidInput({"body": "Expected a JSON object."}, "Send a JSON object.")
    return data


def _query() -> dict[str, str]:
    return dict(organiser_api.current_request.query_params or {})


@api_route("/api/admin/workshops")
def api_workshops(actor):
    from chalicelib.services import organiser as operations
    return json_response(operations.workshops(ctx()))


@api_route("/api/admin/workshops/{workshop_id}", ("PATCH",))
def api_update_workshop(actor, workshop_id):
    """``{active?, duration_minutes?, capacity?}``; ``null`` hands a field back to the folder (the
    next sync applies the folder's value; until then the field is listed in ``handed_back``)."""
    from chalicelib.services import organiser as operations
    return json_response(operations.update_workshop(ctx(), actor, workshop_id, _body()))


@api_route("/api/admin/stats")
def api_stats(actor):
    from chalicelib.services import organiser as operations
    return json_response(operations.stats(ctx()))


@api_route("/api/admin/reports/{workshop_id}")
def api_report(actor, workshop_id):
    """The event report of a workshop, ``?from=YYYY-MM-DD&to=YYYY-MM-DD`` (days included, UTC)."""
    from chalicelib.services import event_report
    return json_response(event_report.report(ctx(), workshop_id, _query()))


@api_route("/api/admin/registrations")
def api_registrations(actor):
    """``?q=&status=&workshop=&limit=``"""
    from chalicelib.services import organiser as operations
    return json_response(operations.search(ctx(), _query()))


@api_route("/api/admin/registrations.csv")
def api_registrations_csv(actor):
    """The same search as a CSV download (no page limit); cells that would start a formula are quoted."""
    from chalicelib.services import organiser as operations
    body = operations.export_csv(ctx(), actor, _query())
    return Response(body=body, headers={"Content-Type": "text/csv; charset=utf-8", "Cache-Control": "no-store",
                                        "Content-Disposition": 'attachment; filename="registrations.csv"',
                                        "X-Content-Type-Options": "nosniff"})



@api_route("/api/admin/registrations/{registration_id}")
def api_registration(actor, registration_id):
    from chalicelib.services import organiser as operations
    return json_response(operations.registration(ctx(), registration_id))


@api_route("/api/admin/registrations/{registration_id}/{action}", ("POST",))
def api_registration_action(actor, registration_id, action):
    """resend-credentials | extend (``{"minutes": n}`` optional) | reset | end"""
    from chalicelib.services import organiser as operations
    return json_response(operations.perform(ctx(), actor, action, registration_id, _body(required=False)))


@api_route("/api/admin/students/{student_id}/purge", ("POST",))
def api_purge(actor, student_id):
    from chalicelib.services import organiser as operations
    return json_response(operations.purge(ctx(), actor, student_id))


@api_route("/api/admin/audit")
def api_audit(actor):
    """``?limit=&before=<entry id>``, newest first."""
    from chalicelib.services import audit
    query = _query()
    return json_response(audit.entries(ctx(), query.get("limit"), query.get("before")))


@api_route("/api/admin/webhooks")
def api_webhooks(actor):
    from chalicelib.services import webhooks
    return json_response(webhooks.listing(ctx()))


@api_route("/api/admin/webhooks", ("POST",))
def api_create_webhook(actor):
    """``{url, events?, description?}``; the answer holds the signing secret, shown this once."""
    from chalicelib.services import webhooks
    created = webhooks.create(ctx(), actor, _body())
    return json_response(created, 201, {"Location": f"/api/admin/webhooks/{created['id']}"})


@api_route("/api/admin/webhooks/{hook_id}")
def api_webhook(actor, hook_id):
    """The hook and its latest deliveries (the delivery log)."""
    from chalicelib.services import webhooks
    return json_response(webhooks.detail(ctx(), hook_id))


@api_route("/api/admin/webhooks/{hook_id}", ("DELETE",))
def api_delete_webhook(actor, hook_id):
    from chalicelib.services import webhooks
    webhooks.remove(ctx(), actor, hook_id)
    return Response(body="", status_code=204, headers={"Cache-Control": "no-store"})


@api_route("/api/admin/webhooks/{hook_id}/test", ("POST",))
def api_test_webhook(actor, hook_id):
    from chalicelib.services import webhooks
    return json_response(webhooks.ping(ctx(), actor, hook_id))
