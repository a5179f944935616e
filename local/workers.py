"""The workers process (``python -m local workers``): the task Lambdas and the time checks.

On AWS each task of a state machine is a Lambda function and the time checks are a Lambda
that an EventBridge schedule invokes. Here one process plays that part for the whole stack:

* a small threaded HTTP server on ``WOD_WORKERS_PORT`` answers the embedded AWS's invokes
  (the Lambda Invoke API's shape, see ``ForwardingDispatcher`` in ``local/stepfunctions.py``)
  by running ``app.py``'s functions (``app.pure_lambda_functions``, by name, through the app's
  middleware) in a bounded thread pool (``WOD_WORKER_THREADS``); ``GET /health`` says how busy;
* a timer invokes ``app.py``'s scheduled ``time-checks`` function every ``WOD_TICK_SECONDS``
  with an EventBridge scheduled event;
* a reader of the registrations' stream hands each batch to ``app.py``'s ``outbox-dispatcher``
  (``local/stream.py``), as the event source mapping does on AWS.

Its Context is built from the ``WOD_*`` environment. It keeps no state: the supervisor
restarts it if it stops; the executions it was serving see ``Lambda.ServiceException`` and
retry.
"""
from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from local.loopback import refusal
from local.stepfunctions import Handler, LambdaContext, function_name_of, run_handler
from local.stream import StreamReader

log = logging.getLogger("wod.local.workers")
ACCOUNT = "123456789012"
INVOKE = re.compile(r"^/2015-03-31/functions/([^/?]+)/invocations(?:\?.*)?$")


class TaskPool:
    """Named handlers run in at most ``threads`` threads at once."""

    def __init__(self, functions: Mapping[str, Callable[..., Any]], threads: int, region: str = "us-east-1",
                 timeout_seconds: float = 900.0):
        self.functions, self.region, self.timeout = functions, region, timeout_seconds
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="task")
        self.threads = threads
        self._lock = threading.Lock()
        self.running = 0
        self.served = 0

    def _counted(self, handler: Handler, event: Any, context: LambdaContext) -> tuple[bytes, bool]:
        with self._lock:
            self.running += 1
        try:
            return run_handler(handler, event, context)
        finally:
            with self._lock:
                self.running -= 1
                self.served += 1

    def invoke(self, function: str, body: bytes, invocation_type: str = "RequestResponse",
               arn: str | None = None) -> tuple[int, dict[str, str], bytes]:
        """(HTTP status, headers, payload), as the Lambda Invoke API answers."""
        name = function_name_of(function)
        handler = self.functions.get(name)
        if handler is None:
            return 404, {"X-Amzn-ErrorType": "ResourceNotFoundException"}, json.dumps(
                {"Type": "User", "message": f"Function not found: {name}"}).encode()
        try:
            event = json.loads(body) if body else {}
        except ValueError:
            return 400, {"X-Amzn-ErrorType": "InvalidRequestContentException"}, json.dumps(
                {"Type": "User", "message": "Could not parse request body into json"}).encode()
        if invocation_type == "DryRun":
            return 204, {}, b""
        context = LambdaContext(name, arn or f"arn:aws:lambda:{self.region}:{ACCOUNT}:function:{name}",
                                self.timeout)
        if invocation_type == "Event":
            self.pool.submit(self._counted, handler, event, context)
            return 202, {}, b""
        payload, errored = self.pool.submit(self._counted, handler, event, context).result()
        return 200, ({"X-Amz-Function-Error": "Unhandled"} if errored else {}), payload

    def shutdown(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


class _InvokeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: WorkersServer

    def do_POST(self) -> None:
        match = INVOKE.match(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        if self._refused():
            return
        if not match:
            self._answer(404, {}, b'{"message": "not an invoke"}')
            return
        status, headers, payload = self.server.tasks.invoke(
            match.group(1), body, self.headers.get("X-Amz-Invocation-Type") or "RequestResponse",
            self.headers.get("X-Wod-Function-Arn"))
        self._answer(status, headers, payload)

    def do_GET(self) -> None:
        if self._refused():
            return
        if self.path != "/health":
            self._answer(404, {}, b'{"message": "not found"}')
            return
        tasks = self.server.tasks
        self._answer(200, {}, json.dumps({"functions": len(tasks.functions), "threads": tasks.threads,
                                          "running": tasks.running, "served": tasks.served}).encode())

    def _refused(self) -> bool:
        """Answered already: a web page's request, or a re-pointed domain's (local/loopback.py)."""
        refused = refusal(self.command, self.headers.get, str(self.server.server_address[0]))
        if refused is not None:
            self._answer(refused[0], {}, json.dumps({"message": refused[1]}).encode())
        return refused is not None

    def _answer(self, status: int, headers: dict[str, str], payload: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug(format, *args)


class WorkersServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # every running execution may invoke at once

    def __init__(self, address: tuple[str, int], tasks: TaskPool):
        self.tasks = tasks
        super().__init__(address, _InvokeHandler)


def scheduled_event(region: str, rule: str = "wod-time-checks") -> dict:
    """What an EventBridge schedule hands its Lambda target."""
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.events",
            "account": ACCOUNT, "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "region": region,
            "resources": [f"arn:aws:events:{region}:{ACCOUNT}:rule/{rule}"], "detail": {}}


class Timer:
    """The EventBridge schedule: invoke ``function`` every ``seconds``, one run at a time."""

    def __init__(self, function: Handler, seconds: float, region: str, stopping: threading.Event):
        self.function, self.seconds, self.region, self.stopping = function, seconds, region, stopping
        self.thread = self._start()

    def _start(self) -> threading.Thread:
        thread = threading.Thread(target=self._loop, name="time-checks", daemon=True)
        thread.start()
        return thread

    def _loop(self) -> None:
        while not self.stopping.wait(self.seconds):
            started = time.monotonic()
            try:
                self.function(scheduled_event(self.region), LambdaContext("time-checks", "", 900.0))
            except Exception:
                log.exception("time checks failed; the next tick retries")
            else:
                log.debug("time checks took %.2fs", time.monotonic() - started)

    def keep_alive(self) -> None:
        if not self.thread.is_alive() and not self.stopping.is_set():
            log.error("the time-check timer stopped; starting it again")
            self.thread = self._start()


def _streams_client(config: Any, region: str) -> Any:
    import boto3

    return boto3.client("dynamodbstreams", endpoint_url=config.aws_endpoint, region_name=region)


def _restart_appliances(config: Any, context: Any) -> None:
    """The appliances of active participants are this process's children: stop those a dead
    predecessor left, then start each active participant's again."""
    from chalicelib.services.recovery import restart_appliances
    from local.orphans import stop_left_behind

    try:
        for stopped in stop_left_behind(config.state_dir):
            log.warning("stopped %s", stopped)
        started, errors = restart_appliances(context)
    except Exception:
        log.exception("appliances of active participants not restarted")
        return
    if started or errors:
        log.info("appliances of active participants: %d started, %d errors", started, errors)


def main() -> int:
    from local import part

    config = part.setup("workers")
    stopping = part.Stopping()
    context = part.install_context(config)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from app import app, outbox_dispatcher, time_checks

    functions = {function.name: function for function in app.pure_lambda_functions}
    tasks = TaskPool(functions, config.worker_threads, region=context.settings.region)
    server = WorkersServer((config.host, config.workers_port), tasks)
    serving = threading.Thread(target=server.serve_forever, name="workers-http", daemon=True)
    serving.start()
    timer = Timer(time_checks, config.tick_seconds, context.settings.region, stopping.event)
    stream = StreamReader(_streams_client(config, context.settings.region), context.settings.table_name("customers"),
                          lambda event: outbox_dispatcher(event, LambdaContext("outbox-dispatcher", "", 60.0)),
                          stopping.event)
    log.info("workers on %s: %d functions, %d threads; time checks every %gs", config.workers_url,
             len(functions), config.worker_threads, config.tick_seconds)
    part.ready(functions=len(functions), threads=config.worker_threads)
    threading.Thread(target=_restart_appliances, args=(config, context), name="appliances", daemon=True).start()
    code = 0
    try:
        while not stopping.wait(1):
            if not serving.is_alive():
                log.error("the workers' HTTP server stopped")
                code = 1
                break
            timer.keep_alive()
            stream.keep_alive()
    finally:
        server.shutdown()
        server.server_close()
        tasks.shutdown()
        context.appliances.stop_all()  # local appliances are this process's children
        logging.shutdown()
        # Now, not once the running tasks end: a task still waiting on a hub or a mail server
        # would otherwise outlive the stack and act on the next one. Its execution retries it.
        os._exit(code)
