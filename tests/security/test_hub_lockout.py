"""A stranger cannot lock a participant out of the hub: failed logins count per client address
and name, so ten wrong passwords from one address block that address for that name only, and
the owner's correct password from their own address still works. The address is the one the
hub's proxy saw: a client's own X-Forwarded-For or X-Real-Ip does not move it to a fresh count.

A real JupyterHub behind configurable-http-proxy; the two clients are two loopback addresses."""
from __future__ import annotations

import secrets

import pytest

from tests.hubtools import login, new_name

pytestmark = pytest.mark.timeout(240)
STRANGER, OWNER = "127.0.0.2", "127.0.0.3"


def refused(response) -> bool:
    return response.status_code == 403 and "Invalid username or password" in response.text


def test_a_stranger_guessing_blocks_only_themselves(hub):
    name, password = new_name(), secrets.token_urlsafe(12)
    hub.created.append(name)
    hub.api.create_user(name)
    hub.students.put(name, password)
    for attempt in range(10):
        _, response = login(hub.url, name, f"guess-{attempt}", source=STRANGER)
        assert refused(response)
    _, response = login(hub.url, name, password, source=STRANGER)
    assert refused(response), "the stranger's address is not blocked after ten failures"
    spoofed = {"X-Forwarded-For": "203.0.113.9", "X-Real-Ip": "203.0.113.9"}
    _, response = login(hub.url, name, password, source=STRANGER, headers=spoofed)
    assert refused(response), "a client's own forwarding headers escaped the block"
    _, response = login(hub.url, name, password, source=OWNER)
    assert response.status_code == 200 and response.url.endswith(f"/hub/spawn-pending/{name}"), \
        f"the owner was locked out: {response.url}"  # logged in; their server starts
    log = hub.log_file.read_text()
    assert f"from {STRANGER}" in log and "temporarily blocked" in log
