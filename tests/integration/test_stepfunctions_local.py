"""Step Functions really executed by the embedded AWS, Lambda tasks served by Python handlers (local/stepfunctions.py).

Waits and retry intervals really sleep: the two runs of the main flow go in parallel, about 6 s.
"""
from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections import defaultdict

import boto3
import pytest
from botocore.exceptions import ClientError

from local.stepfunctions import LambdaDispatcher, disable_execution, enable_execution

REGION, ACCOUNT = "us-east-1", "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/wod-test-sfn"  # checked for format only


def fn_arn(name: str) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"


class HubUnavailable(Exception):
    pass


class ProvisionFailed(Exception):
    pass


@pytest.fixture(scope="module")
def executing(embedded_aws):
    port_before = os.environ.get("MOTO_PORT")
    enable_execution(embedded_aws.endpoint)
    assert os.environ["MOTO_PORT"] == str(embedded_aws.port)
    with LambdaDispatcher() as dispatcher:
        yield dispatcher
    disable_execution(embedded_aws.endpoint)
    if port_before is None:
        os.environ.pop("MOTO_PORT", None)
    else:
        os.environ["MOTO_PORT"] = port_before


@pytest.fixture(scope="module")
def clients(embedded_aws):
    kw = dict(endpoint_url=embedded_aws.endpoint, region_name=REGION,
              aws_access_key_id="testing", aws_secret_access_key="testing")
    return {name: boto3.client(name, **kw) for name in ("stepfunctions", "lambda", "dynamodb")}


def wait_done(sfn, execution_arn: str, timeout: float = 25.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        described = sfn.describe_execution(executionArn=execution_arn)
        if described["status"] != "RUNNING":
            return described
        assert time.monotonic() < deadline, f"{execution_arn} still running after {timeout}s (deadlock?)"
        time.sleep(0.1)


class Calls:
    """Thread-safe record of handler calls: (function, run) -> [(monotonic time, event)]."""

    def __init__(self):
        self.lock = threading.Lock()
        self.by = defaultdict(list)

    def add(self, function: str, event: dict) -> int:
        with self.lock:
            self.by[function, event["run"]].append((time.monotonic(), event))
            return len(self.by[function, event["run"]])

    def count(self, function: str, run: str) -> int:
        return len(self.by[function, run])

    def times(self, function: str, run: str) -> list[float]:
        return [t for t, _ in self.by[function, run]]


def flow_definition(p: str) -> str:
    retry_hub = [{"ErrorEquals": ["HubUnavailable"], "IntervalSeconds": 1, "MaxAttempts": 2, "BackoffRate": 1}]
    return json.dumps({
        "StartAt": "Prepare",
        "States": {
            "Prepare": {"Type": "Pass", "Next": "Reserve",
                        "Parameters": {"run.$": "$$.Execution.Name", "mode.$": "$.mode", "seat.$": "$.seat"}},
            "Reserve": {"Type": "Task", "Resource": fn_arn(f"{p}-reserve"), "ResultPath": "$.reservation",
                        "Retry": retry_hub, "Next": "WaitReady"},
            "WaitReady": {"Type": "Wait", "Seconds": 1, "Next": "Check"},
            "Check": {"Type": "Task", "Resource": fn_arn(f"{p}-check"), "ResultPath": "$.check", "Next": "IsReady"},
            "IsReady": {"Type": "Choice", "Default": "WaitReady",
                        "Choices": [{"Variable": "$.check.ready", "BooleanEquals": True, "Next": "Route"}]},
            "Route": {"Type": "Choice", "Default": "Finish",
                      "Choices": [{"Variable": "$.mode", "StringEquals": "fail", "Next": "Provision"}]},
            "Provision": {"Type": "Task", "Resource": fn_arn(f"{p}-provision"), "Retry": retry_hub,
                          "Catch": [{"ErrorEquals": ["ProvisionFailed"], "ResultPath": "$.error",
                                     "Next": "Compensate"}],
                          "Next": "Finish"},
            "Compensate": {"Type": "Task", "Resource": fn_arn(f"{p}-compensate"), "ResultPath": "$.compensation",
                           "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 1, "MaxAttempts": 1,
                                      "BackoffRate": 1}],
                           "Next": "Failed"},
            "Failed": {"Type": "Fail", "Error": "ProvisioningFailed", "Cause": "seat released"},
            # the other Lambda form: the optimised integration, FunctionName by plain name
            "Finish": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                       "Parameters": {"FunctionName": f"{p}-finish", "Payload.$": "$"},
                       "OutputPath": "$.Payload", "End": True},
        },
    })


def test_flow_retries_waits_catches_and_starts_once_per_name(executing, clients, embedded_aws):
    sfn, ddb = clients["stepfunctions"], clients["dynamodb"]
    p = f"wod{uuid.uuid4().hex[:6]}"
    table = f"{p}-seats"
    ddb.create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "seat", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "seat", "AttributeType": "S"}])
    calls = Calls()

    def reserve(event, context):
        n = calls.add("reserve", event)
        assert context.function_name == f"{p}-reserve" and context.aws_request_id
        assert context.get_remaining_time_in_millis() > 0
        if n <= 2:
            raise HubUnavailable(f"hub down (attempt {n})")
        return {"seat": event["seat"], "attempts": n}

    def check(event, context):
        n = calls.add("check", event)
        return {"ready": n >= 3, "polls": n}

    def provision(event, context):
        calls.add("provision", event)
        raise ProvisionFailed(f"no capacity for {event['seat']}")

    def compensate(event, context):
        n = calls.add("compensate", event)
        if n == 1:
            raise RuntimeError("transient")  # retried by States.ALL
        # DynamoDB on the same server, from inside a Lambda invoked by the interpreter
        ddb.put_item(TableName=table, Item={"seat": {"S": event["seat"]}, "status": {"S": "released"}})
        return {"released": event["seat"], "saw_error": event["error"]["Error"]}

    def finish(event, context):
        calls.add("finish", event)
        ddb.put_item(TableName=table, Item={"seat": {"S": event["seat"]}, "status": {"S": "ready"}})
        got = ddb.get_item(TableName=table, Key={"seat": {"S": event["seat"]}}, ConsistentRead=True)["Item"]
        return {"seat": event["seat"], "status": got["status"]["S"], "polls": event["check"]["polls"],
                "attempts": event["reservation"]["attempts"]}

    for name, handler in [("reserve", reserve), ("check", check), ("provision", provision),
                          ("compensate", compensate), ("finish", finish)]:
        executing.register(f"{p}-{name}", handler)

    machine = sfn.create_state_machine(name=f"{p}-flow", definition=flow_definition(p), roleArn=ROLE)["stateMachineArn"]
    ok_input = json.dumps({"mode": "ok", "seat": "student1"})
    ok = sfn.start_execution(stateMachineArn=machine, name=f"{p}-ok", input=ok_input)
    bad = sfn.start_execution(stateMachineArn=machine, name=f"{p}-bad",
                              input=json.dumps({"mode": "fail", "seat": "student2"}))

    # AWS (STANDARD): same name and input while RUNNING -> the same execution, nothing new runs
    again = sfn.start_execution(stateMachineArn=machine, name=f"{p}-ok", input=ok_input)
    assert again["executionArn"] == ok["executionArn"]
    # ... with another input -> ExecutionAlreadyExists
    with pytest.raises(ClientError) as other_input:
        sfn.start_execution(stateMachineArn=machine, name=f"{p}-ok", input=json.dumps({"mode": "ok", "seat": "x"}))
    assert other_input.value.response["Error"]["Code"] == "ExecutionAlreadyExists"

    ok_done = wait_done(sfn, ok["executionArn"])
    bad_done = wait_done(sfn, bad["executionArn"])

    # success path: 2 retried HubUnavailable then success, 3 polls (2 not ready), DynamoDB read back
    failed = list(embedded_aws.app.failures)  # what moto answered 500 to, if anything
    assert ok_done["status"] == "SUCCEEDED", (ok_done, failed)
    assert json.loads(ok_done["output"]) == {"seat": "student1", "status": "ready", "polls": 3, "attempts": 3}
    run = f"{p}-ok"
    assert [calls.count(f, run) for f in ("reserve", "check", "provision", "compensate", "finish")] == [3, 3, 0, 0, 1]
    gaps = [b - a for a, b in zip(calls.times("reserve", run), calls.times("reserve", run)[1:], strict=False)]
    assert all(g >= 0.9 for g in gaps), gaps  # IntervalSeconds 1, BackoffRate 1
    assert (ok_done["stopDate"] - ok_done["startDate"]).total_seconds() >= 4.5  # 2 s of retries + 3 waits of 1 s

    # failure path: ProvisionFailed not retried (Retry names only HubUnavailable), caught, compensated, Fail
    assert bad_done["status"] == "FAILED"
    assert (bad_done["error"], bad_done["cause"]) == ("ProvisioningFailed", "seat released"), failed
    run = f"{p}-bad"
    assert [calls.count(f, run) for f in ("reserve", "check", "provision", "compensate", "finish")] == [3, 3, 1, 2, 0]
    compensated = calls.by["compensate", run][-1][1]
    assert compensated["error"]["Error"] == "ProvisionFailed"
    cause = json.loads(compensated["error"]["Cause"])
    assert (cause["errorType"], cause["errorMessage"]) == ("ProvisionFailed", "no capacity for student2")
    history = sfn.get_execution_history(executionArn=bad["executionArn"], maxResults=1000)["events"]
    failed = [e["lambdaFunctionFailedEventDetails"]["error"] for e in history if e["type"] == "LambdaFunctionFailed"]
    assert failed == ["HubUnavailable", "HubUnavailable", "ProvisionFailed", "RuntimeError"]

    items = ddb.scan(TableName=table)["Items"]
    assert sorted((i["seat"]["S"], i["status"]["S"]) for i in items) == [("student1", "ready"),
                                                                          ("student2", "released")]

    # AWS: once the execution has closed, the name is taken -> ExecutionAlreadyExists, handlers not run again
    with pytest.raises(ClientError) as closed:
        sfn.start_execution(stateMachineArn=machine, name=f"{p}-ok", input=ok_input)
    assert closed.value.response["Error"]["Code"] == "ExecutionAlreadyExists"
    time.sleep(0.3)
    assert calls.count("reserve", f"{p}-ok") == 3 and calls.count("finish", f"{p}-ok") == 1
    runs = sfn.list_executions(stateMachineArn=machine)["executions"]
    assert sorted(e["name"] for e in runs) == [f"{p}-bad", f"{p}-ok"]


def test_direct_invoke_by_name_and_arn(executing, clients):
    lam = clients["lambda"]
    name = f"wod{uuid.uuid4().hex[:6]}-echo"

    def echo(event, context):
        if event.get("boom"):
            raise HubUnavailable("hub down")
        return {"event": event, "function": context.function_name, "arn": context.invoked_function_arn}

    executing.register(name, echo)
    for function in (name, fn_arn(name)):
        response = lam.invoke(FunctionName=function, Payload=json.dumps({"a": 1}).encode())
        assert "FunctionError" not in response
        assert json.loads(response["Payload"].read()) == {"event": {"a": 1}, "function": name, "arn": fn_arn(name)}

    response = lam.invoke(FunctionName=name, Payload=b'{"boom": true}')
    assert response["FunctionError"] == "Unhandled"
    payload = json.loads(response["Payload"].read())
    assert (payload["errorType"], payload["errorMessage"]) == ("HubUnavailable", "hub down")


def test_unknown_function_is_named(executing, clients):
    sfn, lam = clients["stepfunctions"], clients["lambda"]
    missing = f"wod{uuid.uuid4().hex[:6]}-missing"
    with pytest.raises(ClientError) as direct:
        lam.invoke(FunctionName=missing, Payload=b"{}")
    assert direct.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert missing in direct.value.response["Error"]["Message"]

    definition = json.dumps({"StartAt": "Call",
                             "States": {"Call": {"Type": "Task", "Resource": fn_arn(missing), "End": True}}})
    machine = sfn.create_state_machine(name=f"{missing}-sm", definition=definition, roleArn=ROLE)["stateMachineArn"]
    run = sfn.start_execution(stateMachineArn=machine, name="only", input="{}")
    done = wait_done(sfn, run["executionArn"])
    assert done["status"] == "FAILED"
    # moto reports a Lambda API error as "Exception" (real AWS: Lambda.ResourceNotFoundException)
    assert done["error"] == "Exception"
    assert f"Function not found: {fn_arn(missing)}" in done["cause"]


def test_syntax_trees_are_built_one_at_a_time_beside_the_executions(embedded_aws):
    """Python 3.11 counts a syntax tree's depth per process: threads building two at once (the
    executions reading ASL strings, werkzeug's first request of a service, a traceback's carets) can
    fail each other with a SystemError (CPython gh-106905); the embedded AWS's process builds them one
    at a time, and every way of building one goes through that."""
    import ast
    import threading
    import traceback

    assert getattr(ast.parse, "one_at_a_time", False)
    errors: list[BaseException] = []

    def build(n: int) -> None:
        try:
            for i in range(300):
                assert ast.literal_eval(f'"seat-{n}-{i}\\u00e9"') == f"seat-{n}-{i}\u00e9"
                try:
                    {}["missing"][i]  # a traceback with carets to place
                except KeyError as exc:
                    traceback.format_exception(exc)
        except BaseException as exc:  # any failure of a thread is the test's
            errors.append(exc)

    threads = [threading.Thread(target=build, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
