"""No student can keep another out of the hub.

* Students cannot reach the hub's own port (their servers talk to the hub through its proxy), so
  none can hand the hub a ``X-Forwarded-For`` of their own: 105 failed logins naming 127.0.0.9,
  sent from a student's kernel straight to the hub, once blocked the owner at 127.0.0.9.
* Failed logins slow the next attempts down (per client and name, per name, per client) and never
  refuse a correct password: after 20 wrong passwords for one name, each with a new forwarding
  header, from the owner's own address (in local mode every participant is 127.0.0.1), the owner
  logs in.

A real JupyterHub behind configurable-http-proxy; clients are loopback addresses."""
from __future__ import annotations

import json
import secrets

import pytest

from tests.hubtools import login, new_name, run_in_kernel, running_hub

pytestmark = pytest.mark.timeout(400)
MAX_DELAY = 1.0  # seconds: the longest wait, short for the test (WOD_HUB_LOGIN_MAX_DELAY)


@pytest.fixture(scope="module")
def hub(embedded_aws, tmp_path_factory):
    with running_hub(embedded_aws, tmp_path_factory.mktemp("lockout"),
                     env={"WOD_HUB_LOGIN_MAX_DELAY": str(MAX_DELAY)}) as started:
        yield started


def student(hub, server: bool = False) -> tuple[str, str]:
    name, password = new_name(), secrets.token_urlsafe(12)
    hub.created.append(name)
    hub.api.create_user(name)
    hub.students.put(name, password)
    if server:
        hub.api.start_server(name)
        hub.api.wait_ready(name)
    return name, password


def refused(response) -> bool:
    return response.status_code == 403 and "Invalid username or password" in response.text


def logged_in(response, name: str) -> bool:
    landed = response.url
    return response.status_code == 200 and (f"/user/{name}/" in landed or f"/spawn-pending/{name}" in landed)


FORGE = r"""
import json, re, socket, urllib.parse
def forged_login(name):
    with socket.create_connection(("127.0.0.1", HUB_PORT), timeout=10) as sock:
        page = b"GET /hub/login HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        sock.sendall(page)
        answer = b"".join(iter(lambda: sock.recv(65536), b""))
    xsrf = re.search(rb"_xsrf=([^;]+);", answer).group(1).decode()
    body = urllib.parse.urlencode({"username": name, "password": "guess", "_xsrf": xsrf}).encode()
    with socket.create_connection(("127.0.0.1", HUB_PORT), timeout=10) as sock:
        sock.sendall(b"POST /hub/login HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 127.0.0.9\r\nCookie: _xsrf=" +
                     xsrf.encode() + b"\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: " +
                     str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
        sock.recv(100)
try:
    for n in range(105):
        forged_login(VICTIM if n < 20 else f"nobody{n}")
    outcome = "sent"
except OSError as exc:
    outcome = type(exc).__name__
print("RESULT:" + json.dumps(outcome))
"""


def test_a_student_cannot_forge_forwarding_headers_to_lock_out_the_owner(hub):
    victim, victim_password = student(hub)
    attacker, attacker_password = student(hub, server=True)
    session, response = login(hub.url, attacker, attacker_password)
    assert logged_in(response, attacker), response.url
    code = f"HUB_PORT = {hub.api_port}\nVICTIM = {victim!r}\n" + FORGE
    outcome = json.loads(run_in_kernel(hub, session, attacker, code, timeout=240).split("RESULT:", 1)[1])
    assert outcome == "ConnectionRefusedError", f"a student reached the hub's own port ({outcome})"
    _, response = login(hub.url, victim, victim_password, source="127.0.0.9")
    assert logged_in(response, victim), f"the owner was locked out: {response.url}"


def test_failed_logins_slow_down_and_never_refuse_the_owner(hub):
    name, password = student(hub)
    for attempt in range(20):  # one address, a new forwarding header each time
        _, response = login(hub.url, name, f"guess-{attempt}", source="127.0.0.2",
                            headers={"X-Forwarded-For": f"198.51.100.{attempt}", "X-Real-Ip": "198.51.100.1"})
        assert refused(response)
    _, response = login(hub.url, name, password, source="127.0.0.2")  # the owner, from the same address
    assert logged_in(response, name), f"the owner was refused: {response.url}"
    log = hub.log_file.read_text()
    assert f"WoD login ok for {name} from 127.0.0.2" in log
    waited = [line for line in log.splitlines() if f"WoD login for {name} from 127.0.0.2 waits" in line]
    assert len(waited) >= 15, f"only {len(waited)} of 20 wrong passwords (and the owner's) were slowed down"
