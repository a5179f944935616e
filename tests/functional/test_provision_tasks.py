"""Provisioning tasks against a scripted hub: throttled spawns wait their turn, stale orders touch nothing."""
from __future__ import annotations

import time

import pytest

from chalicelib.adapters.appliances import LocalAppliances
from chalicelib.adapters.content import FolderContent
from chalicelib.services import cleanup, provisioning, registrations
from chalicelib.services.provisioning import ServerNotReady


class ScriptedHub:
    """Answers like JupyterHub would, from a script of server states."""

    def __init__(self, start_answers, states):
        self.start_answers, self.states, self.calls = list(start_answers), list(states), []

    def start_server(self, name):
        self.calls.append(("start", name))
        return self.start_answers.pop(0)

    def server_state(self, name):
        self.calls.append(("state", name))
        return self.states.pop(0)

    def delete_user(self, name):
        self.calls.append(("delete", name))

    def ensure_user(self, name):
        self.calls.append(("ensure", name))


@pytest.fixture
def order(sync, recording, tmp_path, platform):
    sync(("WKSHP-TASK", {"seats": 2}))
    created = registrations.register(platform, {"workshop": "WKSHP-TASK", "email": "t@example.com",
                                                "first_name": "T", "last_name": "K", "company": "C",
                                                "accept_terms": True})
    return {"action": "CREATE", "workshop": "WKSHP-TASK", "student": created["student"],
            "registration": created["id"]}


def use_hub(platform, tmp_path, hub):
    platform.hub = hub
    platform.content = FolderContent(tmp_path)
    platform.appliances = LocalAppliances(tmp_path)


def test_a_throttled_spawn_is_asked_for_again_until_ready(platform, tmp_path, order):
    hub = ScriptedHub(start_answers=["throttled", "throttled", "pending"], states=["none", "none", "pending", "ready"])
    use_hub(platform, tmp_path, hub)
    event = {"order": order, "ctx": {"deadline": time.time() + 60}}
    assert provisioning.start_server(platform, event) == {"ready": False}
    assert [provisioning.check_ready(platform, event)["ready"] for _ in range(3)] == [False, False, False]
    assert provisioning.check_ready(platform, event) == {"ready": True}
    assert [c[0] for c in hub.calls].count("start") == 3


def test_past_the_deadline_the_server_is_not_ready(platform, tmp_path, order):
    use_hub(platform, tmp_path, ScriptedHub(start_answers=["pending"], states=["pending"]))
    with pytest.raises(ServerNotReady):
        provisioning.check_ready(platform, {"order": order, "ctx": {"deadline": time.time() - 1}})


def test_a_late_cleanup_never_touches_the_next_holder(platform, tmp_path, order):
    hub = ScriptedHub(start_answers=[], states=[])
    use_hub(platform, tmp_path, hub)
    stale = dict(order, registration="someone-who-left-long-ago")
    cleanup.teardown(platform, {"order": stale})
    assert cleanup.measure_completion(platform, {"order": stale}) == {"value": None}
    assert hub.calls == []
    cleanup.teardown(platform, {"order": order})
    assert ("delete", order["student"]) in hub.calls


class ContentsHub:
    """Takes uploads; the server is there."""

    def __init__(self):
        self.uploaded: dict[tuple[str, str], dict] = {}

    def mark_participant(self, name):
        pass

    def put_contents(self, name, path, model):
        self.uploaded[(name, path)] = model


def test_each_students_notebooks_carry_their_own_appliance_token(platform, sync, recording, tmp_path, monkeypatch):
    from pathlib import Path

    from tests.hubtools import free_ports

    sync(("WKSHP-APP", {"seats": 2, "appliance": {"command": ["{python}", "-c", "import time; time.sleep(60)"],
                                                   "port_base": free_ports(1)[0]},
                        "notebooks": {"0-ReadMeFirst.ipynb": ["{{ appliance_url }} {{ appliance_token }}"],
                                      "9-Conclusion.ipynb": ["Bye"]}}))
    hub = ContentsHub()
    platform.hub, platform.content = hub, FolderContent(tmp_path / "workshops")
    platform.appliances = LocalAppliances(tmp_path / "workshops")
    monkeypatch.setattr(provisioning, "callback", lambda ctx, payload: None)
    workshop = platform.stores.seats.get_workshop("WKSHP-APP")
    rendered = {}
    try:
        for email in ("a@example.com", "b@example.com"):
            created = registrations.register(platform, {"workshop": "WKSHP-APP", "email": email, "first_name": "A",
                                                        "last_name": "B", "company": "C", "accept_terms": True})
            student = created["student"]
            platform.appliances.start("WKSHP-APP", student, *provisioning.appliance_of(workshop, student))
            provisioning.deploy(platform, {"order": {"action": "CREATE", "workshop": "WKSHP-APP", "student": student,
                                                     "registration": created["id"]}})
            cell = hub.uploaded[(student, "0-ReadMeFirst.ipynb")]["content"]["cells"][0]["source"]
            url, token = "".join(cell).split() if isinstance(cell, list) else cell.split()
            environ = Path(f"/proc/{platform.appliances.running[student].pid}/environ").read_bytes().split(b"\0")
            assert f"APPLIANCE_TOKEN={token}".encode() in environ  # the one its appliance takes
            rendered[student] = token
        assert len(set(rendered.values())) == 2 and all(len(token) >= 32 for token in rendered.values())
    finally:
        platform.appliances.stop_all()
