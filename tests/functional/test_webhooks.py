"""Webhooks against a real HTTP receiver: signed deliveries, retries with backoff, a delivery log,
one delivery per hook that follows the event."""
from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import socket
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from chalicelib.adapters import webhooks as http
from chalicelib.services import time_checks as lifecycle
from tests.admintools import activate, api, callback, participant
from tests.stack import free_port

WORKSHOP = "WKSHP-HOOK"


class Receiver:
    """A local HTTP server that records every POST and answers with the scripted status codes."""

    def __init__(self):
        self.received: list[dict] = []
        self.answers: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append({"path": self.path, "headers": self.headers, "body": body})  # any case
                self.send_response(receiver.answers.pop(0) if receiver.answers else 200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self, path: str = "/") -> list[str]:
        return [r["headers"]["X-WOD-Event"] for r in self.received if r["path"] == path]


@pytest.fixture
def receiver():
    running = Receiver()
    yield running
    running.server.shutdown()
    running.server.server_close()


@pytest.fixture
def workshop(sync, recording):
    sync((WORKSHOP, {"seats": 1, "duration": 120}))


def hook(client, platform, url, events=None):
    status, created = api(client, platform, "POST", "/api/admin/webhooks",
                          {"url": url} | ({"events": events} if events else {}))
    assert status == 201, created
    return created


def deliveries(client, platform, hook_id):
    status, detail = api(client, platform, "GET", f"/api/admin/webhooks/{hook_id}")
    assert status == 200
    return detail["deliveries"]


def verified(received: dict, secret: str) -> dict:
    """What a receiver does: check the signature over timestamp and body, then parse."""
    headers = received["headers"]
    expected = "sha256=" + hmac.new(secret.encode(), headers["X-WOD-Timestamp"].encode() + b"." + received["body"],
                                    hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-WOD-Signature"], expected)
    return json.loads(received["body"])


def test_a_delivery_is_signed_with_the_secret_given_at_creation(client, platform, workshop, receiver):
    created = hook(client, platform, receiver.url + "/")
    registered = participant(platform, WORKSHOP, "zoe@example.com", first="Zoë")
    assert receiver.received == []  # queued only: nothing is sent in the participant's request
    assert lifecycle.tick(platform)["webhooks"] == 1
    [got] = receiver.received
    body = verified(got, created["secret"])
    assert body["event"] == "registered" and got["headers"]["X-WOD-Event"] == "registered"
    assert {k: body["registration"][k] for k in ("id", "email", "first_name", "status", "workshop")} == {
        "id": registered["id"], "email": "zoe@example.com", "first_name": "Zoë", "status": "pending",
        "workshop": WORKSHOP}
    assert got["headers"]["Content-Type"] == "application/json"
    [log] = deliveries(client, platform, created["id"])
    assert log["id"] == got["headers"]["X-WOD-Delivery"]
    assert (log["status"], log["attempts"], log["last_code"], log["next_attempt_at"]) == ("delivered", 1, 200, None)
    tampered = dict(got, body=got["body"].replace(b"zoe@", b"eve@"))
    with pytest.raises(AssertionError):
        verified(tampered, created["secret"])


def test_a_failing_receiver_is_retried_with_backoff(client, platform, workshop, receiver, clock):
    created = hook(client, platform, receiver.url + "/", ["registered"])
    receiver.answers = [500, 503]
    participant(platform, WORKSHOP, "a@example.com")
    lifecycle.tick(platform)
    [log] = deliveries(client, platform, created["id"])
    assert (log["status"], log["attempts"], log["last_code"]) == ("pending", 1, 500)
    assert log["next_attempt_at"] == (clock() + timedelta(minutes=1)).isoformat()
    assert lifecycle.tick(platform)["webhooks"] == 0  # not due yet
    clock.advance(minutes=1)
    assert lifecycle.tick(platform)["webhooks"] == 1
    clock.advance(minutes=1)
    assert lifecycle.tick(platform)["webhooks"] == 0  # the second wait is 2 minutes
    clock.advance(minutes=1)
    assert lifecycle.tick(platform)["webhooks"] == 1
    [log] = deliveries(client, platform, created["id"])
    assert (log["status"], log["attempts"], log["last_code"], log["last_error"]) == ("delivered", 3, 200, None)
    assert len({r["headers"]["X-WOD-Delivery"] for r in receiver.received}) == 1  # the same delivery each time
    assert [verified(r, created["secret"])["event"] for r in receiver.received] == ["registered"] * 3


def test_an_unreachable_receiver_is_given_up_after_six_attempts(client, platform, workshop, clock):
    created = hook(client, platform, f"http://127.0.0.1:{free_port()}/gone", ["registered"])
    participant(platform, WORKSHOP, "a@example.com")
    tried = 0
    for wait in (0, 1, 2, 4, 8, 16, 32):
        clock.advance(minutes=wait)
        tried += lifecycle.tick(platform)["webhooks"]
    [log] = deliveries(client, platform, created["id"])
    assert tried == 6
    assert (log["status"], log["attempts"], log["last_code"], log["next_attempt_at"]) == ("failed", 6, None, None)
    assert "Connection refused" in log["last_error"] or "URLError" in log["last_error"]


def test_each_hook_gets_the_events_it_follows(client, platform, workshop, receiver, clock):
    every = hook(client, platform, receiver.url + "/every")
    hook(client, platform, receiver.url + "/ends", ["finished", "failed"])
    seated = participant(platform, WORKSHOP, "a@example.com")
    waiting = participant(platform, WORKSHOP, "b@example.com")
    activate(client, platform, seated)
    api(client, platform, "POST", f"/api/admin/registrations/{seated['id']}/extend")
    clock.advance(minutes=90)  # one hour before the (extended) end
    lifecycle.tick(platform)
    api(client, platform, "POST", f"/api/admin/registrations/{seated['id']}/end")
    callback(client, platform, {"registration": seated["id"], "student": seated["student"], "outcome": "cleaned",
                                "completion": 50})  # the seat goes to the waitlisted participant
    clock.advance(minutes=11)  # whose provisioning never reports: stuck, failed
    lifecycle.tick(platform)
    lifecycle.tick(platform)
    assert receiver.events("/every") == ["registered", "registered", "provisioned", "extended", "reminder_sent",
                                         "finished", "failed"]
    assert receiver.events("/ends") == ["finished", "failed"]
    last = json.loads(receiver.received[-1]["body"])
    assert last["registration"]["id"] == waiting["id"] and last["registration"]["status"] == "failed"
    assert all(verified(r, every["secret"]) for r in receiver.received if r["path"] == "/every")


def test_a_test_ping_is_sent_at_once_and_a_deleted_hook_gets_nothing_more(client, platform, workshop, receiver):
    created = hook(client, platform, receiver.url + "/")
    status, detail = api(client, platform, "POST", f"/api/admin/webhooks/{created['id']}/test")
    assert status == 200 and detail["deliveries"][0]["status"] == "delivered"
    assert verified(receiver.received[0], created["secret"])["event"] == "ping"
    participant(platform, WORKSHOP, "a@example.com")  # queued for the hook ...
    assert api(client, platform, "DELETE", f"/api/admin/webhooks/{created['id']}")[0] == 204
    lifecycle.tick(platform)  # ... which is gone before it is sent
    assert len(receiver.received) == 1
    assert api(client, platform, "GET", f"/api/admin/webhooks/{created['id']}")[0] == 404
    assert api(client, platform, "DELETE", f"/api/admin/webhooks/{created['id']}")[0] == 404
    actions = [(e["action"], e["outcome"]) for e in api(client, platform, "GET", "/api/admin/audit")[1]]
    assert actions == [("webhook.delete", "refused"), ("webhook.delete", "done"), ("webhook.test", "done"),
                       ("webhook.create", "done")]


@pytest.mark.parametrize("body, field", [
    ({"url": "ftp://example.com/x"}, "url"),
    ({"url": "javascript:alert(1)"}, "url"),
    ({"url": "https://user:pw@example.com/x"}, "url"),
    ({"url": "http:///path-only"}, "url"),
    ({"url": "https://example.com/x#frag"}, "url"),
    ({"url": "https://example.com/a b"}, "url"),
    ({"url": "https://example.com/" + "x" * 2000}, "url"),
    ({"url": "https://example.com:99999/"}, "url"),
    ({}, "url"),
    ({"url": "https://example.com/", "events": ["everything"]}, "events"),
    ({"url": "https://example.com/", "description": "<b>"}, "description"),
])
def test_invalid_webhooks_are_refused_with_the_field_named(client, platform, body, field):
    status, answer = api(client, platform, "POST", "/api/admin/webhooks", body)
    assert status == 422 and field in answer["fields"]
    assert api(client, platform, "GET", "/api/admin/webhooks")[1] == []


# -- outside local mode: https to public addresses only -----------------------------------------

PUBLIC = "93.184.216.34"


@pytest.fixture
def dns(platform, monkeypatch):
    """A deployed stage (not local), and the DNS answers it gets: ``dns[host] = [addresses]``."""
    platform.settings = dataclasses.replace(platform.settings, stage="prod")
    answers: dict[str, list[str]] = {}

    def lookup(host, port):
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
                for a in answers[host]]

    monkeypatch.setattr(http, "lookup", lookup)
    return answers


@pytest.mark.parametrize("url, answers, said", [
    ("http://hooks.example/", [PUBLIC], "Only https:// URLs"),
    ("https://127.0.0.1:8443/", None, "127.0.0.1 is a loopback address"),
    ("https://169.254.169.254/latest/meta-data/", None, "link-local address"),
    ("https://10.1.2.3/", None, "private address"),
    ("https://[fd00::1]/", None, "private address"),
    ("https://[::ffff:127.0.0.1]/", None, "loopback address"),
    ("https://0.0.0.0/", None, "unspecified address"),
    ("https://224.0.0.1/", None, "multicast address"),
    ("https://240.0.0.1/", None, "reserved address"),
    ("https://100.64.0.1/", None, "non-public address"),
    ("https://localhost/", ["127.0.0.1", "::1"], "resolves to 127.0.0.1, which is a loopback address"),
    ("https://metadata.example/", ["169.254.169.254"], "resolves to 169.254.169.254, which is a link-local address"),
    ("https://mixed.example/", [PUBLIC, "10.0.0.5"], "resolves to 10.0.0.5, which is a private address"),
    ("https://nowhere.example/", None, "does not resolve"),
])
def test_outside_local_mode_a_hook_must_be_https_and_public(client, platform, dns, url, answers, said):
    if answers:
        dns[url.split("/")[2]] = answers
    status, answer = api(client, platform, "POST", "/api/admin/webhooks", {"url": url})
    assert status == 422 and said in answer["fields"]["url"], answer
    assert api(client, platform, "GET", "/api/admin/webhooks")[1] == []


def test_a_host_that_resolves_inside_by_the_time_of_sending_gets_nothing(client, platform, workshop, dns):
    dns["hooks.example"] = [PUBLIC]
    created = hook(client, platform, "https://hooks.example/wod")
    dns["hooks.example"] = ["169.254.169.254"]  # the DNS answer changed since
    participant(platform, WORKSHOP, "a@example.com")
    assert lifecycle.tick(platform)["webhooks"] == 1
    [log] = deliveries(client, platform, created["id"])
    assert (log["status"], log["attempts"], log["last_code"]) == ("pending", 1, None)
    assert log["last_error"].startswith("Not sent: hooks.example resolves to 169.254.169.254, which is a link-local")


def test_the_connection_goes_only_to_an_address_that_was_checked(client, platform, workshop, dns, monkeypatch):
    dns["hooks.example"] = [PUBLIC]
    created = hook(client, platform, "https://hooks.example/wod")
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    lookups = []

    def rebinding(host, port):  # public when checked before sending, loopback a moment later
        lookups.append(host)
        address = (PUBLIC, port) if len(lookups) == 1 else listener.getsockname()
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", address)]

    monkeypatch.setattr(http, "lookup", rebinding)
    try:
        status, detail = api(client, platform, "POST", f"/api/admin/webhooks/{created['id']}/test")
        assert status == 200 and len(lookups) == 2
        last = detail["deliveries"][0]
        assert last["status"] == "pending" and "127.0.0.1, which is a loopback address" in last["last_error"]
        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing ever connected
    finally:
        listener.close()


def test_outside_local_mode_a_public_https_hook_is_taken(client, platform, dns):
    dns["hooks.example"] = [PUBLIC, "2606:2800:220:1:248:1893:25c8:1946"]
    created = hook(client, platform, "https://hooks.example/wod")
    assert created["url"] == "https://hooks.example/wod"
    entry = api(client, platform, "GET", "/api/admin/audit")[1][0]
    assert (entry["action"], entry["target"], entry["outcome"]) == ("webhook.create", created["url"], "done")


def test_a_sender_whose_lease_ran_out_does_not_overwrite_the_one_that_took_over(client, platform, workshop, clock):
    from chalicelib.services.webhooks import LEASE

    store = platform.stores.webhooks

    created = hook(client, platform, "http://127.0.0.1:9/", ["registered"])
    participant(platform, WORKSHOP, "a@example.com")
    [queued] = store.due(clock(), 10)
    slow = store.lease(queued, clock(), LEASE)
    clock.advance(seconds=LEASE.total_seconds() + 1)
    [expired] = store.due(clock(), 10)
    fast = store.lease(expired, clock(), LEASE)
    assert slow is not None and fast is not None
    assert store.settle(fast, clock(), 200, None, True, None) is True
    assert store.settle(slow, clock(), 500, "late", False, clock() + timedelta(minutes=1)) is False
    [log] = deliveries(client, platform, created["id"])
    assert (log["status"], log["attempts"], log["last_code"]) == ("delivered", 1, 200)
