"""The stack's own services on 127.0.0.1 (the embedded AWS, the task workers, the inbox) serve the
stack's processes and a person at the machine, never a web page.

Any page the machine's browser opens may send requests to 127.0.0.1: moto's server answers every
origin's CORS preflight (the page reads and writes the embedded AWS), the workers run whatever task
function a request names (a no-cors POST needs no preflight), and a page on a domain its owner
re-points at 127.0.0.1 (DNS rebinding) is same-origin with the inbox. So before the service sees it,
a request is refused when

* its ``Host`` names neither an IP address, ``localhost``, nor the host the service was given
  (421): a re-pointed domain (the stack's clients name the address they connect to);
* a page sent it (403): it has an ``Origin``, or the browser marks it ``Sec-Fetch-Site`` cross-site
  or same-site (another port of this machine is the same site), unless it is a person's top-level
  GET navigation (a link to the inbox), whose answer the page that linked cannot read.
"""
from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

Header = Callable[[str], "str | None"]


def host_name(value: str) -> str:
    """``Host``'s name, lower case, without port, brackets or a trailing dot."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:].partition("]")[0]
    return value.rpartition(":")[0].rstrip(".") if value.count(":") == 1 else value.rstrip(".")


def _names_this_machine(name: str, own_host: str) -> bool:
    if name in ("", "localhost", own_host.lower()):
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def refusal(method: str, header: Header, own_host: str = "127.0.0.1") -> tuple[int, str] | None:
    """(status, reason) for a request that is not the stack's or a person's; None to serve it."""
    if not _names_this_machine(host_name(header("host") or ""), own_host):
        return 421, "this service answers its own address only"
    site = (header("sec-fetch-site") or "").strip().lower()
    navigation = method in ("GET", "HEAD") and (header("sec-fetch-mode") or "").lower() == "navigate" \
        and (header("sec-fetch-dest") or "document").lower() == "document"
    if header("origin") is not None or (site in ("cross-site", "same-site") and not navigation):
        return 403, "this service is not for web pages"
    return None


def guarded(app: Callable[..., Iterable[bytes]], own_host: str = "127.0.0.1") -> Callable[..., Iterable[bytes]]:
    """A WSGI application that answers :func:`refusal`'s refusals itself."""
    def screened(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        refused = refusal(environ.get("REQUEST_METHOD", ""),
                          lambda name: environ.get("HTTP_" + name.upper().replace("-", "_")), own_host)
        if refused is None:
            return app(environ, start_response)
        status, reason = refused
        body = json.dumps({"message": reason}).encode()
        start_response(f"{status} {HTTPStatus(status).phrase}",
                       [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    return screened
