"""The local stack's processes under its supervisor (``local/stack.py``): each part killed in
turn with SIGKILL. workers, web, mail and hub come back and the stack still registers and
provisions someone; the aws process (it holds the state) stops the stack with its name and
exit code 1; a SIGKILLed supervisor takes every part with it. No process is left behind.

And the seam between the aws and the workers processes: Lambda invokes forwarded over HTTP
keep their results, function errors and unknown names, and a worker pool that is away is a
``Lambda.ServiceException`` that a state machine's Retry absorbs."""
from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from pathlib import Path

import boto3
import pytest
import requests
from botocore.exceptions import ClientError

from local.stepfunctions import ForwardingDispatcher, disable_execution, enable_execution
from local.workers import TaskPool, WorkersServer
from tests.factory import write_workshop
from tests.hubtools import remove_linux_user
from tests.stack import PARTS, LocalStack, StackError, free_port

STUDENTS = [f"sup{n}" for n in range(1, 5)]
DESCRIPTIONS = {"workers": "task workers", "web": "app server", "mail": "mail", "hub": "JupyterHub"}


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def hub_pid(stack: LocalStack) -> int:
    return int((stack.state_dir / "hub" / "hub.pid").read_text().split()[0])


def gone(pids, seconds: float = 45) -> list[int]:
    """The pids still alive after waiting up to ``seconds``."""
    deadline = time.monotonic() + seconds
    while (left := [p for p in pids if alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def register(stack: LocalStack, n: int) -> dict:
    email = f"sup{n}@example.com"
    response = requests.post(f"{stack.app_url}/api/registrations", timeout=30, json={
        "workshop": "WKSHP-SUP", "email": email, "first_name": "Sue", "last_name": str(n), "company": "C",
        "accept_terms": True})
    assert response.status_code == 202, response.text
    stack.wait_for_message(lambda m: m["subject"].startswith("Your workshop is ready"), timeout=120, to=email)
    return stack.registration(email)


def start(tmp_path: Path) -> LocalStack:
    write_workshop(tmp_path / "workshops", "WKSHP-SUP", students={"prefix": "sup", "from": 1, "to": len(STUDENTS)})
    return LocalStack(tmp_path / "workshops", tmp_path / "state", tick_seconds=1).start()


@pytest.fixture
def cleanup_students():
    yield
    for name in STUDENTS:
        remove_linux_user(name)


def test_a_killed_part_comes_back_and_the_stack_still_registers(tmp_path, cleanup_students):
    stack = start(tmp_path)
    try:
        assert sorted(stack.part_pids()) == sorted(PARTS)
        for n, part in enumerate(("workers", "web", "mail", "hub"), start=1):
            before = stack.part_pids()[part]
            old_hub = hub_pid(stack)
            os.kill(before, signal.SIGKILL)
            deadline = time.monotonic() + 120
            while f"{part} is back." not in stack.output():
                assert time.monotonic() < deadline, f"{part} did not come back\n{stack.diagnostics()}"
                stack.assert_alive()
                time.sleep(0.2)
            assert f"{part} ({DESCRIPTIONS[part]}) stopped unexpectedly (exit code -9); restarting it" in stack.output()
            assert stack.part_pids()[part] != before
            if part == "hub":
                assert gone([old_hub]) == [], "the JupyterHub of the killed hub process was left running"
            register(stack, n)  # web, mail, workers (tasks) and the hub all serve again
        assert not [p for p in stack.part_pids().values() if not alive(p)]
    finally:
        stack.stop()


def test_a_part_that_stops_answering_is_restarted(tmp_path, cleanup_students):
    """mail frozen (SIGSTOP): it runs but answers nothing; the supervisor notices within a few
    checks, kills it, says so, and starts it again; registrations then get their emails."""
    write_workshop(tmp_path / "workshops", "WKSHP-SUP", students={"prefix": "sup", "from": 1, "to": len(STUDENTS)})
    stack = LocalStack(tmp_path / "workshops", tmp_path / "state", tick_seconds=1,
                       env={"WOD_HEALTH_SECONDS": "1"}).start()
    try:
        frozen = stack.part_pids()["mail"]
        os.kill(frozen, signal.SIGSTOP)
        deadline = time.monotonic() + 120
        while "mail is back." not in stack.output():
            assert time.monotonic() < deadline, f"mail was not restarted\n{stack.diagnostics()}"
            time.sleep(0.2)
        assert "mail (mail) stopped answering; restarting it" in stack.output()
        assert stack.part_pids()["mail"] != frozen and gone([frozen], seconds=10) == []
        register(stack, 1)
    finally:
        stack.stop()


def test_the_aws_process_stopping_stops_the_stack_with_its_name(tmp_path, cleanup_students):
    stack = start(tmp_path)
    pids = [*stack.part_pids().values(), hub_pid(stack)]
    os.kill(stack.part_pids()["aws"], signal.SIGKILL)
    assert stack.process.wait(90) == 1
    assert "aws (embedded AWS) stopped unexpectedly (exit code -9); stopping the platform" in stack.output()
    assert gone(pids, seconds=10) == []
    with pytest.raises(StackError, match="exit code 1"):
        stack.stop()


def test_a_killed_supervisor_takes_every_part_with_it(tmp_path, cleanup_students):
    stack = start(tmp_path)
    pids = [*stack.part_pids().values(), hub_pid(stack)]
    stack.process.kill()
    stack.process.wait(10)
    assert gone(pids) == [], "parts outlived the supervisor"
    with pytest.raises(StackError):
        stack.stop()


class Flaky(Exception):
    pass


def bump(event, context):
    return {"n": event["n"] + 1, "function": context.function_name}


def boom(event, context):
    raise Flaky("not today")


class WorkerPool:
    """A workers process's HTTP side on a fixed port, started and stopped (its socket closed,
    as when the process dies) by the test."""

    def __init__(self, port: int):
        self.port, self.server = port, None
        self.tasks = TaskPool({"sup-bump": bump, "sup-boom": boom}, threads=4)

    def start(self) -> None:
        self.server = WorkersServer(("127.0.0.1", self.port), self.tasks)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


@pytest.fixture
def workers(embedded_aws):
    """Invokes of the embedded AWS forwarded to a worker pool on a free port (started by the test)."""
    port_before = os.environ.get("MOTO_PORT")
    enable_execution(embedded_aws.endpoint)
    pool = WorkerPool(free_port())
    with ForwardingDispatcher(f"http://127.0.0.1:{pool.port}", connect_patience=0.5):
        yield pool
    pool.stop()
    pool.tasks.shutdown()
    disable_execution(embedded_aws.endpoint)
    if port_before is None:
        os.environ.pop("MOTO_PORT", None)
    else:
        os.environ["MOTO_PORT"] = port_before


def client(embedded_aws, service):
    return boto3.client(service, endpoint_url=embedded_aws.endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def test_forwarded_invokes_keep_results_errors_and_names(embedded_aws, workers):
    workers.start()
    lam = client(embedded_aws, "lambda")
    done = lam.invoke(FunctionName="sup-bump", Payload=b'{"n": 1}')
    assert "FunctionError" not in done and json.loads(done["Payload"].read()) == {"n": 2, "function": "sup-bump"}
    failed = lam.invoke(FunctionName="sup-boom", Payload=b"{}")
    payload = json.loads(failed["Payload"].read())
    assert failed["FunctionError"] == "Unhandled"
    assert (payload["errorType"], payload["errorMessage"]) == ("Flaky", "not today")
    with pytest.raises(ClientError) as missing:
        lam.invoke(FunctionName="sup-missing", Payload=b"{}")
    assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"
    workers.stop()
    away = lam.invoke(FunctionName="sup-bump", Payload=b'{"n": 1}')
    assert away["FunctionError"] == "Unhandled"
    assert json.loads(away["Payload"].read())["errorType"] == "Lambda.ServiceException"


def test_a_worker_pool_that_comes_back_is_retried_by_the_state_machine(embedded_aws, workers):
    sfn = client(embedded_aws, "stepfunctions")
    definition = json.dumps({"StartAt": "Bump", "States": {"Bump": {
        "Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:sup-bump", "End": True,
        "Retry": [{"ErrorEquals": ["Lambda.ServiceException"], "IntervalSeconds": 1, "MaxAttempts": 5,
                   "BackoffRate": 1.0}]}}})
    machine = sfn.create_state_machine(name=f"sup-{uuid.uuid4().hex[:6]}", definition=definition,
                                       roleArn="arn:aws:iam::123456789012:role/wod-test")["stateMachineArn"]
    run = sfn.start_execution(stateMachineArn=machine, name="once", input='{"n": 41}')  # the pool is away
    deadline = time.monotonic() + 30
    while not any(e["type"] == "LambdaFunctionFailed"
                  for e in sfn.get_execution_history(executionArn=run["executionArn"])["events"]):
        assert time.monotonic() < deadline, "the execution never met the pool away"
        time.sleep(0.2)
    workers.start()  # ... and back
    deadline = time.monotonic() + 30
    while (done := sfn.describe_execution(executionArn=run["executionArn"]))["status"] == "RUNNING":
        assert time.monotonic() < deadline, "still running"
        time.sleep(0.2)
    assert done["status"] == "SUCCEEDED", done
    assert json.loads(done["output"]) == {"n": 42, "function": "sup-bump"}
    history = sfn.get_execution_history(executionArn=run["executionArn"])["events"]
    assert any(e["type"] == "LambdaFunctionFailed" for e in history)  # it did meet the pool away
