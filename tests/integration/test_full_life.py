"""A whole life on the local stack with a real JupyterHub: CREATE -> active -> reminder -> extend ->
(no more extension once someone waits) -> expiry -> login refused -> cleanup with completion ->
thank-you -> the seat to the waitlisted participant, in a fresh home.

Time is moved by making the registration due in the embedded DynamoDB; the stack's own timer
(every second here) runs the time checks.
"""
from __future__ import annotations

import os
import pwd
import re
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import nbformat
import pytest
import requests

from tests.factory import write_workshop
from tests.hubtools import login, remove_linux_user
from tests.stack import LocalStack

WORKSHOP = "WKSHP-LIFE"
PYFMT = "%Y-%m-%dT%H:%M:%S.%f+0000"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("life")
    folder = write_workshop(root / "workshops", WORKSHOP, students={"prefix": "life", "from": 1, "to": 1},
                            duration=120)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("Hi {{ student_id }}"), nbformat.v4.new_code_cell("x = 1"),
                nbformat.v4.new_code_cell("y = 2")]
    nbformat.write(nb, str(folder / "1-Lab.ipynb"))
    write_workshop(root / "workshops", "WKSHP-FLAKY", students={"prefix": "flaky", "from": 1, "to": 1})
    with LocalStack(root / "workshops", root / "state", tick_seconds=1) as running:
        yield running
    remove_linux_user("life1")
    remove_linux_user("flaky1")


def register(stack, email):
    response = requests.post(f"{stack.app_url}/api/registrations", timeout=60, json={
        "workshop": WORKSHOP, "email": email, "first_name": "Ada", "last_name": "L", "company": "C",
        "accept_terms": True})
    assert response.status_code == 202, response.text
    return stack.registration(email)


def status(stack, registration_id):
    return requests.get(stack.app_url + stack.participant_path(registration_id), timeout=30).json()


def make_due(stack, registration_id, **fields):
    """Move a registration's times as if the clock had advanced."""
    table = boto3.resource("dynamodb", endpoint_url=stack.aws_url, region_name="us-east-1",
                           aws_access_key_id="local", aws_secret_access_key="local").Table("wod-customers")
    now = datetime.now(UTC)
    values = {name: (now + offset).strftime(PYFMT) for name, offset in fields.items()}
    table.update_item(Key={"id": registration_id},
                      UpdateExpression="SET " + ", ".join(f"#{k} = :{k}" for k in values),
                      ExpressionAttributeNames={f"#{k}": k for k in values},
                      ExpressionAttributeValues={f":{k}": v for k, v in values.items()})


def test_a_whole_life(stack):
    first = register(stack, "ada@example.com")
    ready = stack.wait_for_message(lambda m: "ada@example.com" in m["to"] and m["subject"].startswith("Your workshop"),
                                   timeout=90)
    password = re.search(r"Password:\s+(\S+)", ready["text"]).group(1)
    session, response = login(stack.hub_url, "life1", password)
    assert "/user/life1/" in response.url

    # the participant runs one of the two code cells of the lab
    base = f"{stack.hub_url}/user/life1/api/contents/1-Lab.ipynb"
    xsrf = {"X-XSRFToken": session.cookies.get("_xsrf", path="/user/life1/") or ""}
    model = session.get(base, timeout=30).json()
    model["content"]["cells"][1]["execution_count"] = 1
    assert session.put(base, json={"type": "notebook", "format": "json", "content": model["content"]},
                       headers=xsrf, timeout=30).status_code == 200

    make_due(stack, first["id"], due_at=timedelta(seconds=-1))
    stack.wait_for_message(lambda m: m["subject"].startswith("One hour left"), timeout=90)
    before = datetime.fromisoformat(status(stack, first["id"])["ends_at"])
    extended = requests.post(stack.app_url + stack.participant_path(first["id"]) + "/extend", json={}, timeout=30)
    assert extended.status_code == 200
    assert datetime.fromisoformat(extended.json()["ends_at"]) - before == timedelta(minutes=30)

    waiting = register(stack, "bob@example.com")  # the workshop is full: bob waits
    assert waiting["status"] == "waitlisted"
    refused = requests.post(stack.app_url + stack.participant_path(first["id"]) + "/extend", json={}, timeout=30)
    assert refused.status_code == 409 and "waiting for a seat" in refused.json()["message"]

    make_due(stack, first["id"], ends_at=timedelta(seconds=-1), due_at=timedelta(seconds=-1))
    thanks = stack.wait_for_message(lambda m: m["subject"].startswith("Thank you"), timeout=90)
    assert "50%" in thanks["text"]  # one of the lab's two code cells ran
    assert login(stack.hub_url, "life1", password)[1].url.endswith("/hub/login")
    done = status(stack, first["id"])
    assert (done["status"], done["completion"]) == ("finished", 50.0)

    promoted = stack.wait_for_message(
        lambda m: "bob@example.com" in m["to"] and m["subject"].startswith("Your workshop"), timeout=90)
    bob_password = re.search(r"Password:\s+(\S+)", promoted["text"]).group(1)
    assert status(stack, waiting["id"])["status"] == "active"
    session, response = login(stack.hub_url, "life1", bob_password)
    listing = session.get(f"{stack.hub_url}/user/life1/api/contents/1-Lab.ipynb", timeout=30).json()
    assert all(cell.get("execution_count") is None for cell in listing["content"]["cells"])  # a fresh home


def hub_pid(stack) -> int:
    """The JupyterHub process of this stack (its environment names the stack's state dir)."""
    wanted = f"WOD_HUB_STATE_DIR={stack.state_dir / 'hub'}".encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if b"jupyterhub" in (entry / "cmdline").read_bytes() and wanted in (entry / "environ").read_bytes():
                    return int(entry.name)
            except OSError:
                continue
    raise AssertionError("no JupyterHub process for this stack")


def test_cleanup_waits_out_a_hub_outage_and_frees_the_seat(stack):
    response = requests.post(f"{stack.app_url}/api/registrations", timeout=60, json={
        "workshop": "WKSHP-FLAKY", "email": "carol@example.com", "first_name": "Carol", "last_name": "K",
        "company": "C", "accept_terms": True})
    assert response.status_code == 202, response.text
    created = stack.registration("carol@example.com")
    stack.wait_for_message(lambda m: "carol@example.com" in m["to"] and m["subject"].startswith("Your workshop"),
                           timeout=90)
    pid = hub_pid(stack)
    workers_log = stack.part_log("workers")
    timeouts = workers_log.read_text(errors="replace").count("did not answer")
    os.kill(pid, signal.SIGSTOP)  # the hub hangs: its API answers nothing
    try:
        assert requests.post(stack.app_url + stack.participant_path(created["id"]) + "/end", json={},
                             timeout=30).status_code == 200
        deadline = time.monotonic() + 120  # the teardown's call to the hub times out, to be retried
        while workers_log.read_text(errors="replace").count("did not answer") == timeouts:
            assert time.monotonic() < deadline, "no teardown attempt met the hung hub"
            time.sleep(0.5)
        assert status(stack, created["id"])["status"] == "expiring"
    finally:
        os.kill(pid, signal.SIGCONT)
    stack.wait_for_message(lambda m: "carol@example.com" in m["to"] and m["subject"].startswith("Thank you"),
                           timeout=120)
    assert status(stack, created["id"])["status"] == "finished"
    deadline = time.monotonic() + 30  # the catalog shows the workshops as they were a few seconds ago
    while (seats := {w["id"]: w for w in requests.get(f"{stack.app_url}/api/workshops", timeout=30).json()}
           )["WKSHP-FLAKY"]["seats_free"] != 1:
        assert time.monotonic() < deadline, seats["WKSHP-FLAKY"]
        time.sleep(0.5)
    with pytest.raises(KeyError):
        pwd.getpwnam("flaky1")  # the teardown finally ran: account and home are gone


def test_a_hub_that_dies_is_started_again(stack):
    os.kill(hub_pid(stack), signal.SIGKILL)
    deadline = time.monotonic() + 90
    while "hub is back." not in stack.output() and time.monotonic() < deadline:
        time.sleep(1)
    assert "hub (JupyterHub) stopped unexpectedly (exit code 1); restarting it" in stack.output()
    assert "hub is back." in stack.output()
    assert "JupyterHub exited with code -9" in (stack.state_dir / "logs" / "hub.log").read_text()
    assert requests.get(f"{stack.hub_url}/hub/api/", timeout=10).status_code == 200
