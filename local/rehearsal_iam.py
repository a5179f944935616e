"""IAM in the deploy rehearsal: every request authenticated and authorized, every function under
its own role (``local/rehearsal.py`` drives it; :mod:`infra.iam` evaluates).

- :func:`enforce` turns moto's IAM on before anything else reaches it: the first three requests
  create the deployer (a user allowed everything, as an administrator's CLI credentials are);
  every later one must be signed by a known key and allowed by its identity's policies.
- :class:`Roles`, once the stack exists: for each role it made, its deployed policy is kept (what
  the rehearsal evaluates calls against), moto gets the copy it can evaluate
  (:func:`infra.iam.moto_copy`), the trust policy also names the deployer (moto compares
  ``Principal.AWS`` with the caller exactly; a service principal cannot call it), and ``AssumeRole``
  gives the role's credentials.
- :class:`Functions` runs each function in a process of its own (``local/function_host.py``) with
  those credentials and the stack's environment, and routes the embedded Step Functions' invokes
  and SNS deliveries there; Step Functions itself invokes with the state machine role's credentials.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from infra import iam

ROOT = Path(__file__).resolve().parent.parent
DEPLOYER = "rehearsal-deployer"
POLICY_NAME = "least-privilege"  # infra/template.py role(): the one inline policy of every role


def enforce(endpoint: str, region: str, user: str = DEPLOYER) -> dict[str, str]:
    """IAM on from the fourth request; returns the deployer's credentials (and ARN)."""
    import boto3
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin

    ActionAuthenticatorMixin.request_count = 0
    settings.INITIAL_NO_AUTH_ACTION_COUNT = 3
    client = boto3.client("iam", endpoint_url=endpoint, region_name=region, aws_access_key_id="bootstrap",
                          aws_secret_access_key="bootstrap")
    made = client.create_user(UserName=user)["User"]
    client.put_user_policy(UserName=user, PolicyName="administrator", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
    key = client.create_access_key(UserName=user)["AccessKey"]
    return {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
            "arn": made["Arn"]}


class Roles:
    """The stack's roles: deployed policies, moto's copies, credentials by AssumeRole."""

    def __init__(self, client: Callable[[str], Any], deployer_arn: str):
        self.client, self.deployer_arn = client, deployer_arn
        self.deployed: dict[str, dict] = {}  # logical id -> the policy the stack deployed
        self.checked: dict[str, dict[str, str]] = {}  # logical id -> Sid -> how it is checked
        self.names: dict[str, str] = {}  # logical id -> role name
        self.credentials: dict[str, dict[str, str]] = {}

    def take(self, created: Mapping[str, Mapping[str, str]]) -> None:
        iam_client = self.client("iam")
        for logical, resource in sorted(created.items()):
            if resource["type"] != "AWS::IAM::Role":
                continue
            name = resource["id"].rsplit("/", 1)[-1]
            document = iam_client.get_role_policy(RoleName=name, PolicyName=POLICY_NAME)["PolicyDocument"]
            document = _document(document)
            copy, how = iam.moto_copy(document)
            iam_client.put_role_policy(RoleName=name, PolicyName=POLICY_NAME, PolicyDocument=json.dumps(copy))
            # moto fails on a statement whose principal is a service (Lambda's, Step Functions'): the
            # deployer stands in for the service that assumes the role
            trust = {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": self.deployer_arn}, "Action": "sts:AssumeRole"}]}
            iam_client.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(trust))
            self.names[logical], self.deployed[logical], self.checked[logical] = name, document, how

    def assume(self, logical: str) -> dict[str, str]:
        if logical not in self.credentials:
            role = self.client("iam").get_role(RoleName=self.names[logical])["Role"]["Arn"]
            found = self.client("sts").assume_role(RoleArn=role, RoleSessionName=f"rehearsal-{logical}"[:64],
                                                   DurationSeconds=43200)["Credentials"]
            self.credentials[logical] = {"AWS_ACCESS_KEY_ID": found["AccessKeyId"],
                                         "AWS_SECRET_ACCESS_KEY": found["SecretAccessKey"],
                                         "AWS_SESSION_TOKEN": found["SessionToken"]}
        return self.credentials[logical]

    def session(self, logical: str, region: str) -> Any:
        import boto3

        keys = self.assume(logical)
        return boto3.session.Session(aws_access_key_id=keys["AWS_ACCESS_KEY_ID"],
                                     aws_secret_access_key=keys["AWS_SECRET_ACCESS_KEY"],
                                     aws_session_token=keys["AWS_SESSION_TOKEN"], region_name=region)


class Host:
    """One function's process."""

    def __init__(self, logical: str, name: str, process: subprocess.Popen, ports: dict[str, int]):
        self.logical, self.name, self.process, self.ports = logical, name, process, ports

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()


class Functions:
    """Every function of the stack, each in its own process under its own role."""

    def __init__(self, home: Path, region: str, account: str, record: Path):
        self.home, self.region, self.account, self.record = home, region, account, record
        self.hosts: dict[str, Host] = {}
        self.logs = home / "functions"
        self.logs.mkdir(exist_ok=True)

    def start(self, specs: list[dict[str, Any]], patience: float = 60.0) -> None:
        started = []
        for spec in specs:
            path = self.home / f"function-{spec['logical']}.json"
            path.write_text(json.dumps(spec))
            path.chmod(0o600)
            log = open(self.logs / f"{spec['logical']}.log", "wb")
            # its standard input: a pipe this process alone holds open (the function ends when it closes)
            process = subprocess.Popen([sys.executable, "-m", "local.function_host", str(path)], cwd=ROOT,
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=spec["env"])
            started.append((spec, process))
        deadline = time.monotonic() + patience
        for spec, process in started:
            line = _first_line(process, deadline)
            if not line:
                tail = (self.logs / f"{spec['logical']}.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"function {spec['logical']} did not start: {tail}")
            self.hosts[spec["name"]] = Host(spec["logical"], spec["name"], process, json.loads(line))

    def port(self, logical: str, kind: str = "invoke") -> int:
        return next(h.ports[kind] for h in self.hosts.values() if h.logical == logical)

    def stop(self) -> None:
        for host in self.hosts.values():
            host.stop()

    def records(self) -> list[dict[str, Any]]:
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text().splitlines() if line.strip()]


def _document(value: Any) -> dict:
    """A policy document as moto returns it: JSON, or (a role CloudFormation made) Python's repr."""
    if isinstance(value, dict):
        return value
    try:
        return json.loads(value)
    except ValueError:
        import ast

        return ast.literal_eval(value)


def _first_line(process: subprocess.Popen, deadline: float) -> str:
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.append(process.stdout.readline().decode()
                                                        if process.stdout else ""), daemon=True)
    reader.start()
    reader.join(max(0.0, deadline - time.monotonic()))
    return out[0].strip() if out else ""


def route(functions: Functions, region: str) -> Any:
    """moto's Lambda invokes (Step Functions' tasks, SNS deliveries) go to the functions' processes."""
    from moto.awslambda.exceptions import UnknownFunctionException
    from moto.awslambda_simple.models import LambdaSimpleBackend

    from local.stepfunctions import ForwardingDispatcher, LambdaDispatcher, function_name_of

    forwarders = {name: ForwardingDispatcher(f"http://127.0.0.1:{host.ports['invoke']}")
                  for name, host in functions.hosts.items()}

    class Router(LambdaDispatcher):
        def invoke(self, function: str, qualifier: str | None, body: Any, headers: Any, response_headers: dict,
                   region: str = region, account: str = functions.account) -> bytes:
            name = function_name_of(function)
            if name not in forwarders:
                raise UnknownFunctionException(f"arn:aws:lambda:{region}:{account}:function:{name}")
            return forwarders[name].invoke(function, qualifier, body, headers, response_headers, region, account)

    router = Router().install()

    def send_sns_message(backend: Any, function_name: str, message: str, subject: str | None = None,
                         qualifier: str | None = None) -> None:
        """SNS invokes a subscribed function asynchronously, with the notification as its event."""
        from moto.sns.models import sns_backends

        arn = f"arn:aws:lambda:{backend.region_name}:{backend.account_id}:function:{function_name}"
        topics = [s.topic.arn for s in sns_backends[backend.account_id][backend.region_name].subscriptions.values()
                  if s.endpoint == arn]
        event = {"Records": [{"EventSource": "aws:sns", "EventVersion": "1.0", "EventSubscriptionArn": arn,
                              "Sns": {"Type": "Notification", "MessageId": os.urandom(8).hex(),
                                      "TopicArn": topics[0] if topics else "", "Subject": subject, "Message": message,
                                      "Timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
                                      "SignatureVersion": "1", "Signature": "rehearsal", "SigningCertUrl": "",
                                      "UnsubscribeUrl": "", "MessageAttributes": {}}}]}
        router.invoke(function_name, qualifier, json.dumps(event), {"X-Amz-Invocation-Type": "Event"}, {})

    LambdaSimpleBackend.send_sns_message = send_sns_message  # type: ignore[method-assign, assignment]
    return router


def map_stream(roles: Roles, logical: str, functions: Functions, where: iam.Where, table: str, endpoint: str,
               stopping: threading.Event) -> Any:
    """The event source mapping of ``table``'s stream to the function ``logical``: its records read
    with that function's role (as Lambda reads them), evaluated and recorded, each batch invoked."""
    from local.function_host import Recorder
    from local.stream import StreamReader

    role = f"{logical}Role"  # Lambda reads the stream with the function's own role
    recorder = Recorder({"logical": logical, "policy": roles.deployed[role], "region": where.region,
                         "account": where.account, "record": str(functions.record)})
    client = recorder.attach(roles.session(role, where.region).client("dynamodbstreams", endpoint_url=endpoint))
    port = functions.port(logical)
    name = next(name for name, host in functions.hosts.items() if host.logical == logical)

    def invoke(event: dict) -> None:
        import urllib.request

        request = urllib.request.Request(f"http://127.0.0.1:{port}/2015-03-31/functions/{name}/invocations",
                                         data=json.dumps(event, default=str).encode(), method="POST")
        with urllib.request.urlopen(request, timeout=120) as answer:
            if answer.headers.get("X-Amz-Function-Error"):
                raise RuntimeError(f"{logical} failed: {answer.read()[:300]!r}")

    return StreamReader(client, table, invoke, stopping)


def invoke_as(roles: Roles, logical: str, record: Path, where: iam.Where) -> Callable[..., Any]:
    """moto's Step Functions interpreter invokes task functions with ``logical``'s credentials (the
    state machine role), each invoke evaluated against that role's deployed policy and recorded.
    Returns its clients (``(region, service)`` -> client), to invoke a task as a machine does."""
    from botocore.config import Config
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils

    from local.function_host import Recorder

    recorder = Recorder({"logical": logical, "policy": roles.deployed[logical], "region": where.region,
                         "account": where.account, "record": str(record)})
    clients: dict[tuple[str, str], Any] = {}
    lock = threading.Lock()

    def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        from moto.settings import moto_server_port

        key = (region, service)
        with lock:
            if key not in clients:
                client = roles.session(logical, region).client(
                    service, endpoint_url=f"http://localhost:{moto_server_port()}",
                    config=Config(retries={"max_attempts": 0, "total_max_attempts": 1}, read_timeout=900,
                                  max_pool_connections=64))
                clients[key] = recorder.attach(client)
            return clients[key]

    lambda_eval_utils.boto_client_for = boto_client_for
    return boto_client_for
