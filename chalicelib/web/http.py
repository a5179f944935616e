"""Request parsing and the one place where errors become HTTP responses."""
from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote

from chalice import Response

from chalicelib.domain import languages
from chalicelib.domain.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    Malformed,
    NotFound,
    RateLimited,
    Unauthenticated,
    Unavailable,
    WodError,
    WrongHost,
    WrongMediaType,
)
from chalicelib.domain.text import N_
from chalicelib.observability import logger

if TYPE_CHECKING:
    from chalicelib.services.context import Context

# Errors carry no status code: this table is where they become HTTP.
STATUS: dict[type[WodError], int] = {InvalidInput: 422, Malformed: 400, NotFound: 404, Conflict: 409,
                                     Unauthenticated: 401, Forbidden: 403, WrongMediaType: 415, WrongHost: 421,
                                     Unavailable: 503, RateLimited: 429}
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="wod-admin"'}

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # our own forms then name their origin; no other site learns a URL
    "X-Frame-Options": "DENY",
}
PAGE_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; script-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
INTERNAL = N_("Something went wrong on our side; please try again.")
# A page in the participant's language varies with both: a cache must not give it to another.
VARY = "Accept-Language, Cookie"
# The request being answered: its language and its path (the language switch comes back to it).
_REQUEST: ContextVar[tuple[str, str]] = ContextVar("request", default=(languages.DEFAULT, "/"))


def ctx() -> Context:
    """This process's :class:`~chalicelib.services.context.Context`, for the services a handler calls."""
    from chalicelib.services import bootstrap

    return bootstrap.for_process()


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        body=json.dumps(body),
        status_code=status,
        headers={"Content-Type": "application/json", "Cache-Control": "no-store", **SECURITY_HEADERS,
                 **(headers or {})},
    )


def html_response(body: str, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        body=body,
        status_code=status,
        headers={
            "Content-Type": "text/html; charset=utf-8",
            "Content-Security-Policy": PAGE_CSP,
            "Cache-Control": "no-store",
            **SECURITY_HEADERS,
            **(headers or {}),
        },
    )


def etag_of(*shown: Any) -> str:
    """A weak validator of what a response shows (its data, not its bytes)."""
    digest = hashlib.sha256(json.dumps(shown, sort_keys=True, default=str).encode()).hexdigest()[:24]
    return f'W/"{digest}"'


def not_modified(headers: Any, etag: str) -> Response | None:
    """``304`` when the client already has ``etag`` (``If-None-Match``); None otherwise."""
    asked = {tag.strip() for tag in ((headers or {}).get("if-none-match") or "").split(",")}
    if etag in asked:
        return Response(body="", status_code=304, headers={"ETag": etag, "Cache-Control": "no-cache, private"})
    return None


def status_of(exc: WodError) -> int:
    for kind in type(exc).__mro__:
        if kind in STATUS:  # the nearest kind the table names
            return STATUS[kind]
    return 500


def error_body(exc: WodError) -> dict[str, Any]:
    body: dict[str, Any] = {"error": exc.code, "message": exc.message}
    if isinstance(exc, InvalidInput):
        body["fields"] = exc.fields
    return body


def cookie(headers: Any, name: str) -> str | None:
    """The first value of a cookie the request carries, if any."""
    for part in ((headers or {}).get("cookie") or "").split(";")[:50]:
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            return value.strip().strip('"')
    return None


def path_of(request: Any) -> str:
    """The path a request asked for, as the app's routes name it (its route with its parameters)."""
    context = getattr(request, "context", None) or {}
    params = getattr(request, "uri_params", None) or {}
    route = str(context.get("resourcePath") or "/")
    return re.sub(r"\{(\w+)\+?\}", lambda m: quote(str(params.get(m.group(1), "")), safe="", errors="replace"), route)


@contextmanager
def answering(request: Any) -> Iterator[str]:
    """While a request is answered: its language (the language switch's cookie, else
    ``Accept-Language``), which :func:`language` gives and every page and error page is in."""
    headers = getattr(request, "headers", None) or {}
    language = languages.chosen(cookie(headers, languages.COOKIE), headers.get("accept-language"))
    token = _REQUEST.set((language, path_of(request)))
    try:
        yield language
    finally:
        _REQUEST.reset(token)


def language() -> str:
    """The language of the request being answered."""
    return _REQUEST.get()[0]


def page(name: str, code: int = 200, headers: dict[str, str] | None = None, **context: Any) -> Response:
    """A participant page in the request's language (status ``code``), its language switch coming
    back to this path (or to ``here``, a page shown by a POST whose path shows nothing)."""
    from chalicelib.adapters import render
    spoken, path = _REQUEST.get()
    here = context.pop("here", path)
    body = render.page(name, language=spoken, here=here, **context)
    return html_response(body, code, {"Content-Language": spoken, "Vary": VARY, **(headers or {})})


def error_page(status: int, message: str) -> Response:
    return page("error.html", status, status=status, message=message)


def _errors(as_json: bool) -> Callable[[Callable[..., Response]], Callable[..., Response]]:
    """Every error a handler lets out becomes a response here: a :class:`WodError` its status and
    message, anything else a logged 500 that says nothing of the cause."""
    def decorate(handler: Callable[..., Response]) -> Callable[..., Response]:
        @functools.wraps(handler)
        def wrapper(*args: Any, **kwargs: Any) -> Response:
            try:
                return handler(*args, **kwargs)
            except WodError as exc:
                status = status_of(exc)
                headers = CHALLENGE if status == 401 else None
                if isinstance(exc, RateLimited):
                    headers = {"Retry-After": str(exc.retry_after)}
                if as_json:
                    return json_response(error_body(exc), status, headers)
                response = error_page(status, exc.message)
                response.headers.update(headers or {})
                return response
            except Exception:
                logger.exception("unhandled error")
                return json_response({"error": "internal", "message": INTERNAL}, 500) if as_json \
                    else error_page(500, INTERNAL)

        return wrapper
    return decorate


json_errors = _errors(as_json=True)
html_errors = _errors(as_json=False)


# What a client sends the platform is small (a registration, an admin edit, a callback): anything
# larger is refused before it is decoded or parsed, and so is JSON nested deeper than the parser goes.
MAX_BODY_BYTES = 64 * 1024


def _within_limit(raw: bytes) -> None:
    if len(raw) > MAX_BODY_BYTES:
        raise Malformed({"body": f"At most {MAX_BODY_BYTES // 1024} KB."}, "The request body is too large.")


def load_json(raw: bytes) -> Any:
    """A client's JSON; :class:`Malformed` (400) for a body too large or nested too deeply,
    :class:`InvalidInput` (422) for one that is not JSON."""
    _within_limit(raw)
    try:
        return json.loads(raw.decode("utf-8"))
    except RecursionError as exc:
        raise Malformed({"body": "Nested too deeply."}, "The request body is not JSON we take.") from exc
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidInput({"body": f"Not valid JSON: {exc}"}, "The request body is not valid JSON.") from exc


def parse_json(raw: bytes | None) -> Any:
    if not raw:
        raise InvalidInput({"body": "The request body is empty."}, "Send the registration as a JSON object.")
    return load_json(raw)


def client_address(request: Any) -> str | None:
    """The caller's address as API Gateway saw it (``requestContext.identity.sourceIp``)."""
    identity = (getattr(request, "context", None) or {}).get("identity") or {}
    address = identity.get("sourceIp")
    return address if isinstance(address, str) and address else None


def parse_form(raw: bytes | None) -> dict[str, str]:
    """First value of each field of an urlencoded form (:class:`Malformed` when too large)."""
    _within_limit(raw or b"")
    try:
        pairs = parse_qs((raw or b"").decode("utf-8", errors="replace"), keep_blank_values=True, max_num_fields=50)
    except ValueError as exc:  # more fields than any of our forms has
        raise Malformed({"body": str(exc)}, "The form is not one of ours.") from exc
    return {key: values[0] for key, values in pairs.items()}
