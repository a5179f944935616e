"""Idle participants' servers stop and come back: the real hub (local/hub.py, isolated spawner)
with its idle culler (infra/jupyterhub/idle_culler.py) timed in seconds instead of minutes.

Three students with running servers: two participants (the platform's HubClient marks them, as
Deploy does) and a warm-pool student (not marked). The participants' servers are stopped by the
culler; their hub users, Linux users and homes stay; the warm server keeps running. Then one
participant logs in (the hub starts the server again, with their notebook) and the platform
reads the other's notebook (the client starts the server again, as cleanup's completion measure
needs).
"""
from __future__ import annotations

import json
import pwd
import secrets
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from chalicelib.adapters.hub import PARTICIPANTS_GROUP, HubClient
from local.hub import Hub
from tests.hubtools import login, new_name, notebook, running_hub

IDLE_SECONDS = 10
CHECK_SECONDS = 1
README = "0-ReadMeFirst.ipynb"
LANDING = f"lab/tree/{README}"

pytestmark = pytest.mark.timeout(400)


@pytest.fixture(scope="module")
def hub(embedded_aws, tmp_path_factory):
    with running_hub(embedded_aws, tmp_path_factory.mktemp("culling-hub"), env={
            "WOD_IDLE_MINUTES": str(IDLE_SECONDS / 60), "WOD_IDLE_CHECK_SECONDS": str(CHECK_SECONDS)}) as started:
        started.platform = HubClient(started.url, started.token, timeout=30)
        yield started


def servers(hub: Hub, name: str) -> dict:
    response = hub.api.http.get(f"{hub.api_url}/users/{name}", timeout=10)
    assert response.status_code == 200, response.text  # the hub user (the seat's account) is kept
    return response.json()["servers"]


def wait_until(condition, timeout: float, what: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        time.sleep(0.25)
    raise TimeoutError(f"{what} within {timeout}s")


def processes_of(name: str) -> list[str]:
    found = subprocess.run(["pgrep", "-a", "-u", name], capture_output=True, text=True, check=False)
    return found.stdout.splitlines()


def group_members(hub: Hub) -> list[str]:
    response = hub.api.http.get(f"{hub.api_url}/groups/{PARTICIPANTS_GROUP}", timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["users"]


def test_an_idle_participant_server_stops_and_comes_back_with_its_files(hub):
    a, b, warm = new_name(), new_name(), new_name()
    password = secrets.token_urlsafe(12)
    for name in (a, b, warm):
        hub.created.append(name)
        hub.api.create_user(name)
    with ThreadPoolExecutor(3) as pool:
        list(pool.map(hub.api.start_server, (a, b, warm)))
        list(pool.map(hub.api.wait_ready, (a, b, warm)))
    for name in (a, b):
        hub.platform.put_contents(name, README, {"type": "notebook", "format": "json",
                                                 "content": notebook(f"# Hello {name}")})
        hub.platform.mark_participant(name)
    hub.students.put(a, password)
    assert sorted(group_members(hub)) == sorted([a, b])

    # both participants' servers stop once idle; the warm one, just as idle, is left alone
    took = wait_until(lambda: not servers(hub, a) and not servers(hub, b), 6 * IDLE_SECONDS,
                      "the participants' servers were not stopped")
    print(f"culled {took:.1f}s after being marked (timeout {IDLE_SECONDS}s, checked every {CHECK_SECONDS}s)")
    assert took >= IDLE_SECONDS - 1  # not before the idle timeout
    time.sleep(3 * CHECK_SECONDS)
    assert servers(hub, warm)[""]["ready"] is True
    log = hub.log_file.read_text()
    assert f"Culling server {a}" in log and f"Culling server {b}" in log and f"Culling server {warm}" not in log
    for name in (a, b):
        wait_until(lambda name=name: not processes_of(name), 20, f"processes of {name} outlived its server")
        account = pwd.getpwnam(name)  # the Linux user stays ...
        readme = Path(account.pw_dir) / README  # ... and so does the home
        assert "".join(json.loads(readme.read_text())["cells"][0]["source"]) == f"# Hello {name}"
    assert sorted(group_members(hub)) == sorted([a, b])

    # at once: the participant logs in again (the hub starts the server, the notebook is there),
    # and the platform reads the other's notebook (completion at cleanup; its client starts it)
    with ThreadPoolExecutor(2) as pool:
        relogin = pool.submit(login_again, hub, a, password)
        model = pool.submit(hub.platform.get_contents, b, README).result()
        session, response = relogin.result()
    assert response.url == f"{hub.url}/user/{a}/{LANDING}", response.url
    contents = session.get(f"{hub.url}/user/{a}/api/contents/{README}", timeout=30)
    assert contents.status_code == 200, contents.text
    assert "".join(contents.json()["content"]["cells"][0]["source"]) == f"# Hello {a}"
    assert "".join(model["content"]["cells"][0]["source"]) == f"# Hello {b}"
    assert servers(hub, b)[""]["ready"] is True


def login_again(hub: Hub, name: str, password: str) -> tuple[requests.Session, requests.Response]:
    """POST /hub/login, which spawns; a spawn still starting lands on the pending page (the
    browser waits there), then /hub/user-redirect/ leads to the notebook."""
    session, response = login(hub.url, name, password)
    assert response.status_code == 200, (response.status_code, response.url)
    if "/spawn-pending/" in response.url:
        hub.api.wait_ready(name)
        response = session.get(f"{hub.url}/hub/user-redirect/{LANDING}", timeout=30)
    return session, response


def test_the_seat_next_holder_is_not_a_participant_until_marked(hub):
    """Cleanup deletes the hub user, warming creates it again: the membership does not carry over."""
    name = new_name()
    hub.created.append(name)
    hub.api.create_user(name)
    hub.platform.mark_participant(name)
    assert name in group_members(hub)
    hub.platform.delete_user(name)
    hub.api.create_user(name)
    assert name not in group_members(hub)
    user = requests.get(f"{hub.api_url}/users/{name}", headers={"Authorization": f"token {hub.token}"}, timeout=10)
    assert user.json()["groups"] == []
