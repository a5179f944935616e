"""The embedded AWS: moto's server, with DynamoDB requests serialised.

moto's DynamoDB backend is not thread-safe (concurrent TransactWriteItems can
both win), so DynamoDB requests run one at a time. Only DynamoDB is locked, so
a Step Functions task that calls back into DynamoDB cannot deadlock on it.
Someone waits for the web's requests (a registration, a status page), nobody for
the workers' (mail, time checks): the web's go first (:class:`TurnLock`), as on
AWS, where their requests would not queue behind each other at all.

``python -m local aws`` (:func:`main`) is the stack's aws process: this server, the tables,
state machines and messaging created from ``infra/``, the DynamoDB snapshot on disk (it reads
moto's in-memory tables, so it lives here), and Step Functions that execute, their Lambda
invokes forwarded to the workers process. It holds the stack's state: the supervisor does
not restart it.
"""
from __future__ import annotations

import fcntl
import importlib
import importlib.util
import io
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from werkzeug.serving import make_server

from local.loopback import guarded

log = logging.getLogger("wod.local.aws")
READ_ONLY = ("Get", "BatchGet", "Query", "Scan", "Describe", "List", "TransactGet")
STREAM_KEEP = 10_000  # records of a table's stream the embedded AWS keeps (the reader follows the newest)
ITERATORS_KEEP = 100  # stream positions kept (each GetRecords makes one)
TRIM_SECONDS = 30
_SYNTAX_TREES = threading.RLock()


def one_syntax_tree_at_a_time() -> None:
    """Python syntax trees are built one at a time in this process: CPython 3.11 counts the depth of
    the tree it is building per interpreter, not per thread, so two threads building one at once
    (moto's Step Functions reading an ASL string with ``ast.literal_eval``, werkzeug compiling a
    service's URL rules on its first request, a traceback placing its carets) can fail each other
    with ``SystemError: AST constructor recursion depth mismatch`` (CPython gh-106905) -- a Lambda
    invoke was answered 500 so. ``ast.parse``, which ``ast.literal_eval`` calls, takes a lock."""
    import ast

    if getattr(ast.parse, "one_at_a_time", False):
        return
    parse = ast.parse

    def one_at_a_time(*args: Any, **kwargs: Any) -> Any:
        with _SYNTAX_TREES:
            return parse(*args, **kwargs)

    one_at_a_time.one_at_a_time = True  # type: ignore[attr-defined]
    ast.parse = one_at_a_time
JOURNALED = {"X-Amz-Target": "HTTP_X_AMZ_TARGET", "Authorization": "HTTP_AUTHORIZATION",
             "Content-Type": "CONTENT_TYPE"}  # what a journaled request needs to be replayed


INTERACTIVE_APP = "wod-web"  # the web process's SDK user agent names it (AWS_SDK_UA_APP_ID)
BACKGROUND_TURN = 8  # at most this many interactive requests in a row while a background one waits


class TurnLock:
    """One holder at a time; interactive requests before background ones, except that a background
    request waiting gets every ``BACKGROUND_TURN``-th turn (mail still goes out during a burst).
    A release hands the lock to the next waiter itself: one thread wakes, not all of them.
    ``with lock:`` takes a background turn."""

    def __init__(self, background_turn: int = BACKGROUND_TURN):
        self._mutex = threading.Lock()
        self._held = False
        # the turns of the waiting requests: interactive, background
        self._waiting: tuple[deque[threading.Lock], deque[threading.Lock]] = (deque(), deque())
        self._streak = 0  # interactive turns in a row while a background request waited
        self.background_turn = background_turn

    def acquire(self, interactive: bool = False) -> None:
        with self._mutex:
            if not self._held:
                self._held = True
                return
            turn = threading.Lock()
            turn.acquire()
            self._waiting[0 if interactive else 1].append(turn)
        turn.acquire()  # released by the holder that hands us the lock

    def release(self) -> None:
        with self._mutex:
            interactive, background = self._waiting
            if background and (not interactive or self._streak >= self.background_turn):
                self._streak, turn = 0, background.popleft()
            elif interactive:
                self._streak, turn = self._streak + 1 if background else 0, interactive.popleft()
            else:
                self._held = False
                return
        turn.release()

    def __enter__(self) -> TurnLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class SerialisedDynamoDB:
    """WSGI middleware: one DynamoDB request at a time, everything else in parallel; a request
    that changed data is journaled (``journal``, once set: ``local/persistence.py``) before its
    answer leaves. ``app`` is moto's ``DomainDispatcherApplication``."""

    def __init__(self, app: Any):
        self.app = app
        self.lock = TurnLock()
        self.writes = 0  # requests that may have changed data (for the on-disk snapshot)
        self.journal: Any = None
        self._apps: dict[str, Callable] = {}  # moto's application for each DynamoDB service
        self.failures: deque[str] = deque(maxlen=20)  # the newest requests moto failed on (answered 500)

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if not target.startswith(("DynamoDB_", "DynamoDBStreams_")):
            try:
                return self.app(environ, start_response)
            except Exception as exc:  # werkzeug answers 500 and logs the traceback; this keeps a line of it
                self.failures.append(f"{environ.get('REQUEST_METHOD')} {environ.get('PATH_INFO')} {target}: "
                                     f"{type(exc).__name__}: {exc}")
                raise
        writing = not target.split(".")[-1].startswith(READ_ONLY)
        length = int(environ.get("CONTENT_LENGTH") or 0)  # read before the lock: its holder waits for no socket
        request = environ["wsgi.input"].read(length) if length > 0 else b""
        environ["wsgi.input"] = io.BytesIO(request)
        captured: list = []
        number = 0
        interactive = f"app/{INTERACTIVE_APP}" in environ.get("HTTP_USER_AGENT", "")
        service = target.split(".", 1)[0]
        app = self._apps.get(service)
        if app is None:  # moto finds a request's backend by listing its modules on disk: once per service
            app = self._apps[service] = self.app.get_application(environ)
        self.lock.acquire(interactive)
        try:
            if writing:
                self.writes += 1
            result = app(environ, lambda status, headers, exc_info=None: captured.extend((status, headers)))
            try:
                body = b"".join(result)  # the backend works while the body is produced
            finally:
                getattr(result, "close", lambda: None)()
            if writing and self.journal is not None and str(captured[0]).startswith("200"):
                headers = {name: environ[key] for name, key in JOURNALED.items() if environ.get(key)}
                number = self.journal.append(headers, request)
        finally:
            self.lock.release()
        if number:
            self.journal.sync(number)  # on disk before the client hears it happened
        start_response(*captured[:2])
        return [body]


class EmbeddedAws:
    """moto's server on ``host:port`` in a background thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 4566):
        from moto.server import DomainDispatcherApplication, create_backend_app

        one_syntax_tree_at_a_time()  # the server's threads, the executions', and this process's others
        self.host, self.port = host, port
        self.app = SerialisedDynamoDB(DomainDispatcherApplication(create_backend_app))
        # moto answers every origin's CORS preflight: no web page may reach it (local/loopback.py)
        self.server = make_server(host, port, guarded(self.app, host), threaded=True)
        self.port = self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever, name="embedded-aws", daemon=True)
        self._stopped = threading.Event()
        self._trimmer = threading.Thread(target=self._trim_while_serving, name="embedded-aws-streams",
                                         daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> EmbeddedAws:
        self.thread.start()
        self._trimmer.start()
        log.info("embedded AWS on %s", self.endpoint)
        return self

    def stop(self) -> None:
        self._stopped.set()
        self.server.shutdown()
        self.server.server_close()

    def _trim_while_serving(self) -> None:
        while not self._stopped.wait(TRIM_SECONDS):
            try:
                self.trim_streams()
            except Exception:  # a moto internal that moved: memory grows, requests still answer
                log.exception("trimming the embedded streams failed")

    def trim_streams(self, keep: int = STREAM_KEEP) -> int:
        """Keep the newest ``keep`` records of each table's stream, and no shard iterator but the
        newest of each reader: moto keeps them all, for ever (DynamoDB keeps records 24 hours).
        Returns how many records went."""
        from moto.dynamodb.models import dynamodb_backends
        from moto.dynamodbstreams.models import dynamodbstreams_backends

        dropped = 0
        with self.app.lock:
            for _account, _region, backend in _regional(dynamodb_backends):
                for table in backend.tables.values():
                    shard = getattr(table, "stream_shard", None)
                    if shard is not None and len(shard.items) > keep:
                        extra = len(shard.items) - keep
                        del shard.items[:extra]
                        shard.starting_sequence_number += extra  # sequence numbers stay as they were
                        dropped += extra
            for _account, _region, backend in _regional(dynamodbstreams_backends):
                if len(backend.shard_iterators) > ITERATORS_KEEP:
                    for arn in list(backend.shard_iterators)[:-ITERATORS_KEEP]:
                        del backend.shard_iterators[arn]  # in insertion order: the oldest first
        return dropped


def _regional(backends: Any) -> Iterator[tuple[str, str, Any]]:
    for account, regions in list(backends.items()):
        for region, backend in list(regions.items()):
            yield account, region, backend


def _exclusive(state_dir: Path, patience: float = 60.0) -> IO[str]:
    """Hold ``aws.lock`` in the state directory while serving: an aws process of an earlier run
    that is still saving its snapshot (its supervisor was killed) finishes before we restore."""
    handle = open(state_dir / "aws.lock", "w")
    deadline = time.monotonic() + patience
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return handle
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"another embedded AWS holds {state_dir / 'aws.lock'}: is another "
                                   "stack running on this state directory?") from None
            time.sleep(0.2)


def main() -> int:
    """The aws process: serve until SIGTERM, then save the snapshot."""
    import boto3

    from chalicelib.settings import get_settings
    from local import dynamo_answers, part
    from local.messaging import create_messaging
    from local.persistence import DynamoSnapshot
    from local.stepfunctions import ForwardingDispatcher, enable_execution, reuse_lambda_clients
    from local.tables import create_tables
    from local.workflows import create_state_machines

    config = part.setup("aws")
    stopping = part.Stopping()
    lock = _exclusive(config.state_dir)
    region = os.environ["AWS_DEFAULT_REGION"]
    if importlib.util.find_spec("local.dynamo_index") is not None:
        importlib.import_module("local.dynamo_index").install()  # time checks stay O(due)
    dynamo_answers.install()  # DynamoDB's answers written as JSON, not walked through moto's serializer
    aws = EmbeddedAws(config.host, config.aws_port).start()
    enable_execution(aws)
    reuse_lambda_clients()
    ForwardingDispatcher(config.workers_url).install()
    settings = get_settings()
    client = boto3.client("dynamodb", endpoint_url=aws.endpoint, region_name=region)
    create_tables(client, settings.table_prefix)
    snapshot = DynamoSnapshot(config.state_dir / "dynamodb.json", aws, region)
    restored = snapshot.restore(client)
    snapshot.start()
    machines = create_state_machines(
        boto3.client("stepfunctions", endpoint_url=aws.endpoint, region_name=region), region)
    messaging = create_messaging(aws.endpoint, region, settings)
    part.ready(state_machines=machines, restored=restored, messaging=messaging)
    code = 0
    try:
        while not stopping.wait(1):
            if not aws.thread.is_alive():
                log.error("the embedded AWS server stopped")
                code = 1
                break
            if not snapshot.thread.is_alive():
                log.error("the snapshot loop stopped; starting it again")
                snapshot.restart()
    finally:
        aws.stop()  # no more writes: the snapshot below is the last word
        snapshot.stop()
        lock.close()
    return code
