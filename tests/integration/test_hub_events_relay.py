"""The hub's relay of notebook events (infra/jupyterhub/wod_events.py) in a real JupyterHub: a signed-in
student's batch reaches the platform signed and named as them; a body over 64 KB is refused before it
is read, whether its length is declared or it comes in chunks; JSON nested too deeply is a 400, not a
500."""
from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from tests.hubtools import new_name, open_session, running_hub

pytestmark = pytest.mark.timeout(180)
EVENTS_KEY = secrets.token_urlsafe(32)


class Platform:
    """Stands in for ``POST /api/events``: keeps what the relay sent, answers 200."""

    def __init__(self):
        platform = self
        self.received: list[tuple[bytes, str]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                platform.received.append((body, self.headers.get("X-WOD-Signature", "")))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "13")
                self.end_headers()
                self.wfile.write(b'{"taken": 1} ')

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/events"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def relay(embedded_aws, tmp_path_factory):
    platform = Platform()
    try:
        with running_hub(embedded_aws, tmp_path_factory.mktemp("relay-hub"),
                         env={"WOD_EVENTS_URL": platform.url, "WOD_EVENTS_KEY": EVENTS_KEY}) as hub:
            name, password = new_name(), secrets.token_urlsafe(12)
            hub.created.append(name)
            hub.api.create_user(name)
            hub.students.put(name, password)
            session = open_session(hub.url, name, password)
            yield hub, platform, name, session
    finally:
        platform.close()


def post(hub, session, body: bytes):
    return session.post(f"{hub.url}/hub/api/wod/events", data=body, timeout=30,
                        headers={"Content-Type": "application/json", "X-XSRFToken": session.cookies.get("_xsrf")})


def raw(hub, session, head: str, body: bytes = b"", timeout: float = 15) -> bytes:
    """Send ``head`` (request line and headers, without the blank line) and ``body`` on a socket of
    our own; what came back before the hub closed or ``timeout`` passed."""
    address = urlsplit(hub.url)
    cookies = "; ".join(f"{c.name}={c.value}" for c in session.cookies)
    with socket.create_connection((address.hostname, address.port), timeout=timeout) as sock:
        xsrf = session.cookies.get("_xsrf")
        sock.sendall((f"{head}\r\nHost: {address.netloc}\r\nCookie: {cookies}\r\n"
                      f"X-XSRFToken: {xsrf}\r\nContent-Type: application/json\r\n\r\n").encode())
        answer = b""
        deadline = time.monotonic() + timeout
        try:
            for offset in range(0, len(body), 16 * 1024):
                sock.sendall(body[offset:offset + 16 * 1024])
        except OSError:
            pass  # closed on us mid-body: what it answered is read below
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except (TimeoutError, OSError):
                break
            if not chunk:
                break
            answer += chunk
            if b"\r\n\r\n" in answer:
                break
        return answer


def test_a_students_batch_reaches_the_platform_signed_and_named_by_the_hub(relay):
    hub, platform, name, session = relay
    before = len(platform.received)
    response = post(hub, session, json.dumps({"student": "someone-else", "source": "kernel-1",
                                              "events": [{"kind": "hand", "at": time.time()}]}).encode())
    assert response.status_code == 200, response.text
    body, signature = platform.received[before]
    data = json.loads(body)
    assert data["student"] == name and data["source"] == "kernel-1"  # the hub names the student itself
    # signed with the location's events key, not the hub's own token (which the platform's API never holds)
    assert signature == "v1=" + hmac.new(EVENTS_KEY.encode(), body, hashlib.sha256).hexdigest()


def test_a_body_over_64_kb_is_refused_before_it_is_read(relay):
    hub, platform, name, session = relay
    before = len(platform.received)
    started = time.monotonic()
    # 10 MB declared, 128 KB of it sent: the answer comes without the rest (the proxy passes the
    # headers on with the first bytes of the body)
    declared = raw(hub, session, "POST /hub/api/wod/events HTTP/1.1\r\nContent-Length: 10000000", b" " * 131072)
    # 413 from the hub, or 503 from its proxy when the hub closed the connection while the proxy was
    # still passing the body on: refused either way, and at once
    assert declared.startswith((b"HTTP/1.1 413", b"HTTP/1.1 503")), declared[:200]
    assert time.monotonic() - started < 10
    chunked_body = b"".join(b"%x\r\n%s\r\n" % (16384, b" " * 16384) for _ in range(16)) + b"0\r\n\r\n"
    chunked = raw(hub, session, "POST /hub/api/wod/events HTTP/1.1\r\nTransfer-Encoding: chunked", chunked_body)
    assert not chunked.startswith(b"HTTP/1.1 200"), chunked[:200]  # cut off at 64 KB, never relayed
    assert len(platform.received) == before


def test_json_nested_too_deeply_is_a_clear_400(relay):
    hub, platform, name, session = relay
    response = post(hub, session, b"[" * 60000)
    assert response.status_code == 400 and "JSON" in response.text
