"""Step Functions that really run, with Lambda tasks served by Python callables: of this process
(:class:`LambdaDispatcher`, tests) or of the stack's workers process over HTTP
(:class:`ForwardingDispatcher`, ``local/workers.py``).

Facts about moto 5.2.5 this module relies on (read in moto's source, checked by
tests/integration/test_stepfunctions_local.py):

* Execution. ``moto.stepfunctions.responses.get_backend`` reads
  ``moto.core.config.default_user_config["stepfunctions"]["execute_state_machine"]``
  on every request: False -> ``stepfunctions_backends`` (bookkeeping only, nothing runs),
  True -> ``stepfunctions_parser_backends`` (LocalStack's ASL interpreter; each execution
  runs in its own daemon thread). The two backends store state machines separately, so a
  state machine created before execution was enabled is not found afterwards.
* Lambda without Docker. ``moto.awslambda.utils.get_backend`` reads
  ``default_user_config["lambda"]["use_docker"]`` per request: False selects
  ``LambdaSimpleBackend``, whose ``invoke`` never looks the function up and echoes the
  payload (or a canned queue). Replacing that ``invoke`` is the seam: moto's
  ``LambdaResponse.invoke`` passes the URL-decoded function name (plain name, or the full
  ARN the interpreter uses) and a ``response_headers`` dict that becomes the HTTP headers,
  so ``x-amz-function-error`` reaches botocore as ``FunctionError``.
* Configuration. ``POST /moto-api/config`` (``MotoAPIBackend.set_config``) assigns the
  "lambda" and "stepfunctions" sections of that same module-level dict. For a server in
  this process it is the very dict the backends read, so the HTTP call and a direct
  assignment are equivalent; we use the HTTP call (it fails loudly on a wrong endpoint) and
  then check the in-process dict (it proves the server is ours, which the dispatcher needs).
  Caveat: ``mock_aws()`` snapshots the dict and ``patch.dict``-restores it on exit, so
  enable execution outside any active ``mock_aws()`` or the setting will be rolled back.
* How the interpreter reaches Lambda. ``stepfunctions/parser/asl/utils/boto_client.py``
  builds a boto3 client with ``endpoint_url=f"http://localhost:{moto_server_port()}"``
  (``moto.settings.moto_server_port`` = ``os.environ["MOTO_PORT"]`` or "5000", read on each
  call) with dummy credentials "ak"/"sk" -- unless ``botocore_stubber.enabled`` (a
  ``mock_aws()`` is active), in which case it is intercepted in-process instead. So the
  Lambda invoke is a real HTTP request back to our server: it runs in a werkzeug request
  thread, outside the DynamoDB lock of ``local.aws``, and a handler may call DynamoDB on the
  same server without deadlock. The host is hard-coded "localhost": the server must listen
  on 127.0.0.1 (or 0.0.0.0). MOTO_PORT is process-wide: one executing server per process.
* Existence. With ``invoke`` replaced, the function need not exist in moto's Lambda
  backend: ``create_state_machine`` only parses the ASL (the role ARN is checked for format,
  not existence), the interpreter only parses the Resource ARN, and ``LambdaResponse.invoke``
  goes straight to the backend. So there is no ``create_functions``.
* Errors. The interpreter turns a ``FunctionError`` response into the ASL error named by
  the payload's ``errorType`` (cause: the payload, compact JSON), so ``Retry``/``Catch`` on
  the exception class name and on ``States.ALL`` work. A Lambda API error (e.g. the 404
  ``ResourceNotFoundException`` we raise for an unregistered function) becomes the ASL
  error "Exception" with the API message as cause (real AWS: ``Lambda.ResourceNotFoundException``).
* Timing. Wait states and Retry intervals really sleep. ``StartExecution`` follows AWS:
  the same name and input while the execution is RUNNING returns that execution; once it
  has closed (or with another input) -> ``ExecutionAlreadyExists``. Always pass ``name=``.
* Forwarding. :class:`ForwardingDispatcher` sends each invoke to the workers process with
  the Lambda Invoke API's shape (``POST /2015-03-31/functions/<name>/invocations``,
  ``X-Amz-Invocation-Type``; answer 200 with ``X-Amz-Function-Error``, 202, 204, or 404 for an
  unknown function), so FunctionError, Retry and Catch behave as in-process. A worker pool that
  cannot be reached (being restarted by the supervisor) is waited for a little; if it stays
  away, or its connection breaks mid-task, the invoke answers the function error
  ``Lambda.ServiceException``, which the machines' ``Retry`` blocks retry (the tasks are
  idempotent), as they would a failure of the Lambda service itself.
* moto keeps every execution thread in ``moto.stepfunctions.parser.utils.TMP_THREADS``
  (never pruned); harmless for tests and a local stack.
"""
from __future__ import annotations

import http.client
import json
import logging
import os
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit
from urllib.request import Request, urlopen

log = logging.getLogger("wod.local.stepfunctions")

Handler = Callable[[dict, "LambdaContext"], Any]

_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "0.0.0.0"}


def _endpoint_of(target: Any) -> str:
    return getattr(target, "endpoint", target)


def _post_config(endpoint: str, config: dict) -> None:
    request = Request(f"{endpoint}/moto-api/config", data=json.dumps(config).encode(), method="POST",
                      headers={"Content-Type": "application/json"})
    with urlopen(request, timeout=10) as response:
        response.read()


def enable_execution(endpoint: Any) -> None:
    """Make the in-process moto server at ``endpoint`` (a URL or an EmbeddedAws) run state machines.

    Sets MOTO_PORT (the interpreter calls Lambda at ``http://localhost:$MOTO_PORT``) and
    selects moto's Docker-free Lambda backend, whose invoke a LambdaDispatcher replaces.
    """
    endpoint = _endpoint_of(endpoint).rstrip("/")
    url = urlsplit(endpoint)
    if url.hostname not in _LOOPBACK_HOSTS or url.port is None:
        raise ValueError(f"moto's interpreter calls http://localhost:$MOTO_PORT; {endpoint!r} "
                         "is not reachable that way")
    previous = os.environ.get("MOTO_PORT")
    if previous not in (None, str(url.port)):
        log.warning("MOTO_PORT was %s, now %s: Step Functions of the other server will call this one",
                    previous, url.port)
    os.environ["MOTO_PORT"] = str(url.port)
    _post_config(endpoint, {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}})

    from moto.core.config import default_user_config

    if not default_user_config.get("stepfunctions", {}).get("execute_state_machine"):
        raise RuntimeError(f"{endpoint} accepted the config but this process's moto did not change: "
                           "the server is not in-process, so Python handlers cannot be dispatched to")
    log.info("state machine execution enabled on %s (MOTO_PORT=%s)", endpoint, url.port)


_clients: dict[tuple[str, str, str], Any] = {}


def reuse_lambda_clients(pool_size: int = 64) -> None:
    """Make moto's interpreter reuse one boto3 Lambda client per region instead of building one
    per Task (about 10 ms of the embedded AWS's one GIL each): same endpoint, credentials and
    settings as moto's ``boto_client_for``, a connection pool as large as the executions that
    run at once. botocore clients are thread-safe. Not while a ``mock_aws()`` intercepts calls."""
    from botocore.config import Config
    from moto.core.models import botocore_stubber
    from moto.settings import moto_server_port
    from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import TimeoutSeconds
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils

    original = getattr(lambda_eval_utils.boto_client_for, "original", lambda_eval_utils.boto_client_for)

    def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        if botocore_stubber.enabled:
            return original(region=region, service=service, state_credentials=state_credentials)
        key = (region, service, moto_server_port())
        client = _clients.get(key)
        if client is None:
            import boto3

            client = _clients[key] = boto3.client(
                service_name=service, region_name=region, endpoint_url=f"http://localhost:{key[2]}",
                aws_access_key_id="ak", aws_secret_access_key="sk",
                config=Config(parameter_validation=False, retries={"max_attempts": 0, "total_max_attempts": 1},
                              connect_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
                              read_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS, max_pool_connections=pool_size))
        return client

    boto_client_for.original = original  # type: ignore[attr-defined]
    lambda_eval_utils.boto_client_for = boto_client_for


def disable_execution(endpoint: Any) -> None:
    """Back to moto's defaults: state machines are only recorded, Lambda wants Docker."""
    _post_config(_endpoint_of(endpoint).rstrip("/"),
                 {"stepfunctions": {"execute_state_machine": False}, "lambda": {"use_docker": True}})


class LambdaContext:
    """The parts of the Lambda context object our handlers use."""

    function_version = "$LATEST"
    memory_limit_in_mb = 128

    def __init__(self, function_name: str, invoked_function_arn: str, timeout_seconds: float):
        self.function_name = function_name
        self.invoked_function_arn = invoked_function_arn
        self.aws_request_id = str(uuid.uuid4())
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def function_name_of(function: str) -> str:
    """The bare name from any Lambda FunctionName form: name, name:alias, ARN, partial ARN."""
    parts = function.split(":")
    if function.startswith("arn:") and len(parts) >= 7:
        return parts[6]  # arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]
    if len(parts) >= 3 and parts[1] == "function":
        return parts[2]  # <account>:function:<name>[:<qualifier>]
    return parts[0]


_installed: LambdaDispatcher | None = None
_original_invoke: Callable | None = None  # moto's LambdaSimpleBackend.invoke, kept once captured
_install_lock = threading.Lock()


class LambdaDispatcher:
    """Registry of Python Lambda handlers, served by moto's Docker-free Lambda backend."""

    def __init__(self) -> None:
        self._handlers: dict[str, tuple[Handler, float]] = {}

    def register(self, function_name: str, handler: Handler, *, timeout_seconds: float = 900.0) -> None:
        """Serve invokes of ``function_name`` (by name or ARN) with ``handler(event, context)``.

        ``timeout_seconds`` only feeds ``context.get_remaining_time_in_millis()``; it is not enforced.
        """
        self._handlers[function_name_of(function_name)] = (handler, timeout_seconds)

    def unregister(self, function_name: str) -> None:
        self._handlers.pop(function_name_of(function_name), None)

    @property
    def function_names(self) -> list[str]:
        return sorted(self._handlers)

    def install(self) -> LambdaDispatcher:
        """Become moto's Lambda invoke (process-wide; replaces a previously installed dispatcher)."""
        global _installed, _original_invoke
        from moto.awslambda_simple.models import LambdaSimpleBackend

        with _install_lock:
            if _original_invoke is None:
                _original_invoke = LambdaSimpleBackend.invoke
            # moto's Lambda runs our handlers instead of containers
            LambdaSimpleBackend.invoke = _dispatching_invoke  # type: ignore[method-assign,assignment]
            if _installed is not None and _installed is not self:
                log.warning("replacing the installed LambdaDispatcher")
            _installed = self
        return self

    def uninstall(self) -> None:
        global _installed
        from moto.awslambda_simple.models import LambdaSimpleBackend

        with _install_lock:
            if _installed is not self:
                return
            _installed = None
            LambdaSimpleBackend.invoke = _original_invoke  # type: ignore[method-assign,assignment]

    def __enter__(self) -> LambdaDispatcher:
        return self.install()

    def __exit__(self, *exc: Any) -> None:
        self.uninstall()

    def invoke(self, function: str, qualifier: str | None, body: Any, headers: Any,
               response_headers: dict, region: str = "us-east-1", account: str = "123456789012") -> bytes:
        """What moto's ``LambdaResponse.invoke`` gets back from the backend: the response payload."""
        from moto.awslambda.exceptions import LambdaClientError, UnknownFunctionException

        name = function_name_of(function)
        arn = f"arn:aws:lambda:{region}:{account}:function:{name}"
        if name not in self._handlers:
            raise UnknownFunctionException(arn)
        handler, timeout = self._handlers[name]

        if isinstance(body, bytes):
            body = body.decode("utf-8")
        try:
            event = json.loads(body) if body else {}
        except ValueError as exc:
            raise LambdaClientError("InvalidRequestContentException", "Could not parse request body into json") from exc

        invocation_type = _header(headers, "X-Amz-Invocation-Type") or "RequestResponse"
        if invocation_type == "DryRun":
            return b""
        context = LambdaContext(name, arn + (f":{qualifier}" if qualifier else ""), timeout)
        if invocation_type == "Event":
            threading.Thread(target=run_handler, args=(handler, event, context), name=f"lambda-{name}",
                             daemon=True).start()
            return b""
        payload, errored = run_handler(handler, event, context)
        if errored:
            response_headers["x-amz-function-error"] = "Unhandled"
        response_headers["Content-Length"] = str(len(payload))
        return payload


class ForwardingDispatcher(LambdaDispatcher):
    """moto's Lambda invoke, answered by the workers process at ``url`` (``local/workers.py``)."""

    INVOKE_PATH = "/2015-03-31/functions/{name}/invocations"

    def __init__(self, url: str, *, connect_patience: float = 30.0, timeout: float = 960.0) -> None:
        super().__init__()
        parts = urlsplit(url)
        if not parts.hostname or not parts.port:
            raise ValueError(f"the workers URL needs a host and a port: {url!r}")
        self.host, self.port = parts.hostname, parts.port
        self.connect_patience, self.timeout = connect_patience, timeout

    def invoke(self, function: str, qualifier: str | None, body: Any, headers: Any,
               response_headers: dict, region: str = "us-east-1", account: str = "123456789012") -> bytes:
        from moto.awslambda.exceptions import UnknownFunctionException

        name = function_name_of(function)
        arn = f"arn:aws:lambda:{region}:{account}:function:{name}"
        invocation_type = _header(headers, "X-Amz-Invocation-Type") or "RequestResponse"
        if isinstance(body, str):
            body = body.encode("utf-8")
        try:
            status, error, payload = self._post(name, body or b"", {
                "X-Amz-Invocation-Type": invocation_type, "Content-Type": "application/json",
                "X-Wod-Function-Arn": arn + (f":{qualifier}" if qualifier else "")})
        except OSError as exc:  # includes http.client's RemoteDisconnected
            log.warning("lambda %s: worker pool unavailable (%s: %s)", name, type(exc).__name__, exc)
            status, error = 200, "Unhandled"
            payload = json.dumps({"errorType": "Lambda.ServiceException", "errorMessage":
                                  f"the worker pool did not answer: {type(exc).__name__}: {exc}"}).encode()
        if status == 404:
            raise UnknownFunctionException(arn)
        if status in (202, 204):
            return b""
        if status != 200:
            payload = json.dumps({"errorType": "Lambda.ServiceException",
                                  "errorMessage": f"the worker pool answered {status}: {payload[:200]!r}"}).encode()
            error = "Unhandled"
        if error:
            response_headers["x-amz-function-error"] = error
        response_headers["Content-Length"] = str(len(payload))
        return payload

    def _post(self, name: str, body: bytes, headers: dict[str, str]) -> tuple[int, str | None, bytes]:
        """One invoke; connection refused (a worker pool being restarted) is retried for a while."""
        deadline = time.monotonic() + self.connect_patience
        delay = 0.1
        while True:
            connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                try:
                    connection.connect()
                except (TimeoutError, ConnectionRefusedError):
                    if time.monotonic() + delay > deadline:
                        raise
                    time.sleep(delay)
                    delay = min(delay * 2, 2.0)
                    continue
                connection.request("POST", self.INVOKE_PATH.format(name=name), body=body, headers=headers)
                response = connection.getresponse()
                return response.status, response.getheader("X-Amz-Function-Error"), response.read()
            finally:
                connection.close()


def _header(headers: Any, name: str) -> str | None:
    if not headers:
        return None
    return headers.get(name) or headers.get(name.lower())


def run_handler(handler: Handler, event: Any, context: LambdaContext) -> tuple[bytes, bool]:
    """Run a handler as the Python runtime would: (JSON payload, whether it is an unhandled error)."""
    try:
        result = handler(event, context)
    except Exception as exc:  # the runtime reports every exception as an unhandled function error
        log.info("lambda %s raised %s: %s", context.function_name, type(exc).__name__, exc)
        return _error(type(exc).__name__, str(exc), context, traceback.format_tb(exc.__traceback__)), True
    try:
        return json.dumps(result).encode("utf-8"), False
    except (TypeError, ValueError) as exc:
        return _error("Runtime.MarshalError", f"Unable to marshal response: {exc}", context, []), True


def _error(error_type: str, message: str, context: LambdaContext, stack: list[str]) -> bytes:
    return json.dumps({"errorMessage": message, "errorType": error_type, "requestId": context.aws_request_id,
                       "stackTrace": stack}).encode("utf-8")


def _dispatching_invoke(backend: Any, function_name: str, qualifier: str | None, body: Any, headers: Any,
                        response_headers: Any) -> bytes:
    dispatcher = _installed
    if dispatcher is None:  # uninstalled between lookup and call
        if _original_invoke is None:
            raise RuntimeError("no Lambda dispatcher was ever installed")
        return _original_invoke(backend, function_name, qualifier, body, headers, response_headers)
    return dispatcher.invoke(function_name, qualifier, body, headers, response_headers,
                             region=backend.region_name, account=backend.account_id)
