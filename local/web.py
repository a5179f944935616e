"""The web process (``python -m local web``): API Gateway and the ``api`` Lambda in local mode.

gunicorn (a pre-fork HTTP server: ``WOD_WEB_WORKERS`` processes of ``WOD_WEB_THREADS``
threads, ``WOD_WEB_BACKLOG`` queued connections for bursts) serves :class:`ChaliceWsgi`, a
WSGI adapter over Chalice's local gateway (``chalice.local.LocalGateway``, what ``chalice
local`` runs): each request becomes the API Gateway proxy event and goes through the Chalice
app, its routes and its middleware (``@app.middleware("all")``), exactly as ``chalice local``
or API Gateway would hand it over. Each worker process builds its own Context after the fork.
"""
from __future__ import annotations

import base64
import gc
import importlib
import json
import logging
import os
import pkgutil
import re
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, MutableMapping
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import quote

from chalice import Chalice

log = logging.getLogger("wod.local.web")


def _status_line(code: int) -> str:
    try:
        return f"{code} {HTTPStatus(code).phrase}"
    except ValueError:
        return f"{code} Unknown"


_client = threading.local()
MAX_BODY = 10 * 1024 * 1024  # API Gateway's payload limit
BODY_SECONDS = 10.0  # a body that trickles slower holds a worker thread no longer than this


def _read_body(environ: MutableMapping[str, Any], length: int) -> bytes:
    """The request body, within ``BODY_SECONDS`` in all (a slow sender cannot hold the thread);
    TimeoutError otherwise."""
    stream, sock = environ["wsgi.input"], environ.get("gunicorn.socket")
    deadline = time.monotonic() + BODY_SECONDS
    previous = sock.gettimeout() if sock is not None else None
    chunks: list[bytes] = []
    got = 0
    try:
        while got < length:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            if sock is not None:
                sock.settimeout(left)
            try:
                chunk = stream.read(min(65536, length - got))
            except (TimeoutError, OSError) as exc:
                raise TimeoutError from exc
            if not chunk:
                break  # the client closed early: what came is the body
            chunks.append(chunk)
            got += len(chunk)
    finally:
        if sock is not None:
            sock.settimeout(previous)
    return b"".join(chunks)


def _refuse(start_response: Callable[..., Any], status: str, message: str) -> list[bytes]:
    body = json.dumps({"message": message}).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                            ("Connection", "close")])
    return [body]


class _ClientEvents:
    """Chalice's local event converter, with each request's own client address as API Gateway's
    ``requestContext.identity.sourceIp`` (Chalice's local gateway says 127.0.0.1 for everyone)."""

    def __init__(self, converter: Any):
        self.converter = converter

    def create_lambda_event(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        event = self.converter.create_lambda_event(*args, **kwargs)
        address = getattr(_client, "address", None)
        if address:
            event["requestContext"].setdefault("identity", {})["sourceIp"] = address
        return event

    def __getattr__(self, name: str) -> Any:
        return getattr(self.converter, name)


class ChaliceWsgi:
    """A WSGI application that hands every request to a Chalice app through its local gateway."""

    def __init__(self, app: Chalice, stage: str = "local"):
        from chalice.config import Config
        from chalice.local import CustomLocalChalice, LocalChalice, LocalGateway

        if not isinstance(app, LocalChalice):
            # As `chalice local` does: app.current_request becomes thread-local, so threads of
            # one worker serve requests at once.
            CustomLocalChalice.__bases__ = (LocalChalice, app.__class__)
            app.__class__ = CustomLocalChalice
        self.app = app
        self.gateway = LocalGateway(app, Config.create(chalice_stage=stage, app_name=app.app_name))
        converter: Any = _ClientEvents(self.gateway.event_converter)
        self.gateway.event_converter = converter

    @staticmethod
    def _target(environ: MutableMapping[str, Any]) -> str:
        """The request target as the client sent it (path and query, still percent-encoded)."""
        raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
        if raw and raw.startswith("/"):
            return raw
        path = quote(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")) or "/"
        query = environ.get("QUERY_STRING")
        return f"{path}?{query}" if query else path

    @staticmethod
    def _headers(environ: MutableMapping[str, Any]) -> dict[str, str]:
        headers = {key[5:].replace("_", "-").lower(): value for key, value in environ.items()
                   if key.startswith("HTTP_")}
        for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if environ.get(key):
                headers[key.replace("_", "-").lower()] = environ[key]
        return headers

    def __call__(self, environ: MutableMapping[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        from chalice.local import LocalGatewayException

        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length > MAX_BODY:
            return _refuse(start_response, "413 Content Too Large", f"the body may be at most {MAX_BODY} bytes")
        try:
            body = _read_body(environ, length) if length > 0 else None
        except TimeoutError:
            return _refuse(start_response, "408 Request Timeout", f"the body did not arrive within {BODY_SECONDS:g}s")
        _client.address = environ.get("REMOTE_ADDR")  # the peer of gunicorn's socket, never a header
        try:
            response = self.gateway.handle_request(method=environ["REQUEST_METHOD"], path=self._target(environ),
                                                   headers=self._headers(environ), body=body)
            status = response["statusCode"]
            headers: dict[str, Any] = {**response["headers"], **(response.get("multiValueHeaders") or {})}
            content = response.get("body")
            if response.get("isBase64Encoded") and content is not None:
                content = base64.b64decode(content)
        except LocalGatewayException as error:  # no route (403), authorizer refusals
            status, headers, content = error.CODE, dict(error.headers), error.body
        if content is None:
            content = b""
        elif isinstance(content, str):
            content = content.encode("utf-8")
        pairs = [("Content-Type", "application/json")] if not any(
            name.lower() == "content-type" for name in headers) else []
        for name, value in headers.items():
            if name.lower() == "content-length":
                continue
            for one in value if isinstance(value, list) else [value]:
                pairs.append((name, str(one)))
        pairs.append(("Content-Length", str(len(content))))
        start_response(_status_line(status), pairs)
        return [content] if environ["REQUEST_METHOD"] != "HEAD" else []


# A participant's action token (``<registration id>.<MAC>``, chalicelib/domain/links.py) in a path or
# a Referer: the access log keeps the public registration id and drops the MAC, which opens the
# registration to whoever reads the log.
ACTION_TOKEN = re.compile(r"([A-Za-z0-9_-]{16,64})\.[A-Za-z0-9_-]{32}(?![A-Za-z0-9_-])")


def redact(text: str) -> str:
    return ACTION_TOKEN.sub(r"\1.<token>", text)


def _access_logger() -> type:
    """gunicorn's logger, with every action token of the access log's fields redacted."""
    from gunicorn.glogging import Logger

    class RedactingLogger(Logger):
        def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> Any:
            found = super().atoms(resp, req, environ, request_time)
            return {key: redact(value) if isinstance(value, str) else value for key, value in found.items()}

    return RedactingLogger


def _port_free(host: str, port: int) -> None:
    """Fail as a bind would (``Address already in use``), before gunicorn's own five retries."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))


def warm() -> int:
    """What a worker's first requests would otherwise load while the requests queued behind them
    wait: the services the handlers import when first called, and every page and email template
    compiled in every shipped language (its catalog read). Done once in the master (``preload_app``),
    shared by the workers it forks. Returns the templates compiled per language."""
    import chalicelib.services
    from chalicelib.adapters import render
    from chalicelib.domain.languages import SHIPPED

    for module in pkgutil.iter_modules(chalicelib.services.__path__):
        importlib.import_module(f"chalicelib.services.{module.name}")
    names = render.environment().list_templates(filter_func=lambda name: name.endswith((".html", ".css")))
    for language in SHIPPED:
        env = render.environment(language)
        for name in names:
            env.get_template(name)
    return len(names)


SLOW_COLLECTION_SECONDS = 0.1


def _slow_collections() -> Callable[[str, dict[str, int]], None]:
    """A garbage collector callback that logs a full collection longer than SLOW_COLLECTION_SECONDS
    (every request of the worker waited for it)."""
    started = [0.0]

    def callback(phase: str, info: dict[str, int]) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            started[0] = time.perf_counter()
        elif time.perf_counter() - started[0] > SLOW_COLLECTION_SECONDS:
            log.warning("a full garbage collection held the web worker for %.0f ms (%d objects collected)",
                        (time.perf_counter() - started[0]) * 1000, info.get("collected", 0))
    return callback


def options(config: Any) -> dict[str, Any]:
    """gunicorn's settings for the stack's ``LocalConfig``."""
    from local import part

    def post_fork(server: Any, worker: Any) -> None:
        part.die_with_parent(expect_parent=None)  # the master, not the supervisor
        part.install_context(config)
        # What the worker holds from now on (the app, its templates, the SDK's models and clients:
        # most of its objects) never becomes garbage: out of the collector's sight, a full collection
        # walks only what requests make, in milliseconds rather than the better part of a second.
        gc.freeze()
        gc.callbacks.append(_slow_collections())

    return {
        "bind": [f"{config.host}:{config.app_port}"],
        "workers": config.web_workers,
        "worker_class": "gthread",
        "threads": config.web_threads,
        "backlog": config.web_backlog,
        "timeout": 60,  # a worker silent this long is replaced
        "graceful_timeout": 10,
        "keepalive": 5,
        "preload_app": True,  # app.py is imported once, before the fork
        "post_fork": post_fork,
        "accesslog": "-",  # the part's log (web.log), participants' action tokens redacted
        "access_log_format": '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" pid=%(p)s %(M)sms',
        "logger_class": _access_logger(),
        "errorlog": "-",
        "loglevel": "info",
        "proc_name": "wod-web",
        "control_socket_disable": True,
    }


def main() -> int:
    from gunicorn.app.base import BaseApplication

    from local import part

    config = part.setup("web")
    from local.aws import INTERACTIVE_APP

    os.environ["AWS_SDK_UA_APP_ID"] = INTERACTIVE_APP  # someone waits for these: the embedded AWS serves them first
    _port_free(config.host, config.app_port)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    settings = options(config)

    class Server(BaseApplication):
        def load_config(self) -> None:
            for key, value in settings.items():
                self.cfg.set(key, value)

        def load(self) -> ChaliceWsgi:
            from app import app

            log.info("%d templates compiled before the workers start", warm())
            return ChaliceWsgi(app)

    log.info("web on %s: %d workers x %d threads, backlog %d (pid %d)", config.app_url, config.web_workers,
             config.web_threads, config.web_backlog, os.getpid())
    Server().run()
    return 0
