"""The embedded AWS: moto's server, with DynamoDB requests serialised.

moto's DynamoDB backend is not thread-safe (concurrent TransactWriteItems can
both win), so DynamoDB requests run one at a time. Only DynamoDB is locked, so
a Step Functions task that calls back into DynamoDB cannot deadlock on it.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

from werkzeug.serving import make_server

log = logging.getLogger("wod.local.aws")
READ_ONLY = ("Get", "BatchGet", "Query", "Scan", "Describe", "List", "TransactGet")


class SerialisedDynamoDB:
    """WSGI middleware: one DynamoDB request at a time, everything else in parallel."""

    def __init__(self, app: Callable):
        self.app = app
        self.lock = threading.Lock()
        self.writes = 0  # requests that may have changed data (for the on-disk snapshot)

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if not target.startswith("DynamoDB_"):
            return self.app(environ, start_response)
        captured: list = []
        with self.lock:
            if not target.split(".")[-1].startswith(READ_ONLY):
                self.writes += 1
            result = self.app(environ, lambda status, headers, exc_info=None: captured.extend((status, headers)))
            try:
                body = b"".join(result)  # the backend works while the body is produced
            finally:
                getattr(result, "close", lambda: None)()
        start_response(*captured[:2])
        return [body]


class EmbeddedAws:
    """moto's server on ``host:port`` in a background thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 4566):
        from moto.server import DomainDispatcherApplication, create_backend_app

        self.host, self.port = host, port
        self.app = SerialisedDynamoDB(DomainDispatcherApplication(create_backend_app))
        self.server = make_server(host, port, self.app, threaded=True)
        self.port = self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever, name="embedded-aws", daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> EmbeddedAws:
        self.thread.start()
        log.info("embedded AWS on %s", self.endpoint)
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
