"""A seat's Linux account always starts from an empty home. An account of the same name left by an
earlier state (the state directory deleted, as "start fresh" says, or another stack's run) is
removed with its home and its processes before the hub uses the name again; an account of that
name that is not a student's is never touched, and the hub refuses the name."""
from __future__ import annotations

import pwd
import subprocess
import time

import pytest
import requests

from local.hub import Hub
from tests.hubtools import new_name, remove_linux_user

pytestmark = pytest.mark.timeout(180)


def create_user(hub: Hub, name: str) -> requests.Response:
    return hub.api.http.post(f"{hub.api_url}/users/{name}", timeout=30)


def test_an_earlier_states_account_is_wiped_before_reuse(hub):
    name = new_name()
    hub.created.append(name)
    subprocess.run(["useradd", "--create-home", "--groups", "wod-students", "--shell", "/usr/sbin/nologin", name],
                   check=True)
    home = pwd.getpwnam(name).pw_dir
    leftover = subprocess.run(["runuser", "-u", name, "--", "sh", "-c",
                               f"echo earlier participant > {home}/notes.txt && mkdir -p {home}/.ipynb_checkpoints"],
                              capture_output=True, text=True)
    assert leftover.returncode == 0, leftover.stderr
    sleeper = subprocess.Popen(["runuser", "-u", name, "--", "sleep", "300"])
    try:
        assert create_user(hub, name).status_code == 201
        deadline = time.monotonic() + 10
        while sleeper.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sleeper.poll() is not None, "a process of the earlier participant survived"
        from pathlib import Path

        assert sorted(p.name for p in Path(home).iterdir() if p.name in ("notes.txt", ".ipynb_checkpoints")) == []
        assert f"removed Linux user {name} and its home, left by an earlier state" in hub.log_file.read_text()
    finally:
        if sleeper.poll() is None:
            sleeper.kill()


def test_an_account_that_is_not_a_students_is_never_touched(hub):
    name = new_name()
    subprocess.run(["useradd", "--create-home", "--shell", "/usr/sbin/nologin", name], check=True)
    try:
        answer = create_user(hub, name)
        assert answer.status_code >= 400
        assert pwd.getpwnam(name)  # still there
        assert "not a student account" in hub.log_file.read_text()
    finally:
        hub.api.delete_user(name)
        remove_linux_user(name)
