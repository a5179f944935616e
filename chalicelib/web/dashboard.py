"""The organiser's server-rendered dashboard (``/admin/...``) on top of the same operations as the
admin API (:mod:`chalicelib.services.organiser`). Every page but the sign-in form needs a
signed-in session, and every form a CSRF token (:mod:`chalicelib.web.auth`). Forms post, then
redirect (303) back with a signed one-line result (``flash``).
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from chalice import Blueprint, Response

from chalicelib.domain import charts, reports
from chalicelib.domain import organiser as rules
from chalicelib.domain.errors import InvalidInput, WodError
from chalicelib.domain.webhooks import EVENTS
from chalicelib.observability import logger
from chalicelib.web import auth
from chalicelib.web.http import ctx, error_page, html_errors, html_response, json_response, parse_form

dashboard = Blueprint(__name__)
FORM = ["application/x-www-form-urlencoded"]


def _query() -> dict[str, str]:
    return dict(dashboard.current_request.query_params or {})


def _flash() -> dict[str, str] | None:
    sealed = _query().get("flash")
    return rules.unseal(auth.key("flash"), sealed) if sealed else None


def _page(template: str, session, status: int = 200, **context) -> Response:
    from chalicelib.adapters import render
    request = dashboard.current_request
    body = render.page(template, session=session, flash=_flash(), here=auth.here(request), **context)
    return html_response(body, status)


def _login_page(status: int, message: str | None = None, next_path: str = "/admin", name: str = "",
                clear: bool = False, invalid: str | None = None) -> Response:
    """The sign-in form; ``invalid`` names the field (``name``, ``token``) the message is about."""
    from chalicelib.adapters import render
    body = render.page("admin/login.html", message=message, next=rules.safe_next(next_path), actor_name=name,
                       invalid=invalid)
    return html_response(body, status, {"Set-Cookie": auth.session_cookie(None)} if clear else None)


def page_route(path: str, methods: tuple[str, ...] = ("GET",)):
    """A dashboard route: ``handler(session, form, **url_params)`` for a signed-in organiser; a
    POST must carry the session's CSRF token. Anyone else gets the sign-in form (401) or 403."""
    def register(handler: Callable[..., Response]):
        @functools.wraps(handler)
        def guarded(**params):
            request = dashboard.current_request
            session = auth.session_of(request)
            if session is None:
                stale = bool(auth.cookie_value(request))
                return _login_page(401, "Your session has ended; sign in again." if stale else None,
                                   auth.here(request) if request.method == "GET" else "/admin", clear=stale)
            if request.method == "POST":
                form = parse_form(request.raw_body)
                if not rules.csrf_ok(auth.key("session"), session.token, form.get("csrf")):
                    return error_page(403, "This form is out of date or did not come from the dashboard: "
                                           "reload the page and try again.")
            else:
                form = _query()
            return handler(session, form, **params)

        options: dict[str, Any] = {"methods": list(methods)}
        if "POST" in methods:
            options["content_types"] = FORM
        dashboard.route(path, **options)(html_errors(guarded))
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
    message, kind = said if isinstance(said, tuple) else (said, "ok")
    return _back(form, message, kind, default)


@dashboard.route("/admin/login", methods=["GET"])
@html_errors
def login_page():
    return _login_page(200, next_path=_query().get("next", "/admin"))


@dashboard.route("/admin/login", methods=["POST"], content_types=FORM)
@html_errors
def login():
    from chalicelib.services import audit
    form = parse_form(dashboard.current_request.raw_body)
    next_path = rules.safe_next(form.get("next"))
    try:
        actor = rules.validate_actor(form.get("name"))
    except InvalidInput as exc:
        return _login_page(422, exc.fields["name"], next_path, form.get("name", "")[:64], invalid="name")
    if not auth.check_token(form.get("token", ""), actor, dashboard.current_request, "dashboard"):
        logger.warning("dashboard sign-in refused", extra={"actor": actor})
        return _login_page(403, "That is not the admin token.", next_path, actor, invalid="token")
    session = auth.start_session(actor)
    audit.record(ctx(), actor, "sign_in", "dashboard", "done", {})
    return Response(body="", status_code=303, headers={"Location": next_path,
                                                       "Set-Cookie": auth.session_cookie(session)})


@page_route("/admin/logout", ("POST",))
def logout(session, form):
    from chalicelib.services import audit
    auth.end_session(session)
    audit.record(ctx(), session.actor, "sign_out", "dashboard", "done", {})
    return Response(body="", status_code=303, headers={"Location": "/admin/login",
                                                       "Set-Cookie": auth.session_cookie(None)})


@page_route("/admin")
def overview(session, form):
    from chalicelib.services import organiser as operations
    stats = operations.stats(ctx())
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
    from chalicelib.services import organiser as operations
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
    return _act(form, "/admin", lambda: operations.update_workshop(ctx(), session.actor, workshop_id, data), done)


@page_route("/admin/registrations")
def registrations_page(session, form):
    from chalicelib.services import organiser as operations
    params = {k: form[k] for k in ("q", "status", "workshop") if form.get(k)}
    try:
        result, problem, status = operations.search(ctx(), params), None, 200
    except InvalidInput as exc:
        result, problem, status = {"total": 0, "registrations": []}, " ".join(exc.fields.values()), 422
    csv_url = "/admin/registrations.csv" + ("?" + urlencode(params) if params else "")
    return _page("admin/registrations.html", session, status, result=result, problem=problem, params=params,
                 statuses=reports.STATUSES, workshops=operations.workshops(ctx()), csv_url=csv_url)


@page_route("/admin/registrations.csv")
def registrations_csv(session, form):
    """The search as a CSV download, as the API's (the session cookie goes to ``/admin`` only)."""
    from chalicelib.services import organiser as operations
    params = {k: form[k] for k in ("q", "status", "workshop") if form.get(k)}
    return Response(body=operations.export_csv(ctx(), session.actor, params),
                    headers={"Content-Type": "text/csv; charset=utf-8", "Cache-Control": "no-store",
                             "Content-Disposition": 'attachment; filename="registrations.csv"',
                             "X-Content-Type-Options": "nosniff"})


# By student, not by email: the message travels in the redirect's URL (signed, but readable).
DONE = {"resend-credentials": "A new password is on its way to {who}; the notebooks are kept.",
        "extend": "{who}'s workshop now ends at {ends}.", "reset": "Fresh notebooks and a new password for {who}.",
        "end": "{who}'s workshop is ending; the cleanup is ordered."}


@page_route("/admin/registrations/{registration_id}/{action}", ("POST",))
def registration_action(session, form, registration_id, action):
    from chalicelib.services import organiser as operations
    def done(reg):
        ends = (reg["ends_at"] or "")[11:16] + " UTC"
        return DONE[action].format(who=reg.get("student") or f"registration {reg['id']}", ends=ends)
    return _act(form, "/admin/registrations",
                lambda: operations.perform(ctx(), session.actor, action, registration_id,
                                           {"minutes": form.get("minutes")}),
                done)


PURGED = {"purging": "its registration failed with an apology and the environment is being torn down",
          "cleaning": "it is already being cleaned", "freed": "its seat is back and its environment is torn down",
          "free": "it was already free"}


@page_route("/admin/students/purge", ("POST",))
def purge_student(session, form):
    from chalicelib.services import organiser as operations
    student = form.get("student", "").strip()
    return _act(form, "/admin/registrations", lambda: operations.purge(ctx(), session.actor, student),
                lambda r: f"Purged {r['student']}: {PURGED[r['result']]}.")


@page_route("/admin/audit")
def audit_page(session, form):
    from chalicelib.services import audit
    entries = audit.entries(ctx(), "100", form.get("before") or None)
    return _page("admin/audit.html", session, entries=entries, older=entries[-1]["id"] if len(entries) == 100 else None)


@page_route("/admin/webhooks")
def webhooks_page(session, form):
    from chalicelib.services import webhooks
    return _page("admin/webhooks.html", session, hooks=webhooks.listing(ctx()), events=EVENTS,
                 created=None, problem=None, values={})


@page_route("/admin/webhooks", ("POST",))
def create_webhook(session, form):
    from chalicelib.services import webhooks
    data = {"url": form.get("url", ""), "description": form.get("description", ""),
            "events": [name for name in EVENTS if form.get(f"event_{name}")]}
    try:
        created, problem, status = webhooks.create(ctx(), session.actor, data), None, 201
    except InvalidInput as exc:
        created, problem, status = None, " ".join(exc.fields.values()), 422
    # rendered, not redirected: the secret is shown this once and must not travel in a URL
    return _page("admin/webhooks.html", session, status, hooks=webhooks.listing(ctx()), events=EVENTS,
                 created=created, problem=problem, values=data if problem else {})


@page_route("/admin/webhooks/{hook_id}")
def webhook_page(session, form, hook_id):
    from chalicelib.services import webhooks
    return _page("admin/webhook.html", session, hook=webhooks.detail(ctx(), hook_id))


@page_route("/admin/webhooks/{hook_id}/test", ("POST",))
def test_webhook(session, form, hook_id):
    from chalicelib.services import webhooks
    def done(hook):
        last = hook["deliveries"][0]
        if last["status"] == "delivered":
            return f"Ping delivered ({last['last_code']})."
        return f"Ping not delivered ({last['last_error'] or last['last_code']}); it will be retried.", "error"
    return _act(form, f"/admin/webhooks/{hook_id}", lambda: webhooks.ping(ctx(), session.actor, hook_id), done)


@page_route("/admin/webhooks/{hook_id}/delete", ("POST",))
def delete_webhook(session, form, hook_id):
    from chalicelib.services import webhooks
    form = dict(form, back="/admin/webhooks")
    return _act(form, "/admin/webhooks", lambda: webhooks.remove(ctx(), session.actor, hook_id),
                lambda _: "Webhook deleted.")


def _report_charts(report: dict[str, Any]) -> dict[str, Any]:
    """The report's charts, drawn here as SVG shapes (no script, no CDN)."""
    days = [(datetime.fromisoformat(d["day"]), d["count"]) for d in report["per_day"]][-60:]
    progress = [(p["label"], p["percent"] or 0.0, p["count"]) for p in report["progress"]]
    return {"per_day": charts.daily_histogram(days), "progress": charts.percent_bars(progress),
            "ratings": charts.percent_bars([(f"{k} ★", 100 * n / report["survey"]["answers"], n)
                                            for k, n in report["survey"]["ratings"].items()]
                                           if report["survey"]["answers"] else [])}


@page_route("/admin/reports/{workshop_id}")
def report_page(session, form, workshop_id):
    """The event report (``?from=YYYY-MM-DD&to=YYYY-MM-DD``), with links to its CSV and JSON."""
    from chalicelib.services import event_report
    params = {k: form[k] for k in ("from", "to") if form.get(k)}
    try:
        report, problem, status = event_report.report(ctx(), workshop_id, params), None, 200
    except InvalidInput as exc:
        report, problem, status = event_report.report(ctx(), workshop_id), " ".join(exc.fields.values()), 422
        params = {}
    query = "?" + urlencode(params) if params else ""
    return _page("admin/report.html", session, status, report=report, problem=problem, params=params,
                 charts=_report_charts(report), csv_url=f"/admin/reports/{workshop_id}/csv{query}",
                 json_url=f"/admin/reports/{workshop_id}/json{query}")


@page_route("/admin/reports/{workshop_id}/csv")
def report_csv(session, form, workshop_id):
    from chalicelib.domain import event_report as figures
    from chalicelib.services import event_report
    report = event_report.report(ctx(), workshop_id, {k: form[k] for k in ("from", "to") if form.get(k)})
    return Response(body=figures.to_csv(report),
                    headers={"Content-Type": "text/csv; charset=utf-8", "Cache-Control": "no-store",
                             "Content-Disposition": f'attachment; filename="report-{report["workshop"]["id"]}.csv"',
                             "X-Content-Type-Options": "nosniff"})


@page_route("/admin/reports/{workshop_id}/json")
def report_json(session, form, workshop_id):
    from chalicelib.services import event_report
    return json_response(event_report.report(ctx(), workshop_id, {k: form[k] for k in ("from", "to") if form.get(k)}))


@page_route("/admin/live/{workshop_id}")
def live_room(session, form, workshop_id):
    """One row per seat, hands and the stuck first; ``live.js`` refreshes the rows from ``/data``."""
    from chalicelib.services import live
    return _page("admin/live.html", session, room=live.room(ctx(), workshop_id))


@page_route("/admin/live/{workshop_id}/data")
def live_room_data(session, form, workshop_id):
    from chalicelib.services import live
    return json_response(live.room(ctx(), workshop_id))


@page_route("/admin/live/{workshop_id}/extend", ("POST",))
def live_extend_all(session, form, workshop_id):
    from chalicelib.services import organiser as operations
    def done(result):
        said = f"{result['extended']} running workshop{'s' if result['extended'] != 1 else ''} extended"
        if result["refused"]:
            said += f"; {result['refused']} ended or changed meanwhile"
        if result["left"]:
            return (f"{said}; {result['left']} not reached in time: extend those one by one from their rows "
                    "(Extend all again would extend every running workshop once more).", "error")
        return said + "."
    seen = form.get("round")
    return _act(form, f"/admin/live/{workshop_id}",
                lambda: operations.extend_all(ctx(), session.actor, workshop_id, form.get("minutes"),
                                              seen if isinstance(seen, str) else ""), done)


@page_route("/admin/live/{workshop_id}/message", ("POST",))
def live_message(session, form, workshop_id):
    from chalicelib.services import live
    return _act(form, f"/admin/live/{workshop_id}",
                lambda: live.set_message(ctx(), session.actor, workshop_id, form.get("message", "")),
                lambda text: "Message shown to every participant." if text else "Message taken down.")


@page_route("/admin/live/{workshop_id}/hands/{registration_id}", ("POST",))
def live_answer_hand(session, form, workshop_id, registration_id):
    from chalicelib.services import live
    return _act(form, f"/admin/live/{workshop_id}",
                lambda: live.answer_hand(ctx(), session.actor, workshop_id, registration_id),
                lambda student: f"{student}'s hand is answered.")
