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
