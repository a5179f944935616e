"""POST a webhook delivery with the standard library: a short timeout, no redirects followed
(a receiver that moved must be edited, not chased), the answer's status code only.

Outside local mode a delivery goes to public addresses only (``public_only``): the URL must be
https, every address its host resolves to must be public, and the connection is made to one of
exactly those checked addresses (so a DNS answer that changes between the check and the
connection cannot point it inside), without any proxy.
"""
from __future__ import annotations

import http.client
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from chalicelib.domain import webhooks as rules


@dataclass(frozen=True)
class Attempt:
    code: int | None  # the receiver's HTTP status, None when it did not answer
    error: str | None

    @property
    def delivered(self) -> bool:
        return self.code is not None and 200 <= self.code < 300


class BlockedDestination(OSError):
    """The host resolves to an address webhooks must not reach."""


def lookup(host: str, port: int) -> list[tuple[Any, ...]]:
    """``socket.getaddrinfo`` for a TCP connection (one place, so tests can stand in for DNS)."""
    return socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)


def _checked(host: str, port: int) -> list[tuple[Any, ...]]:
    """Every address of ``host``, refused (BlockedDestination) if any of them is not public."""
    try:
        found = lookup(host, port)
    except (OSError, UnicodeError) as exc:
        raise BlockedDestination(f"The host {host} does not resolve ({exc}).") from None
    if not found:
        raise BlockedDestination(f"The host {host} does not resolve.")
    for *_, sockaddr in found:
        problem = rules.address_problem(host, str(sockaddr[0]))
        if problem:
            raise BlockedDestination(problem)
    return found


def destination_problem(url: str) -> str | None:
    """Why ``url`` may not receive webhooks outside local mode (not https, a host that does not
    resolve, or resolves to any non-public address), or None."""
    parts = urlsplit(url)
    if parts.scheme != "https":
        return rules.HTTPS_ONLY
    try:
        _checked(parts.hostname or "", parts.port or 443)
    except ValueError:
        return "Not a valid URL."
    except BlockedDestination as exc:
        return str(exc)
    return None


# http.client's "no timeout given" sentinel; private, so typeshed does not declare it.
_DEFAULT_TIMEOUT: Any = socket._GLOBAL_DEFAULT_TIMEOUT  # type: ignore[attr-defined]


def _public_connection(address: tuple[str, int], timeout: Any = _DEFAULT_TIMEOUT,
                       source_address: Any = None) -> socket.socket:
    """``socket.create_connection`` to a checked address only."""
    host, port = address
    error: OSError | None = None
    for family, kind, proto, _, sockaddr in _checked(host, port):
        sock = socket.socket(family, kind, proto)
        try:
            if timeout is not _DEFAULT_TIMEOUT:
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            error = exc
            sock.close()
    raise error or BlockedDestination(f"The host {host} does not resolve.")


class _PublicHTTPConnection(http.client.HTTPConnection):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._create_connection = _public_connection


class _PublicHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._create_connection = _public_connection


class _PublicHTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req):
        return self.do_open(_PublicHTTPConnection, req)


class _PublicHTTPSHandler(urllib.request.HTTPSHandler):
    def https_open(self, req):
        return self.do_open(_PublicHTTPSConnection, req)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_opener = urllib.request.build_opener(_NoRedirect)
_public_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect, _PublicHTTPHandler,
                                             _PublicHTTPSHandler)


def post(url: str, body: bytes, headers: dict[str, str], timeout: float, public_only: bool = False) -> Attempt:
    """One POST; ``public_only`` (every stage but local) refuses what :func:`destination_problem`
    refuses, checked again here because DNS answers change."""
    if public_only:
        problem = destination_problem(url)
        if problem:
            return Attempt(None, f"Not sent: {problem}"[:300])
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with (_public_opener if public_only else _opener).open(request, timeout=timeout) as response:
            return Attempt(response.status, None)
    except urllib.error.HTTPError as exc:
        return Attempt(exc.code, f"HTTP {exc.code} {exc.reason}")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, BlockedDestination):
            return Attempt(None, f"Not sent: {reason}"[:300])
        return Attempt(None, f"{type(exc).__name__}: {reason}"[:300])
