"""What every request must show before a route runs, so that no page elsewhere can act through a
visitor's browser (registering them, confirming or ending their registration, an organiser's
forms) and no host name but the platform's own reaches it.

* ``Host`` must be the public URL's host (``WOD_PUBLIC_URL``; on API Gateway also the domain the
  request came in on, which API Gateway itself checked): a page on a domain that an attacker
  re-points to the platform's address (DNS rebinding) is refused with 421.
* A state-changing request (POST, PUT, PATCH, DELETE) with an ``Origin`` other than the public
  URL's is refused with 403, and so is one a browser marks ``Sec-Fetch-Site: cross-site``. A
  request with neither is a script or a server (the backend's callbacks), not a page.
* A POST, PUT or PATCH must name its content type: a browser sends a body without one (a
  ``Blob``) to any site without asking first, so its absence is refused with 415 instead of
  being taken for JSON. Its parts after the first must be parameters (``name=value``) and none a
  wildcard: Chalice takes a type naming the route's anywhere among its parts, and a browser sends
  ``text/plain;application/json`` (its type is text) without asking first. A type the route does
  not take is then refused by Chalice (415).
"""
from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from chalice import Response

from chalicelib.domain.errors import Forbidden, WodError, WrongHost, WrongMediaType
from chalicelib.domain.text import N_
from chalicelib.web.http import answering, ctx, error_body, error_page, json_response, status_of

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
DEFAULT_PORTS = {"http": 80, "https": 443}
FROM_ELSEWHERE = N_("This can only be sent from this site's own pages; please open the page again and retry.")


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of a URL, lower case, without a default port; "" for one that is
    not a URL (a port that is no number, a bracket left open), which no origin equals."""
    try:
        parts = urlsplit(url.strip())
        scheme, host, port = parts.scheme.lower(), (parts.hostname or "").lower(), parts.port
    except ValueError:
        return ""
    host = f"[{host}]" if ":" in host else host
    port = port if port not in (None, DEFAULT_PORTS.get(scheme)) else None
    return f"{scheme}://{host}" + (f":{port}" if port else "")


def hosts_of(public_url: str) -> frozenset[str]:
    """The ``Host`` values that name the public URL (with and without its default port)."""
    parts = urlsplit(public_url)
    host = (parts.hostname or "").lower()
    host = f"[{host}]" if ":" in host else host  # an IPv6 address, as a Host names it
    if parts.port is None or parts.port == DEFAULT_PORTS.get(parts.scheme.lower()):
        return frozenset({host, f"{host}:{DEFAULT_PORTS.get(parts.scheme.lower(), 80)}"})
    return frozenset({f"{host}:{parts.port}"})


def check(method: str, headers: Any, public_url: str, gateway_domain: str | None = None) -> None:
    """Raise the error a request earns before any route sees it; nothing when it may go on."""
    host = (headers.get("host") or "").strip().lower()
    allowed = hosts_of(public_url) | ({gateway_domain.lower()} if gateway_domain else set())
    if host and host not in allowed:
        raise WrongHost(N_("This address is not the platform's: open it through its public address."))
    if method not in STATE_CHANGING:
        return
    origin = headers.get("origin")
    if origin is not None and (not origin_of(origin) or origin_of(origin) != origin_of(public_url)):
        raise Forbidden(FROM_ELSEWHERE)
    if (headers.get("sec-fetch-site") or "").strip().lower() == "cross-site":
        raise Forbidden(FROM_ELSEWHERE)
    if method in WITH_BODY and not media_type_ok(headers.get("content-type") or ""):
        raise WrongMediaType(N_("Name the body's type: Content-Type: application/json."))


def media_type_ok(value: str) -> bool:
    """A type (``type/subtype``), then parameters only: what Chalice matches is then the type itself."""
    kind, *parameters = (part.strip() for part in re.split("[,;]", value))
    return kind.count("/") == 1 and "*" not in value and all(not p or "=" in p for p in parameters)


def screen(request: Any, get_response: Callable[[Any], Response]) -> Response:
    """The Chalice HTTP middleware: :func:`check`, then the route, both in the request's language
    (:func:`~chalicelib.web.http.answering`); a refusal answers as the route would (JSON under
    ``/api/``, a page elsewhere)."""
    context = getattr(request, "context", None) or {}
    with answering(request):
        try:
            check(request.method, request.headers, ctx().settings.public_url, context.get("domainName"))
        except WodError as exc:
            if str(context.get("resourcePath") or context.get("path") or "").startswith("/api/"):
                return json_response(error_body(exc), status_of(exc))
            return error_page(status_of(exc), exc.message)
        return get_response(request)
