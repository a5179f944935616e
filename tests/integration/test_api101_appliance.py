"""Behaviour of the WKSHP-API101 practice appliance (workshops/WKSHP-API101/appliance/server.py).

The appliance is a standalone script, not a package, so it is loaded from its
path with importlib and served in a background thread on a free port.
"""
import importlib.util
import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

SERVER_PATH = Path(__file__).resolve().parents[2] / "workshops" / "WKSHP-API101" / "appliance" / "server.py"
TOKEN = "test-token"


def _load_module():
    spec = importlib.util.spec_from_file_location("wkshp_api101_server", SERVER_PATH)
    module = importlib.util.module_from_spec(spec)
    previous, sys.dont_write_bytecode = sys.dont_write_bytecode, True  # no __pycache__ in the workshop folder
    try:
        spec.loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = previous
    return module


appliance = _load_module()


@pytest.fixture()
def base_url():
    server = appliance.make_server("127.0.0.1", 0, token=TOKEN, quiet=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def call(base_url, method, path, body=None, token=None, raw=None):
    """Return (status, headers, parsed JSON or None) without raising on 4xx."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(base_url + path, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            status, headers, payload = response.status, response.headers, response.read()
    except urllib.error.HTTPError as err:
        status, headers, payload = err.code, err.headers, err.read()
    return status, headers, (json.loads(payload) if payload else None)


def test_health(base_url):
    status, headers, body = call(base_url, "GET", "/health")
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert body == {"status": "ok"}


def test_list_defaults_and_next_link(base_url):
    status, headers, body = call(base_url, "GET", "/items")
    assert status == 200
    assert body["page"] == 1 and body["per_page"] == 10
    assert body["total"] == len(appliance.SEED) == 24
    assert [item["id"] for item in body["items"]] == list(range(1, 11))
    assert body["next"] == "/items?page=2&per_page=10"
    assert headers["Link"] == '</items?page=2&per_page=10>; rel="next"'


def test_following_next_visits_every_item_once(base_url):
    seen, path, pages = [], "/items?per_page=7", 0
    while path:
        status, _, body = call(base_url, "GET", path)
        assert status == 200
        seen.extend(item["id"] for item in body["items"])
        path, pages = body["next"], pages + 1
    assert pages == 4  # 24 items at 7 per page: 7 + 7 + 7 + 3
    assert seen == list(range(1, 25))


def test_last_page_has_no_next(base_url):
    status, headers, body = call(base_url, "GET", "/items?page=3&per_page=10")
    assert status == 200
    assert len(body["items"]) == 4
    assert body["next"] is None
    assert "Link" not in headers


@pytest.mark.parametrize("query", ["page=0", "page=abc", "per_page=-1", "per_page=51"])
def test_bad_pagination_parameters_are_400(base_url, query):
    status, _, body = call(base_url, "GET", f"/items?{query}")
    assert status == 400
    assert "error" in body


def test_create_requires_token(base_url):
    item = {"name": "Cable ladder", "quantity": 3}
    status, headers, body = call(base_url, "POST", "/items", item)
    assert status == 401
    assert headers["WWW-Authenticate"].startswith("Bearer")
    assert body["error"] == "missing or invalid bearer token"
    status, _, _ = call(base_url, "POST", "/items", item, token="wrong-token")
    assert status == 401
    assert call(base_url, "GET", "/items")[2]["total"] == 24  # nothing was created


def test_default_token_is_workshop_token():
    assert appliance.DEFAULT_TOKEN == "workshop-token"
    server = appliance.make_server("127.0.0.1", 0, quiet=True)
    try:
        assert server.token == "workshop-token"
    finally:
        server.server_close()


def test_create_then_read_back(base_url):
    status, headers, created = call(base_url, "POST", "/items",
                                    {"name": "  Cable ladder ", "quantity": 3, "price": 12.5}, token=TOKEN)
    assert status == 201
    assert created == {"id": 25, "name": "Cable ladder", "quantity": 3, "price": 12.5}
    assert headers["Location"] == "/items/25"
    status, _, fetched = call(base_url, "GET", headers["Location"])
    assert status == 200 and fetched == created
    assert call(base_url, "GET", "/items")[2]["total"] == 25


def test_price_defaults_to_zero(base_url):
    status, _, created = call(base_url, "POST", "/items", {"name": "Spare", "quantity": 0}, token=TOKEN)
    assert status == 201
    assert created["price"] == 0


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b"\xff\xfe"])
def test_unreadable_body_is_400(base_url, raw):
    status, _, body = call(base_url, "POST", "/items", raw=raw, token=TOKEN)
    assert status == 400
    assert "error" in body


@pytest.mark.parametrize("payload, bad_fields", [
    ({}, {"name", "quantity"}),
    ({"name": "", "quantity": 1}, {"name"}),
    ({"name": "x", "quantity": -1}, {"quantity"}),
    ({"name": "x", "quantity": "5"}, {"quantity"}),
    ({"name": "x", "quantity": True}, {"quantity"}),
    ({"name": "x", "quantity": 1, "price": -0.5}, {"price"}),
    ({"name": "x", "quantity": 1, "colour": "red"}, {"unknown_fields"}),
])
def test_invalid_item_is_422_with_field_details(base_url, payload, bad_fields):
    status, _, body = call(base_url, "POST", "/items", payload, token=TOKEN)
    assert status == 422
    assert body["error"] == "validation failed"
    assert set(body["details"]) == bad_fields
    assert call(base_url, "GET", "/items")[2]["total"] == 24


def test_put_replaces_and_delete_removes(base_url):
    new = {"name": "Hex bolt M8", "quantity": 10, "price": 0.07}
    assert call(base_url, "PUT", "/items/1", new)[0] == 401
    status, _, body = call(base_url, "PUT", "/items/1", new, token=TOKEN)
    assert status == 200 and body == {"id": 1, **new}
    assert call(base_url, "GET", "/items/1")[2] == {"id": 1, **new}
    assert call(base_url, "PUT", "/items/999", new, token=TOKEN)[0] == 404

    assert call(base_url, "DELETE", "/items/1")[0] == 401
    status, _, body = call(base_url, "DELETE", "/items/1", token=TOKEN)
    assert status == 204 and body is None
    assert call(base_url, "GET", "/items/1")[0] == 404
    assert call(base_url, "DELETE", "/items/1", token=TOKEN)[0] == 404
    # ids are not reused after a delete
    assert call(base_url, "POST", "/items", new, token=TOKEN)[2]["id"] == 25


def test_unknown_route_and_method(base_url):
    status, _, body = call(base_url, "GET", "/nope")
    assert status == 404 and "error" in body
    assert call(base_url, "GET", "/items/999")[0] == 404
    status, headers, body = call(base_url, "PATCH", "/items/1", {"quantity": 1}, token=TOKEN)
    assert status == 405
    assert headers["Allow"] == "GET, PUT, DELETE"
    assert call(base_url, "DELETE", "/items", token=TOKEN)[0] == 405


def test_servers_do_not_share_state():
    first = appliance.make_server("127.0.0.1", 0, quiet=True)
    second = appliance.make_server("127.0.0.1", 0, quiet=True)
    try:
        first.store.delete(1)
        assert first.store.get(1) is None
        assert second.store.get(1) is not None
    finally:
        first.server_close()
        second.server_close()


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_command_line_token_and_clean_sigterm():
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, str(SERVER_PATH), "--port", str(port), "--host", "127.0.0.1", "--token", "cli-token"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 10
        while True:
            try:
                if call(url, "GET", "/health")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "appliance did not start"
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.1)
        item = {"name": "x", "quantity": 1}
        assert call(url, "POST", "/items", item, token="workshop-token")[0] == 401
        assert call(url, "POST", "/items", item, token="cli-token")[0] == 201
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def test_the_token_comes_from_the_environment_when_not_on_the_command_line():
    """The platform hands each appliance its own token in APPLIANCE_TOKEN: other local users can
    read a process's command line, not its environment."""
    port = _free_port()
    env = {"PATH": "/usr/bin:/bin", "APPLIANCE_TOKEN": "env-token"}
    proc = subprocess.Popen([sys.executable, str(SERVER_PATH), "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 10
        while True:
            try:
                if call(url, "GET", "/health")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "appliance did not start"
            time.sleep(0.1)
        item = {"name": "x", "quantity": 1}
        assert call(url, "POST", "/items", item, token="workshop-token")[0] == 401
        assert call(url, "POST", "/items", item, token="env-token")[0] == 201
    finally:
        proc.kill()
        proc.wait()
