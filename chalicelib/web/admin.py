"""The organiser's side: the admin JSON API (``/api/admin/...``) and the server-rendered
dashboard (``/admin/...``) on top of the same operations (:mod:`chalicelib.admin`).

Every route but the sign-in page needs the admin token (API) or a signed-in session
(dashboard, whose forms also carry a CSRF token): see :mod:`chalicelib.web.admin_auth`.
Dashboard forms post, then redirect (303) back with a signed one-line result (``flash``).
"""
from __future__ import annotations

import functools
from datetime import datetime
from typing import Any, Callable
from urllib.parse import parse_qsl, urlencode, urlsplit

from chalice import Blueprint, Response

from chalicelib.domain import admin as rules
from chalicelib.domain import charts
from chalicelib.domain.webhooks import EVENTS
from chalicelib.domain.errors import InvalidInput, WodError
from chalicelib.lazy import lazy_module
from chalicelib.observability import logger
from chalicelib.web.http import html_response, json_errors, json_response, parse_form, parse_json
from chalicelib.web.pages import html_errors

auth = lazy_module("chalicelib.web.admin_auth")
operations = lazy_module("chalicelib.admin")
audit = lazy_module("chalicelib.audit")
render = lazy_module("chalicelib.render")
reports = lazy_module("chalicelib.domain.reports")
webhooks = lazy_module("chalicelib.webhooks")

admin = Blueprint(__name__)
FORM = ["application/x-www-form-urlencoded"]
JSON = ["application/json"]


# -- the JSON API ----------------------------------------------------------------------------

def api_route(path: str, methods: tuple[str, ...] = ("GET",)):
    """An admin API route: ``handler(actor, **url_params)``, refused with 401/403 before it runs."""
    def register(handler: Callable[..., Response]):
        @functools.wraps(handler)
        def guarded(**params):
            actor = auth.api_actor(admin.current_request)
            return actor if isinstance(actor, Response) else handler(actor, **params)

        options: dict[str, Any] = {"methods": list(methods)}
        if set(methods) & {"POST", "PATCH"}:
            options["content_types"] = JSON
        admin.route(path, **options)(json_errors(guarded))
        return handler
    return register


def _body(required: bool = True) -> dict[str, Any]:
    raw = admin.current_request.raw_body
    if not raw and not required:
        return {}
    data = parse_json(raw) if raw else None
    if not isinstance(data, dict):
        raise InvalidInput({"body": "Expected a JSON object."}, "Send a JSON object.")
    return data


def _query() -> dict[str, str]:
    return dict(admin.current_request.query_params or {})


@api_route("/api/admin/workshops")
def api_workshops(actor):
    return json_response(operations.workshops())


@api_route("/api/admin/workshops/{workshop_id}", ("PATCH",))
def api_update_workshop(actor, workshop_id):
    """``{active?, duration_minutes?, capacity?}``; ``null`` hands a field back to the folder (the
    next sync applies the folder's value; until then the field is listed in ``handed_back``)."""
    return json_response(operations.update_workshop(actor, workshop_id, _body()))


@api_route("/api/admin/stats")
def api_stats(actor):
    return json_response(operations.stats())


@api_route("/api/admin/registrations")
def api_registrations(actor):
    """``?q=&status=&workshop=&limit=``"""
    return json_response(operations.search(_query()))


@api_route("/api/admin/registrations.csv")
def api_registrations_csv(actor):
    """The same search as a CSV download (no page limit); cells that would start a formula are quoted."""
    body = operations.export_csv(actor, _query())
    return Response(body=body, headers={"Content-Type": "text/csv; charset=utf-8", "Cache-Control": "no-store",
                                        "Content-Disposition": 'attachment; filename="registrations.csv"',
                                        "X-Content-Type-Options": "nosniff"})



@api_route("/api/admin/registrations/{registration_id}")
def api_registration(actor, registration_id):
    return json_response(operations.registration(registration_id))


@api_route("/api/admin/registrations/{registration_id}/{action}", ("POST",))
def api_registration_action(actor, registration_id, action):
    """resend-credentials | extend (``{"minutes": n}`` optional) | reset | end"""
    return json_response(operations.perform(actor, action, registration_id, _body(required=False)))


@api_route("/api/admin/students/{student_id}/purge", ("POST",))
def api_purge(actor, student_id):
    return json_response(operations.purge(actor, student_id))


@api_route("/api/admin/audit")
def api_audit(actor):
    """``?limit=&before=<entry id>``, newest first."""
    query = _query()
    return json_response(audit.entries(query.get("limit"), query.get("before")))


@api_route("/api/admin/webhooks")
def api_webhooks(actor):
    return json_response(webhooks.listing())


@api_route("/api/admin/webhooks", ("POST",))
def api_create_webhook(actor):
    """``{url, events?, description?}``; the answer holds the signing secret, shown this once."""
    created = webhooks.create(actor, _body())
    return json_response(created, 201, {"Location": f"/api/admin/webhooks/{created['id']}"})


@api_route("/api/admin/webhooks/{hook_id}")
def api_webhook(actor, hook_id):
    """The hook and its latest deliveries (the delivery log)."""
    return json_response(webhooks.detail(hook_id))


@api_route("/api/admin/webhooks/{hook_id}", ("DELETE",))
def api_delete_webhook(actor, hook_id):
    webhooks.remove(actor, hook_id)
    return Response(body="", status_code=204, headers={"Cache-Control": "no-store"})


@api_route("/api/admin/webhooks/{hook_id}/test", ("POST",))
def api_test_webhook(actor, hook_id):
    return json_response(webhooks.ping(actor, hook_id))


# -- the dashboard ---------------------------------------------------------------------------

def _flash() -> dict[str, str] | None:
    sealed = _query().get("flash")
    return rules.unseal(auth.key("flash"), sealed) if sealed else None


def _page(template: str, session, status: int = 200, **context) -> Response:
    request = admin.current_request
    body = render.page(template, session=session, flash=_flash(), here=auth.here(request), **context)
    return html_response(body, status)


def _login_page(status: int, message: str | None = None, next_path: str = "/admin", name: str = "",
                clear: bool = False) -> Response:
    body = render.page("admin/login.html", message=message, next=rules.safe_next(next_path), actor_name=name)
    return html_response(body, status, {"Set-Cookie": auth.session_cookie(None)} if clear else None)


def page_route(path: str, methods: tuple[str, ...] = ("GET",)):
    """A dashboard route: ``handler(session, form, **url_params)`` for a signed-in organiser; a
    POST must carry the session's CSRF token. Anyone else gets the sign-in form (401) or 403."""
    def register(handler: Callable[..., Response]):
        @functools.wraps(handler)
        def guarded(**params):
            request = admin.current_request
            session = auth.session_of(request)
            if session is None:
                stale = bool(auth.cookie_value(request))
                return _login_page(401, "Your session has ended; sign in again." if stale else None,
                                   auth.here(request) if request.method == "GET" else "/admin", clear=stale)
            if request.method == "POST":
                form = parse_form(request.raw_body)
                if not rules.csrf_ok(auth.key("session"), session.token, form.get("csrf")):
                    return html_response(render.page("error.html", status=403, message=(
                        "This form is out of date or did not come from the dashboard: reload the page and "
                        "try again.")), 403)
            else:
                form = _query()
            return handler(session, form, **params)

        options: dict[str, Any] = {"methods": list(methods)}
        if "POST" in methods:
            options["content_types"] = FORM
        admin.route(path, **options)(html_errors(guarded))
        return handler
    return register


def _back(form: dict[str, str], message: str, kind: str = "ok", default: str = "/admin") -> Response:
    """303 to the page the form came from, with the result to show there."""
    target = urlsplit(rules.safe_next(form.get("back"), default))
    query = [(k, v) for k, v in parse_qsl(target.query) if k != "flash"]
    query.append(("flash", rules.seal(auth.key("flash"), {"m": message, "k": kind})))
    return Response(body="", status_code=303, headers={"Location": f"{target.path}?{urlencode(query)}"})


def _act(form: dict[str, str], default: str, run: Callable[[], Any],
         done: Callable[[Any], str | tuple[str, str]]) -> Response:
    """Run an action; come back with ``done(result)`` (a message, or (message, kind)) or the error."""
    try:
        result = run()
    except WodError as exc:
        fields = getattr(exc, "fields", None)
        detail = " ".join(f"{k}: {v}" for k, v in fields.items()) if fields else ""
        return _back(form, f"{exc.message} {detail}".strip(), "error", default)
    said = done(result)
    return _back(form, *(said if isinstance(said, tuple) else (said,)), default=default)


@admin.route("/admin/login", methods=["GET"])
@html_errors
def login_page():
    return _login_page(200, next_path=_query().get("next", "/admin"))


@admin.route("/admin/login", methods=["POST"], content_types=FORM)
@html_errors
def login():
    form = parse_form(admin.current_request.raw_body)
    next_path = rules.safe_next(form.get("next"))
    try:
        actor = rules.validate_actor(form.get("name"))
    except InvalidInput as exc:
        return _login_page(422, exc.fields["name"], next_path, form.get("name", "")[:64])
    if not rules.token_matches(form.get("token", ""), auth.admin_token()):
        logger.warning("dashboard sign-in refused", extra={"actor": actor})
        return _login_page(403, "That is not the admin token.", next_path, actor)
    session = auth.start_session(actor)
    audit.record(actor, "sign_in", "dashboard", "done", {})
    return Response(body="", status_code=303, headers={"Location": next_path,
                                                       "Set-Cookie": auth.session_cookie(session)})


@page_route("/admin/logout", ("POST",))
def logout(session, form):
    audit.record(session.actor, "sign_out", "dashboard", "done", {})
    return Response(body="", status_code=303, headers={"Location": "/admin/login",
                                                       "Set-Cookie": auth.session_cookie(None)})


@page_route("/admin")
def overview(session, form):
    stats = operations.stats()
    seat_maps = {w["id"]: charts.seat_map(w["seats_total"], w["seats_free"], w["seats_warm"], w["waitlist"])
                 for w in stats["workshops"]}
    hourly = charts.hourly_histogram([(datetime.fromisoformat(h["hour"]), h["count"])
                                      for h in stats["registrations_per_hour"]])
    completion = charts.percent_bars([(c["title"], c["average"], c["finished"]) for c in stats["completion"]])
    return _page("admin/overview.html", session, stats=stats, seat_maps=seat_maps, hourly=hourly,
                 completion=completion)


LABELS = {"active": "registration", "duration_minutes": "duration (min)", "capacity": "capacity"}


@page_route("/admin/workshops/{workshop_id}", ("POST",))
def edit_workshop(session, form, workshop_id):
    data: dict[str, Any] = {}
    if form.get("active") in ("true", "false"):
        data["active"] = form["active"] == "true"
    for name in ("capacity", "duration_minutes"):
        if name in form and form[name].strip() != form.get(f"was_{name}"):
            data[name] = form[name]
    for name in filter(None, form.get("release", "").split(",")):
        data[name] = None
    if not data:
        return _back(form, "Nothing to change.")

    def done(view):
        said = [f"{LABELS.get(k, k)} {'open' if v is True else 'closed' if v is False else v}"
                for k, v in data.items() if v is not None]
        released = [LABELS.get(k, k) for k, v in data.items() if v is None]
        if released:  # this side does not read the folders: the next sync applies their values
            said.append(f"{' and '.join(released)} handed back to the folder: the next sync applies the folder's "
                        f"value{'s' if len(released) > 1 else ''}")
        return f"{view['title']}: {'; '.join(said)}."
    return _act(form, "/admin", lambda: operations.update_workshop(session.actor, workshop_id, data), done)


@page_route("/admin/registrations")
def registrations_page(session, form):
    params = {k: form[k] for k in ("q", "status", "workshop") if form.get(k)}
    try:
        result, problem, status = operations.search(params), None, 200
    except InvalidInput as exc:
        result, problem, status = {"total": 0, "registrations": []}, " ".join(exc.fields.values()), 422
    csv_url = "/api/admin/registrations.csv" + ("?" + urlencode(params) if params else "")
    return _page("admin/registrations.html", session, status, result=result, problem=problem, params=params,
                 statuses=reports.STATUSES, workshops=operations.workshops(), csv_url=csv_url)


# By student, not by email: the message travels in the redirect's URL (signed, but readable).
DONE = {"resend-credentials": "A new password is on its way to {who}; the notebooks are kept.",
        "extend": "{who}'s workshop now ends at {ends}.", "reset": "Fresh notebooks and a new password for {who}.",
        "end": "{who}'s workshop is ending; the cleanup is ordered."}


@page_route("/admin/registrations/{registration_id}/{action}", ("POST",))
def registration_action(session, form, registration_id, action):
    def done(reg):
        ends = (reg["ends_at"] or "")[11:16] + " UTC"
        return DONE[action].format(who=reg.get("student") or f"registration {reg['id']}", ends=ends)
    return _act(form, "/admin/registrations",
                lambda: operations.perform(session.actor, action, registration_id, {"minutes": form.get("minutes")}),
                done)


PURGED = {"purging": "its registration failed with an apology and the environment is being torn down",
          "cleaning": "it is already being cleaned", "freed": "its seat is back and its environment is torn down",
          "free": "it was already free"}


@page_route("/admin/students/purge", ("POST",))
def purge_student(session, form):
    student = form.get("student", "").strip()
    return _act(form, "/admin/registrations", lambda: operations.purge(session.actor, student),
                lambda r: f"Purged {r['student']}: {PURGED[r['result']]}.")


@page_route("/admin/audit")
def audit_page(session, form):
    entries = audit.entries("100", form.get("before") or None)
    return _page("admin/audit.html", session, entries=entries, older=entries[-1]["id"] if len(entries) == 100 else None)


@page_route("/admin/webhooks")
def webhooks_page(session, form):
    return _page("admin/webhooks.html", session, hooks=webhooks.listing(), events=EVENTS,
                 created=None, problem=None, values={})


@page_route("/admin/webhooks", ("POST",))
def create_webhook(session, form):
    data = {"url": form.get("url", ""), "description": form.get("description", ""),
            "events": [name for name in EVENTS if form.get(f"event_{name}")]}
    try:
        created, problem, status = webhooks.create(session.actor, data), None, 201
    except InvalidInput as exc:
        created, problem, status = None, " ".join(exc.fields.values()), 422
    # rendered, not redirected: the secret is shown this once and must not travel in a URL
    return _page("admin/webhooks.html", session, status, hooks=webhooks.listing(), events=EVENTS,
                 created=created, problem=problem, values=data if problem else {})


@page_route("/admin/webhooks/{hook_id}")
def webhook_page(session, form, hook_id):
    return _page("admin/webhook.html", session, hook=webhooks.detail(hook_id))


@page_route("/admin/webhooks/{hook_id}/test", ("POST",))
def test_webhook(session, form, hook_id):
    def done(hook):
        last = hook["deliveries"][0]
        if last["status"] == "delivered":
            return f"Ping delivered ({last['last_code']})."
        return f"Ping not delivered ({last['last_error'] or last['last_code']}); it will be retried.", "error"
    return _act(form, f"/admin/webhooks/{hook_id}", lambda: webhooks.ping(session.actor, hook_id), done)


@page_route("/admin/webhooks/{hook_id}/delete", ("POST",))
def delete_webhook(session, form, hook_id):
    form = dict(form, back="/admin/webhooks")
    return _act(form, "/admin/webhooks", lambda: webhooks.remove(session.actor, hook_id), lambda _: "Webhook deleted.")
