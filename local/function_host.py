"""One of the stack's functions, as Lambda would run it, for the deploy rehearsal:
``python -m local.function_host SPEC.json`` (written by ``local/rehearsal_iam.py``).

The process gets exactly the environment the stack gave the function, plus what Lambda adds:
the credentials of the function's own role (from STS ``AssumeRole`` on the role the stack
created), the region and the function's name. The handler is found as Lambda finds it, from
the function's ``Handler`` (``app.time_checks``: module ``app``, attribute ``time_checks``).

Every AWS call the function makes is recorded just before botocore sends it (its
``before-parameter-build`` and ``before-call`` events, on every client any library makes) and
evaluated against the role's deployed policy (:mod:`infra.iam`): a call the policy does not allow
is answered ``AccessDenied`` without being sent, as AWS would answer it, and recorded as refused.

It serves the Lambda Invoke API on a port of its own (the embedded Step Functions and the
rehearsal invoke it there) and, for the API function, HTTPS in API Gateway's place, until its
standard input closes: the rehearsal that started it holds the other end, so even one killed
outright leaves no function running.
"""
from __future__ import annotations

import json
import os
import sys
import threading
from importlib import import_module
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


class Recorder:
    """Evaluates and records every AWS call of this process (one JSON line per IAM request)."""

    def __init__(self, spec: dict[str, Any]):
        from infra import iam

        self.function = spec["logical"]
        self.policy = iam.Policy(spec["policy"])
        self.where = iam.Where(spec["region"], spec["account"], spec.get("hash_keys", {}), spec.get("secrets", {}))
        self.out = open(spec["record"], "a", encoding="utf-8")
        self.lock = threading.Lock()

    def params(self, params: Any, context: dict, **_: Any) -> None:
        context["wod_params"] = dict(params)

    def call(self, model: Any, context: dict, **_: Any) -> Any:
        from infra import iam

        service = model.service_model.signing_name
        requests = iam.requests_of(service, model.name, context.get("wod_params", {}), self.where)
        refused = None
        with self.lock:
            for request in requests:
                decision = self.policy.decide(request)
                self.out.write(json.dumps({
                    "function": self.function, "service": service, "operation": model.name,
                    "action": request.action, "resource": request.resource, "allowed": decision.allowed,
                    "statement": decision.statement, "denied_by": decision.denied_by,
                    "unevaluated": decision.unevaluated}) + "\n")
                if not decision.allowed and refused is None:
                    refused = request, decision
            self.out.flush()
        if refused is None:
            return None
        context["wod_refused"] = True
        return self.denied(service, *refused)

    def answered(self, parsed: Any, model: Any, context: dict, **_: Any) -> None:
        """moto's own refusals (the action, by moto's copy of the policy) are recorded too."""
        code = str((parsed or {}).get("Error", {}).get("Code", ""))
        if "AccessDenied" in code and not context.get("wod_refused"):
            with self.lock:
                self.out.write(json.dumps({"function": self.function, "service": model.service_model.signing_name,
                                           "operation": model.name, "action": "", "resource": "", "allowed": False,
                                           "statement": None, "denied_by": "moto",
                                           "message": str(parsed["Error"].get("Message", ""))[:300]}) + "\n")
                self.out.flush()

    def denied(self, service: str, request: Any, decision: Any) -> tuple[Any, dict]:
        from botocore.awsrequest import AWSResponse

        why = (f"explicit deny in {decision.denied_by}" if decision.denied_by else
               f"the rehearsal cannot evaluate {decision.unevaluated}" if decision.unevaluated else
               "no identity-based policy allows it")
        message = (f"User: {self.function}'s role is not authorized to perform: {request.action} on resource: "
                   f"{request.resource} because {why}")
        code = "AccessDenied" if service in ("s3", "sts", "iam", "ses", "sns", "sqs") else "AccessDeniedException"
        http = AWSResponse("https://rehearsal/denied", 400, {}, None)
        return http, {"Error": {"Code": code, "Message": message},
                      "ResponseMetadata": {"HTTPStatusCode": 400, "HTTPHeaders": {}}}

    def attach(self, client: Any) -> Any:
        client.meta.events.register("before-parameter-build", self.params)
        client.meta.events.register("before-call", self.call)
        client.meta.events.register("after-call", self.answered)
        return client

    def install(self) -> None:
        """Hook every botocore client made from now on (boto3's, pynamodb's, Powertools')."""
        import botocore.session

        create = botocore.session.Session.create_client
        recorder = self

        def create_client(session: Any, *args: Any, **kwargs: Any) -> Any:
            return recorder.attach(create(session, *args, **kwargs))

        botocore.session.Session.create_client = create_client


def stand_in_dns(answers: dict[str, list[str]]) -> None:
    """Answer these names with these addresses, one after the other (the last one then stays):
    the rehearsal's DNS for webhook receivers (``chalicelib.adapters.webhooks.lookup``, its one
    place for name lookups). Nothing else is looked up differently."""
    import socket

    from chalicelib.adapters import webhooks

    original, left = webhooks.lookup, {name: list(addresses) for name, addresses in answers.items()}

    def lookup(host: str, port: int) -> list:
        if host not in left:
            return original(host, port)
        address = left[host].pop(0) if len(left[host]) > 1 else left[host][0]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    webhooks.lookup = lookup


def handler_of(spec: dict[str, Any]) -> Any:
    module, _, attribute = spec["handler"].rpartition(".")
    sys.path.insert(0, str(ROOT))
    found = getattr(import_module(module), attribute, None)
    if found is None:  # what Lambda answers: Runtime.HandlerNotFound
        raise SystemExit(f"Runtime.HandlerNotFound: Handler '{attribute}' missing on module '{module}'")
    return found


def serve(spec: dict[str, Any]) -> None:
    import logging

    from local.workers import TaskPool, WorkersServer

    os.environ.clear()
    os.environ.update(spec["env"])
    handled = logging.getLogger("wod.local.stepfunctions")  # "lambda X raised ...": under Chalice's "wod" logger
    handled.setLevel(logging.INFO)
    handled.addHandler(logging.StreamHandler(sys.stderr))
    handled.propagate = False
    Recorder(spec).install()
    if spec.get("dns"):
        stand_in_dns(spec["dns"])
    handler = handler_of(spec)
    pool = TaskPool({spec["name"]: handler}, threads=8, region=spec["region"],
                    timeout_seconds=float(spec.get("timeout", 60)))
    invoke = WorkersServer(("127.0.0.1", 0), pool)
    threading.Thread(target=invoke.serve_forever, name="invoke", daemon=True).start()
    ready = {"invoke": invoke.server_address[1]}
    if spec.get("https"):
        from werkzeug.serving import make_server

        from local.web import ChaliceWsgi

        https = spec["https"]
        web = make_server("127.0.0.1", int(https["port"]), ChaliceWsgi(handler, stage=spec["env"].get("WOD_STAGE", "")),
                          threaded=True, ssl_context=(https["cert"], https["key"]))
        threading.Thread(target=web.serve_forever, name="https", daemon=True).start()
        ready["https"] = web.server_port
    print(json.dumps(ready), flush=True)
    os.dup2(2, 1)  # the function's own output (Powertools logs to stdout) goes to its log, as to CloudWatch
    while os.read(0, 4096):  # until the rehearsal ends, however it ends
        pass
    os._exit(0)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    spec = json.loads(Path(args[0]).read_text())
    serve(spec)
    return 0


if __name__ == "__main__":
    sys.exit(main())
