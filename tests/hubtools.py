"""Acting as a participant at a real JupyterHub, and cleaning up the Linux users it creates."""
from __future__ import annotations

import os
import pwd
import secrets
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
import requests

from chalicelib.domain.passwords import hash_password
from local.hub import HUB_VENV, NODE_BIN, Hub


class _FromAddress(requests.adapters.HTTPAdapter):
    """Connections from one loopback address (127.0.0.2 ...): another client, as the proxy sees it."""

    def __init__(self, address: str):
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


def login(hub_url: str, name: str, password: str, source: str | None = None,
          headers: dict[str, str] | None = None) -> tuple[requests.Session, requests.Response]:
    """A participant at the login page: GET it (xsrf cookie), POST the form, follow redirects;
    from the loopback address ``source`` when given."""
    session = requests.Session()
    if source:
        session.mount("http://", _FromAddress(source))
    session.headers.update(headers or {})
    page = session.get(f"{hub_url}/hub/login", timeout=30)
    assert page.status_code == 200
    assert "from your Workshops-on-Demand welcome email" in page.text  # the announcement
    xsrf = session.cookies.get("_xsrf", path="/hub/") or session.cookies.get("_xsrf")
    response = session.post(f"{hub_url}/hub/login", timeout=60,
                            data={"username": name, "password": password, "_xsrf": xsrf})
    return session, response


def processes_of(uid: int) -> list[int]:
    """Every process running with ``uid`` as its real, effective or saved uid."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = (entry / "status").read_text()
            except OSError:
                continue
            uids = next((line.split()[1:] for line in status.splitlines() if line.startswith("Uid:")), [])
            if str(uid) in uids:
                found.append(int(entry.name))
    return found


def remove_linux_user(name: str) -> None:
    """A student account a test's hub left (its home image unmounted first)."""
    try:
        account = pwd.getpwnam(name)
    except KeyError:
        return
    for _ in range(50):
        if not processes_of(account.pw_uid):
            break
        subprocess.run(["pkill", "-KILL", "-U", str(account.pw_uid)], check=False)
        time.sleep(0.05)
    home = Path(account.pw_dir)
    while f" {home} " in Path("/proc/self/mountinfo").read_text():
        if subprocess.run(["umount", str(home)], capture_output=True).returncode:
            subprocess.run(["umount", "--lazy", str(home)], capture_output=True)
    subprocess.run(["userdel", "--remove", "--force", name], check=False, capture_output=True)
    if home.is_dir() and home.stat().st_uid == 0 and not any(home.iterdir()):
        home.rmdir()  # the home image's mount point


PASSWORD_ITERATIONS = 20_000  # the platform's format, cheaper than production's count


def _missing() -> str | None:
    if not (HUB_VENV / "bin" / "jupyterhub").exists():
        return f"{HUB_VENV}/bin/jupyterhub missing (create .venv-hub, see infra/jupyterhub/requirements.txt)"
    if not (NODE_BIN / "configurable-http-proxy").exists():
        return f"{NODE_BIN}/configurable-http-proxy missing (npm install)"
    if os.geteuid() != 0:
        return "the isolated spawner creates Linux users: run as root"
    return None


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+0000")


def notebook(text: str) -> dict:
    return {"cells": [{"cell_type": "markdown", "metadata": {}, "source": text}],
            "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


class Api:
    """The bits of the platform's hub client these tests need (service token)."""

    def __init__(self, hub: Hub):
        self.hub = hub
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"token {hub.token}"

    def create_user(self, name: str) -> None:
        response = self.http.post(f"{self.hub.api_url}/users/{name}", timeout=30)
        assert response.status_code == 201, response.text

    def start_server(self, name: str) -> None:
        response = self.http.post(f"{self.hub.api_url}/users/{name}/server", timeout=90)
        assert response.status_code in (201, 202), response.text

    def wait_ready(self, name: str, timeout: float = 170) -> None:  # the hub waits 180 s (start_timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            server = self.http.get(f"{self.hub.api_url}/users/{name}", timeout=10).json()["servers"].get("", {})
            if server.get("ready"):
                return
            time.sleep(0.25)
        raise TimeoutError(f"server of {name} not ready after {timeout}s")

    def put(self, name: str, path: str, model: dict) -> None:
        response = self.http.put(f"{self.hub.url}/user/{name}/api/contents/{path}", json=model, timeout=30)
        assert response.status_code in (200, 201), response.text

    def delete_user(self, name: str) -> None:
        """As the platform's cleanup does: the server stopped (and waited for), then the user."""
        from chalicelib.adapters.hub import HubClient

        HubClient(self.hub.url, self.hub.token, timeout=30).delete_user(name)


class Students:
    """Student items in moto's DynamoDB, as the platform writes them."""

    def __init__(self, endpoint: str, table: str):
        self.table = table
        self.client = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
        self.client.create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                                 AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                                 KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}])

    def put(self, name: str, password: str, status: str = "active", expires_in=timedelta(hours=1)) -> None:
        self.client.put_item(TableName=self.table, Item={
            "id": {"S": name}, "status": {"S": status}, "workshop": {"S": "api101"},
            "password_hash": {"S": hash_password(password, PASSWORD_ITERATIONS)},
            "expires_at": {"S": utc_text(datetime.now(UTC) + expires_in)}})


@contextmanager
def running_hub(embedded_aws, base: Path, env: dict[str, str] | None = None) -> Iterator[Hub]:
    """A real JupyterHub (isolated spawner, its proxy) against a students table in the embedded AWS;
    the users it made (``hub.created``) are removed with their Linux accounts afterwards."""
    reason = _missing()
    if reason:  # `make test` installs all of them: a missing one is a broken setup, never a skip
        raise RuntimeError(f"the JupyterHub tests need {reason}")
    table = f"hub-students-{uuid.uuid4().hex[:8]}"
    students = Students(embedded_aws.endpoint, table)
    port, api_port, proxy_api_port = free_ports(3)
    hub = Hub(state_dir=base / "state", log_file=base / "hub.log", token=secrets.token_hex(32),
              port=port, api_port=api_port, proxy_api_port=proxy_api_port, aws_endpoint=embedded_aws.endpoint,
              students_table=table, spawner="isolated", region="us-east-1",
              env={"WOD_HUB_BLOCKED_PORTS": str(embedded_aws.port), **(env or {})})
    hub.blocked_port = embedded_aws.port
    started = time.monotonic()
    hub.start(timeout=60)
    print(f"hub started in {time.monotonic() - started:.1f}s, log {hub.log_file}")
    hub.students = students
    hub.api = Api(hub)
    hub.created = []
    try:
        yield hub
    finally:
        for name in hub.created:
            try:
                hub.api.delete_user(name)
            except Exception as exc:  # the hub is stopped next and the accounts removed: say it, go on
                print(f"teardown: {name} not deleted through the hub: {exc}")
        hub.stop()
        for name in hub.created:
            remove_linux_user(name)


@pytest.fixture(scope="module")
def hub(embedded_aws, tmp_path_factory):
    """A real JupyterHub for a test module (:func:`running_hub`)."""
    with running_hub(embedded_aws, tmp_path_factory.mktemp("hub")) as started:
        yield started


def new_name() -> str:
    return f"student{secrets.randbelow(10**6):06d}t"


def open_session(hub_url: str, name: str, password: str) -> requests.Session:
    """Log in without following redirects to the server: a hub session on /hub/home."""
    session = requests.Session()
    session.get(f"{hub_url}/hub/login", timeout=30)
    response = session.post(f"{hub_url}/hub/login?next=/hub/home", allow_redirects=False, timeout=30,
                            data={"username": name, "password": password, "_xsrf": session.cookies.get("_xsrf")})
    assert response.status_code == 302 and response.headers["Location"].endswith("/hub/home")
    assert session.get(f"{hub_url}/hub/home", allow_redirects=False, timeout=10).status_code == 200
    return session


class KernelError(RuntimeError):
    pass


def execute(ws, name: str, code: str, timeout: float, store_history: bool = False) -> str:
    """Run ``code`` on an open kernel websocket as ``name``; its stdout (KernelError if it raised)."""
    import json

    msg_id = uuid.uuid4().hex
    ws.send(json.dumps({
        "header": {"msg_id": msg_id, "username": name, "session": uuid.uuid4().hex, "msg_type": "execute_request",
                   "version": "5.3", "date": datetime.now(UTC).isoformat()},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": code, "silent": False, "store_history": store_history, "user_expressions": {},
                    "allow_stdin": False, "stop_on_error": True}}))
    # The reply (shell) and the output (iopub) travel apart: the output is complete once the
    # kernel reports itself idle for this request, which may come after the reply.
    out, replied, idle, deadline = [], False, False, time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = json.loads(ws.recv())
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            raise KernelError("kernel error: " + "\n".join(msg["content"]["traceback"]))
        elif msg["msg_type"] == "execute_reply":
            replied = True
        elif msg["msg_type"] == "status" and msg["content"].get("execution_state") == "idle":
            idle = True
        if replied and idle:
            return "".join(out)
    raise TimeoutError("no execute_reply" if not replied else "the kernel never went idle")


def run_in_kernel(hub: Hub, session: requests.Session, name: str, code: str, timeout: float = 30) -> str:
    """Start a kernel on ``name``'s server with that session, execute ``code`` over the kernel
    websocket, return its stdout."""
    import websocket

    base = f"{hub.url}/user/{name}"
    xsrf = session.cookies.get("_xsrf", path=f"/user/{name}/")
    assert xsrf, f"no _xsrf cookie for /user/{name}/: {session.cookies}"
    kernel = session.post(f"{base}/api/kernels", json={"name": "python3"}, headers={"X-XSRFToken": xsrf}, timeout=30)
    assert kernel.status_code == 201, kernel.text
    kernel_id = kernel.json()["id"]
    url = f"{base}/api/kernels/{kernel_id}/channels?session_id={uuid.uuid4().hex}"
    cookie = session.prepare_request(requests.Request("GET", url)).headers["Cookie"]
    ws = websocket.create_connection(url.replace("http://", "ws://"), header=[f"Cookie: {cookie}"], timeout=timeout)
    try:
        return execute(ws, name, code, timeout)
    finally:
        ws.close()
        session.delete(f"{base}/api/kernels/{kernel_id}", headers={"X-XSRFToken": xsrf}, timeout=30)


# Run as a user: try each (host, port) of argv[1] (JSON) and print what happened to each.
CONNECT = """
import json, socket, sys
found = []
for host, port in json.loads(sys.argv[1]):
    try:
        socket.create_connection((host, port), timeout=5).close()
        found.append("connected")
    except OSError as error:
        found.append(type(error).__name__)
print(json.dumps(found))
"""
