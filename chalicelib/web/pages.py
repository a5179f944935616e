"""Server-rendered participant pages; they work without JavaScript."""
from __future__ import annotations

import functools
import hashlib
import re
from pathlib import Path
from urllib.parse import quote

from chalice import Blueprint, Response

from chalicelib.domain import languages
from chalicelib.domain.errors import Conflict, HoldExpired, InvalidInput
from chalicelib.domain.text import N_
from chalicelib.web.http import (
    VARY,
    client_address,
    ctx,
    error_page,
    etag_of,
    html_errors,
    language,
    not_modified,
    page,
    parse_form,
)

pages = Blueprint(__name__)
STATIC = Path(__file__).parent.parent / "templates" / "static"
FORM_FIELDS = ("email", "first_name", "last_name", "company")
# How soon the status page looks again (s), while something is to come; slower after each look
# that found nothing new (x BACKOFF, at most MAX_REFRESH). chalicelib/templates/static/status.js too.
REFRESH = {"pending": 5, "provisioning": 5, "unconfirmed": 15, "waitlisted": 30}
BACKOFF, MAX_REFRESH = 1.5, 60


@pages.route("/", methods=["GET"])
@html_errors
def catalog_page():
    from chalicelib.services import registrations
    shown = registrations.catalog(ctx(), language())
    etag = etag_of(shown, language(), _page_version())
    return _varied(not_modified(pages.current_request.headers, etag)) or page(
        "catalog.html", headers={"ETag": etag, "Cache-Control": "no-cache"}, workshops=shown)


def _varied(response: Response | None) -> Response | None:
    """A ``304`` of a page that varies with the language says so too."""
    if response is not None:
        response.headers["Vary"] = VARY
    return response


def _form_page(workshop, values=None, errors=None, message=None, status=200):
    return page("workshop.html", status, workshop=workshop, values=values or {}, errors=errors or {},
                message=message)


@pages.route("/workshops/{workshop_id}", methods=["GET"])
@html_errors
def workshop_page(workshop_id):
    from chalicelib.services import registrations
    return _form_page(registrations.workshop(ctx(), workshop_id, language()))


@pages.route("/workshops/{workshop_id}", methods=["POST"], content_types=["application/x-www-form-urlencoded"])
@html_errors
def register_form(workshop_id):
    from chalicelib.services import registrations
    form = parse_form(pages.current_request.raw_body)
    workshop = registrations.workshop(ctx(), workshop_id, language())
    values = {name: form.get(name, "") for name in FORM_FIELDS}
    try:
        registrations.register(ctx(), form, workshop_id, client=client_address(pages.current_request),
                               language=language())
    except InvalidInput as exc:
        return _form_page(workshop, values, exc.fields, exc.message, 422)
    # the same page whether the address was new, retried or already registered
    return page("received.html", workshop=workshop, message=registrations.RECEIVED["message"])


def _confirm_page(token: str, status: int = 200) -> Response:
    from chalicelib.services import links, participant
    shown = participant.confirmation(ctx(), links.registration_id(ctx(), token), language())
    return page("confirm.html", status, **shown, action=f"/confirm/{token}", status_url=shown["hold"]["status_url"])


@pages.route("/confirm/{token}", methods=["GET"])
@html_errors
def confirm_page(token):
    """The confirmation email's link: shows the hold and a button; changes nothing."""
    return _confirm_page(token)


@pages.route("/confirm/{token}", methods=["POST"], content_types=["application/x-www-form-urlencoded"])
@html_errors
def confirm_form(token):
    from chalicelib.services import links, participant
    try:
        confirmed = participant.confirm(ctx(), links.registration_id(ctx(), token))
    except HoldExpired:
        return _confirm_page(token, 409)
    return Response(body="", status_code=303, headers={"Location": confirmed["status_url"]})


@pages.route("/registrations/{token}", methods=["GET"])
@html_errors
def status_page(token):
    """The participant's page. While something is to come it looks again by itself: its script every
    ``REFRESH`` seconds with ``If-None-Match`` (a ``304`` costs no rendering), waiting longer after
    each look that changed nothing, up to ``MAX_REFRESH``; without JavaScript, a ``<meta refresh>``
    that backs off the same way (``looks``, counted while the page stays as ``seen``)."""
    from chalicelib.services import links, participant
    reg = participant.status(ctx(), links.registration_id(ctx(), token), language())
    query = pages.current_request.query_params or {}
    done = DONE.get(query.get("done", ""))
    etag = etag_of(reg, done, language(), _page_version())
    unchanged = _varied(not_modified(pages.current_request.headers, etag))
    if unchanged:
        return unchanged
    base = REFRESH.get(reg["status"])
    looks = _looks(query) if query.get("seen") == etag else 0
    wait = min(MAX_REFRESH, round(base * BACKOFF ** looks)) if base else None
    return page("status.html", headers={"ETag": etag, "Cache-Control": "no-cache, private"}, reg=reg, token=token,
                refresh=wait, refresh_base=base, refresh_url=f"?looks={looks + 1}&seen={quote(etag)}", etag=etag,
                done=done)


def _looks(query: dict) -> int:
    raw = str(query.get("looks", ""))
    return min(int(raw), 20) if raw.isascii() and raw.isdigit() and len(raw) < 4 else 0  # "²" is a digit too


@functools.cache
def _page_version() -> str:
    """What the status page looks like this release (its templates and their translations): a new
    page shows with the same data too."""
    folder = Path(__file__).parent.parent
    names = ("templates/status.html", "templates/catalog.html", "templates/base.html",
             *(f"locale/{code}/LC_MESSAGES/messages.po" for code in languages.SHIPPED if code != languages.DEFAULT))
    return hashlib.sha256(b"".join((folder / name).read_bytes() for name in names)).hexdigest()


DONE = {"extend": N_("Your workshop was extended."),
        "reset": N_("Fresh notebooks are on their way, with a new password by email."),
        "end": N_("Your workshop is ending; the thank-you email follows."), "leave": N_("You left the waitlist."),
        "hand": N_("Your hand is up: a facilitator will come to you.")}


@pages.route("/registrations/{token}/{action}", methods=["POST"],
             content_types=["application/x-www-form-urlencoded"])
@html_errors
def registration_action(token, action):
    from chalicelib.services import links, participant
    registration_id = links.registration_id(ctx(), token)
    try:
        participant.perform(ctx(), action, registration_id)
    except Conflict as exc:
        reg = participant.status(ctx(), registration_id, language())
        return page("status.html", 409, here=f"/registrations/{token}", reg=reg, token=token, refresh=False,
                    message=exc.message)
    return Response(body="", status_code=303, headers={"Location": f"/registrations/{token}?done={action}"})


def _survey_page(token: str, values: dict | None = None, errors: dict | None = None, message: str | None = None,
                 saved: bool = False, autosend: bool = False, status: int = 200) -> Response:
    from chalicelib.domain import survey as surveys
    from chalicelib.services import links, participant
    shown = participant.survey(ctx(), links.registration_id(ctx(), token), language())
    return page(
        "survey.html", status, survey=shown, token=token, values=values if values is not None else shown["answer"],
        errors=errors or {}, message=message, saved=saved, autosend=autosend and shown["open"],
        pace=list(surveys.PACES.items()), recommend=list(surveys.RECOMMEND.items()),
        comment_max=surveys.COMMENT_MAX, extra_max=surveys.EXTRA_MAX)


@pages.route("/survey/{token}", methods=["GET"])
@html_errors
def survey_page(token):
    """The survey; ``?rating=N`` (the thank-you mail's buttons) chooses the rating, which the page's
    script sends at once. A GET never records anything."""
    from chalicelib.domain import survey as surveys
    from chalicelib.services import links, participant
    query = pages.current_request.query_params or {}
    rating = surveys.rating_of(query.get("rating"))
    if rating is None:
        return _survey_page(token, saved=query.get("saved") == "1")  # the page says so only if it was
    shown = participant.survey(ctx(), links.registration_id(ctx(), token), language())
    # sent at once only as the first answer: a later click (or Back) shows the rating, Save changes it
    return _survey_page(token, values={**shown["answer"], "rating": rating}, autosend=not shown["answered_at"])


@pages.route("/survey/{token}", methods=["POST"], content_types=["application/x-www-form-urlencoded"])
@html_errors
def survey_form(token):
    from chalicelib.services import links, participant
    form = parse_form(pages.current_request.raw_body)
    try:
        participant.answer_survey(ctx(), links.registration_id(ctx(), token), form)
    except InvalidInput as exc:
        values = {**form, "extra": {k[2:]: v for k, v in form.items() if k.startswith("q_")}}
        return _survey_page(token, values, exc.fields, exc.message, status=422)
    except Conflict as exc:
        return _survey_page(token, message=exc.message, status=409)
    return Response(body="", status_code=303, headers={"Location": f"/survey/{token}?saved=1"})


LOCAL_PATH = re.compile(r"/(?![/\\])[A-Za-z0-9._~%!$&'()*+,;=:@/-]{0,500}")
LANGUAGE_COOKIE_SECONDS = 365 * 86400


@pages.route("/language", methods=["POST"], content_types=["application/x-www-form-urlencoded"])
@html_errors
def choose_language():
    """The language switch of every page: the choice is kept in a cookie (this site's every path,
    sent on links from other sites too: ``SameSite=Lax``; no script reads it), then the page it was
    pressed on is shown again (``next``, a path of this site only)."""
    form = parse_form(pages.current_request.raw_body)
    chosen = languages.shipped(form.get("language"))
    back = form.get("next", "/")
    headers = {"Location": back if LOCAL_PATH.fullmatch(back) else "/", "Cache-Control": "no-store"}
    if chosen:
        secure = "; Secure" if ctx().settings.public_url.startswith("https://") else ""
        headers["Set-Cookie"] = (f"{languages.COOKIE}={chosen}; Path=/; SameSite=Lax; HttpOnly; "
                                 f"Max-Age={LANGUAGE_COOKIE_SECONDS}{secure}")
    return Response(body="", status_code=303, headers=headers)


BADGE_TYPES = {".svg": "image/svg+xml", ".png": "image/png"}


@pages.route("/badges/{workshop_id}", methods=["GET"])
@html_errors
def badge(workshop_id):
    """The workshop's badge, for the thank-you email (from the content folder)."""
    from chalicelib.services import registrations
    found = registrations.workshop_badge(ctx(), workshop_id)
    if found is None:
        return error_page(404, N_("This workshop has no badge."))
    data, suffix = found
    return Response(body=data.decode() if suffix == ".svg" else data,
                    headers={"Content-Type": BADGE_TYPES[suffix], "Cache-Control": "public, max-age=86400",
                             "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
                             "X-Content-Type-Options": "nosniff"})


STATIC_TYPES = {"style.css": "text/css; charset=utf-8", "status.js": "text/javascript; charset=utf-8",
                "admin.css": "text/css; charset=utf-8", "live.js": "text/javascript; charset=utf-8",
                "page.js": "text/javascript; charset=utf-8"}


@pages.route("/static/{name}", methods=["GET"])
def static_file(name):
    if name not in STATIC_TYPES:
        return error_page(404, N_("No such file."))
    return Response(body=(STATIC / name).read_text(),
                    headers={"Content-Type": STATIC_TYPES[name], "Cache-Control": "public, max-age=3600",
                             "X-Content-Type-Options": "nosniff"})
