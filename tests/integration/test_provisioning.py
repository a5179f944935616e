"""CREATE end to end on the local stack: SMTP order -> intake -> Step Functions (moto) -> a real JupyterHub.

Also the faults: the hub down (retries, then compensation), duplicate orders,
forged orders, and a scan proving the password exists nowhere but the email.
"""
from __future__ import annotations

import json
import re
import smtplib
import time
from datetime import UTC, datetime

import boto3
import pytest
import requests

from chalicelib.adapters.mail import to_mime
from chalicelib.domain.mail import Email
from chalicelib.domain.orders import SIGNATURE_HEADER, Order, sign
from tests.factory import write_workshop
from tests.hubtools import login, remove_linux_user
from tests.stack import LocalStack

ORDERS = "orders@backend.wod.local"


def register(stack, workshop, email):
    response = requests.post(f"{stack.app_url}/api/registrations", timeout=60, json={
        "workshop": workshop, "email": email, "first_name": "Ada", "last_name": "Lovelace", "company": "Engines",
        "accept_terms": True})
    assert response.status_code == 202, response.text
    return stack.registration(email)


def credentials(stack, email, timeout=90):
    message = stack.wait_for_message(lambda m: email in m["to"] and m["subject"].startswith("Your workshop is ready"),
                                     timeout=timeout)
    return message, re.search(r"Password:\s+(\S+)", message["text"]).group(1)


def aws(stack, service):
    return boto3.client(service, endpoint_url=stack.aws_url, region_name="us-east-1",
                        aws_access_key_id="local", aws_secret_access_key="local")


def executions(stack):
    sfn = aws(stack, "stepfunctions")
    machines = sfn.list_state_machines()["stateMachines"]
    return [e for m in machines for e in sfn.list_executions(stateMachineArn=m["stateMachineArn"])["executions"]]


def send_order(stack, order, key):
    body = order.body()
    email = Email(to=ORDERS, subject=order.subject, text=body.decode(), headers={SIGNATURE_HEADER: sign(body, key)})
    with smtplib.SMTP("127.0.0.1", stack.ports["WOD_SMTP_PORT"], timeout=30) as smtp:
        smtp.send_message(to_mime(email, "noreply@wod.local"))


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("prov")
    write_workshop(root / "workshops", "WKSHP-PROV", students={"prefix": "prov", "from": 1, "to": 3},
                   notebooks={"0-ReadMeFirst.ipynb": ["You are **{{ student_id }}** on {{ hub_url }}",
                                                      "{{ appliance_url }}"],
                              "9-Conclusion.ipynb": ["Bye {{ student_id }}"]},
                   appliance={"command": ["{python}", "-m", "http.server", "{port}"], "port_base": 19300})
    write_workshop(root / "workshops", "WKSHP-HOT", students={"prefix": "hot", "from": 1, "to": 2}, warm_pool=1)
    with LocalStack(root / "workshops", root / "state", tick_seconds=1) as running:
        yield running
    for name in ("prov1", "prov2", "prov3", "hot1", "hot2"):
        remove_linux_user(name)


def test_create_order_becomes_a_ready_student_that_can_log_in(stack):
    created = register(stack, "WKSHP-PROV", "ada@example.com")
    student = created["student"]
    started = time.monotonic()
    message, password = credentials(stack, "ada@example.com")
    print(f"register -> credentials email: {time.monotonic() - started:.1f} s")
    assert f"Student name: {student}" in message["text"]
    assert f"{stack.hub_url}/hub/login?next=" in message["text"]

    status = requests.get(stack.app_url + stack.participant_path(created["id"]), timeout=30).json()
    assert status["status"] == "active" and status["ends_at"]

    session, response = login(stack.hub_url, student, password)
    assert response.status_code == 200 and f"/user/{student}/" in response.url
    notebook = session.get(f"{stack.hub_url}/user/{student}/api/contents/0-ReadMeFirst.ipynb", timeout=30).json()
    sources = [cell["source"] for cell in notebook["content"]["cells"]]
    assert sources[0] == f"You are **{student}** on {stack.hub_url}"
    assert re.fullmatch(r"http://127\.0\.0\.1:1930[0-2]", sources[1])
    listing = session.get(f"{stack.hub_url}/user/{student}/api/contents/", timeout=30).json()
    assert {item["name"] for item in listing["content"]} >= {"0-ReadMeFirst.ipynb", "9-Conclusion.ipynb"}

    assert login(stack.hub_url, student, password + "x")[1].url.endswith("/hub/login")
    assert login(stack.hub_url, "prov3" if student != "prov3" else "prov2", password)[1].url.endswith("/hub/login")


def test_password_exists_only_in_the_email(stack):
    created = register(stack, "WKSHP-PROV", "grace@example.com")
    _, password = credentials(stack, "grace@example.com")
    dynamodb = aws(stack, "dynamodb")
    for table in dynamodb.list_tables()["TableNames"]:
        assert password not in json.dumps(dynamodb.scan(TableName=table)["Items"]), table
    sfn = aws(stack, "stepfunctions")
    for execution in executions(stack):
        history = sfn.get_execution_history(executionArn=execution["executionArn"])
        assert password not in json.dumps(history, default=str)
    for log in (stack.state_dir / "logs").glob("*.log"):
        assert password not in log.read_text(errors="replace"), log
    stored = dynamodb.get_item(TableName="wod-students", Key={"id": {"S": created["student"]}})["Item"]
    assert stored["password_hash"]["S"].startswith("pbkdf2_sha256$")


def test_duplicate_and_forged_orders_start_nothing(stack):
    created = register(stack, "WKSHP-PROV", "linus@example.com")
    credentials(stack, "linus@example.com")
    before = executions(stack)
    order = Order.new("CREATE", "WKSHP-PROV", created["student"], created["id"], time.time())
    send_order(stack, order, stack.secret("order_key/local").encode())  # a resend: new nonce, same registration
    send_order(stack, Order.new("CREATE", "WKSHP-PROV", "prov3", "forged-registration-00", time.time()), b"guess")
    deadline = time.monotonic() + 180  # the intake takes both orders in the background (slowly beside a busy suite)
    while True:
        log = stack.log_file.read_text()
        if ("duplicate" in log or "ExecutionAlreadyExists" in log) and "bad_signature" in log:
            break
        assert time.monotonic() < deadline, "the intake did not refuse both orders within 180 s"
        time.sleep(0.2)
    assert len(executions(stack)) == len(before)


def test_hub_down_retries_then_releases_the_seat_and_apologises(tmp_path):
    write_workshop(tmp_path / "workshops", "WKSHP-DOWN", seats=1)
    # the hub never answers: retried until the provisioning deadline (the readiness time here, 20 s)
    unreachable = {"WOD_HUB_API_URL": "http://127.0.0.1:9", "WOD_STUCK_MINUTES": "1", "WOD_READY_TIMEOUT_SECONDS": "20"}
    with LocalStack(tmp_path / "workshops", tmp_path / "state", env=unreachable) as down:
        created = register(down, "WKSHP-DOWN", "kay@example.com")
        down.wait_for_message(lambda m: m["subject"].startswith("We could not prepare"), timeout=90)
        status = requests.get(down.app_url + down.participant_path(created["id"]), timeout=30).json()
        assert status["status"] == "failed"
        workshop = requests.get(f"{down.app_url}/api/workshops", timeout=30).json()[0]
        assert workshop["seats_free"] == 1
        history = aws(down, "stepfunctions").get_execution_history(executionArn=executions(down)[0]["executionArn"])
        failures = [e for e in history["events"] if e["type"] == "LambdaFunctionFailed"]
        assert len(failures) >= 3  # retried before compensating
        assert executions(down)[0]["status"] == "SUCCEEDED"  # a handled failure: compensated, counted
        again = register(down, "WKSHP-DOWN", "kay@example.com")  # the seat and the email are free again
        assert again["status"] in ("pending", "provisioning") and again["id"] != created["id"]


def hub_server(stack: LocalStack, student: str) -> dict:
    """The student's server as the hub's API describes it (with the platform's service token)."""
    response = requests.get(f"{stack.hub_url}/hub/api/users/{student}", timeout=30,
                            headers={"Authorization": f"token {stack.secret('hub_token')}"})
    assert response.status_code == 200, response.text
    return response.json()["servers"][""]


def test_a_warm_student_is_ready_at_once_and_can_log_in(stack):
    students = aws(stack, "dynamodb")
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        warm = [i["id"]["S"] for i in students.scan(TableName="wod-students")["Items"] if i.get("warm", {}).get("BOOL")]
        if warm:
            break
        time.sleep(1)
    assert warm, "the warm pool was never filled"
    registered = datetime.now(UTC)
    created = register(stack, "WKSHP-HOT", "hot@example.com")
    assert created["student"] == warm[0]
    _, password = credentials(stack, "hot@example.com", timeout=30)
    server = hub_server(stack, created["student"])  # the participant got the server warmed before they came
    assert server["ready"] and datetime.fromisoformat(server["started"]) < registered, server
    session, response = login(stack.hub_url, created["student"], password)
    assert response.status_code == 200 and f"/user/{created['student']}/" in response.url
