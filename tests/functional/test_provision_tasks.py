"""Provisioning tasks against a scripted hub: throttled spawns wait their turn, a busy hub is retried
until the deadline, stale orders touch nothing."""
from __future__ import annotations

import time

import pytest

from chalicelib.adapters.appliances import LocalAppliances
from chalicelib.adapters.content import FolderContent
from chalicelib.adapters.hub import HubUnavailable, Spawn
from chalicelib.services import cleanup, provisioning, registrations
from chalicelib.services.provisioning import ProvisioningTimedOut, ServerNotReady


class ScriptedHub:
    """Answers like JupyterHub would, from a script of server states (an exception is raised)."""

    def __init__(self, start_answers, states):
        self.start_answers, self.states, self.calls = list(start_answers), list(states), []

    @staticmethod
    def _answer(answer):
        if isinstance(answer, Exception):
            raise answer
        return answer

    def start_server(self, name):
        self.calls.append(("start", name))
        answer = self._answer(self.start_answers.pop(0))
        return answer if isinstance(answer, Spawn) else Spawn(answer)

    def server_state(self, name):
        self.calls.append(("state", name))
        return self._answer(self.states.pop(0))

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


def test_a_throttled_spawn_is_asked_for_again_after_the_hubs_retry_after(platform, tmp_path, order):
    hub = ScriptedHub(start_answers=[Spawn("throttled", 7.0), Spawn("throttled", 500.0), "pending"],
                      states=["none", "none", "pending", "ready"])
    use_hub(platform, tmp_path, hub)
    event = {"order": order, "ctx": {"deadline": time.time() + 600}}
    event["server"] = provisioning.start_server(platform, event)
    assert event["server"] == {"ready": False, "ready_by": None, "wait": 7}  # queued: no readiness clock yet
    event["server"] = provisioning.check_ready(platform, event)
    assert event["server"] == {"ready": False, "ready_by": None, "wait": provisioning.MAX_WAIT}
    event["server"] = provisioning.check_ready(platform, event)  # the hub began the spawn
    assert not event["server"]["ready"]
    assert event["server"]["ready_by"] >= time.time() + platform.settings.ready_timeout_seconds - 5
    event["server"] = provisioning.check_ready(platform, event)
    assert event["server"]["ready"] is False
    assert provisioning.check_ready(platform, event)["ready"] is True
    assert [c[0] for c in hub.calls].count("start") == 3


def test_the_readiness_clock_starts_when_the_spawn_does_not_when_it_was_queued(platform, tmp_path, order):
    """A spawn queued longer than ``ready_timeout_seconds`` behind the hub's limit is still given
    its whole readiness time once the hub starts it; a spawn past its own time is not ready."""
    use_hub(platform, tmp_path, ScriptedHub(start_answers=["pending"], states=["none", "pending"]))
    event = {"order": order, "ctx": {"deadline": time.time() + 600},
             "server": {"ready": False, "ready_by": None, "wait": 2}}
    event["server"] = provisioning.check_ready(platform, event)
    assert event["server"]["ready"] is False
    assert provisioning.check_ready(platform, event)["ready"] is False
    event["server"]["ready_by"] = time.time() - 1
    use_hub(platform, tmp_path, ScriptedHub(start_answers=[], states=["pending"]))
    with pytest.raises(ServerNotReady):
        provisioning.check_ready(platform, event)


def test_past_the_deadline_the_server_is_not_ready(platform, tmp_path, order):
    use_hub(platform, tmp_path, ScriptedHub(start_answers=["pending"], states=["pending"]))
    with pytest.raises(ServerNotReady):
        provisioning.check_ready(platform, {"order": order, "ctx": {"deadline": time.time() - 1}})


@pytest.mark.parametrize("task", ["create_hub_user", "start_server", "check_ready"])
def test_a_busy_hub_is_retried_until_the_deadline_then_gives_up(platform, tmp_path, order, task):
    """A timeout or a 5xx from the hub goes back to the state machine's Retry while the deadline
    is ahead; only past it does the task fail for good (and the execution compensates)."""
    busy = HubUnavailable("JupyterHub did not answer GET /hub/api/users/x: Read timed out")
    use_hub(platform, tmp_path, ScriptedHub(start_answers=[busy, busy], states=[busy, busy]))
    platform.hub.delete_user = platform.hub.ensure_user = lambda name: ScriptedHub._answer(busy)
    with pytest.raises(HubUnavailable):
        getattr(provisioning, task)(platform, {"order": order, "ctx": {"deadline": time.time() + 60}})
    with pytest.raises(ProvisioningTimedOut, match="still unavailable at the deadline"):
        getattr(provisioning, task)(platform, {"order": order, "ctx": {"deadline": time.time() - 1}})


def test_the_provisioning_deadline_is_a_minute_before_the_time_checks_call_it_stuck(platform):
    stuck = platform.settings.stuck_minutes * 60
    assert stuck - 61 <= provisioning.deadline(platform) - time.time() <= stuck - 59


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


def test_participants_get_stubs_and_completion_counts_the_checks_they_pass(platform, sync, recording, tmp_path,
                                                                           monkeypatch):
    """Deploy hands out the participant's copy (solution stubbed, hidden tests left out); cleanup
    counts the checks that ran unchanged without an error, not the cells that ran."""
    import json

    import nbformat

    sync(("WKSHP-CHK", {"seats": 1}))
    lab = nbformat.v4.new_notebook()
    answer = nbformat.v4.new_code_cell("### BEGIN SOLUTION\nanswer = 42\n### END SOLUTION")
    answer.metadata["nbgrader"] = {"solution": True, "grade": False, "grade_id": "answer-cell"}
    checks = []
    for grade_id in ("first", "second"):
        cell = nbformat.v4.new_code_cell(f'assert answer == 42, "{grade_id}"\n### BEGIN HIDDEN TESTS\n'
                                         "assert answer > 0\n### END HIDDEN TESTS")
        cell.metadata["nbgrader"] = {"grade": True, "solution": False, "grade_id": grade_id, "points": 1}
        checks.append(cell)
    lab.cells = [answer, *checks]
    nbformat.write(lab, str(tmp_path / "workshops" / "WKSHP-CHK" / "1-Lab.ipynb"))
    hub = ContentsHub()
    platform.hub, platform.content = hub, FolderContent(tmp_path / "workshops")
    monkeypatch.setattr(provisioning, "callback", lambda ctx, payload: None)
    created = registrations.register(platform, {"workshop": "WKSHP-CHK", "email": "c@example.com", "first_name": "C",
                                                "last_name": "K", "company": "C", "accept_terms": True})
    order = {"action": "CREATE", "workshop": "WKSHP-CHK", "student": created["student"],
             "registration": created["id"]}
    provisioning.deploy(platform, {"order": order})
    mine = hub.uploaded[(created["student"], "1-Lab.ipynb")]["content"]
    sources = ["".join(c["source"]) for c in mine["cells"]]
    assert sources[0] == "# YOUR CODE HERE\nraise NotImplementedError()"
    assert sources[1] == 'assert answer == 42, "first"' and "answer > 0" not in "".join(sources)

    for cell in mine["cells"]:
        cell["execution_count"] = 1  # every cell ran ...
    mine["cells"][2]["outputs"] = [{"output_type": "error", "ename": "AssertionError", "evalue": "second",
                                    "traceback": []}]  # ... but the second check raised
    hub.get_contents = lambda name, path: {"content": json.loads(json.dumps(mine))} if path == "1-Lab.ipynb" \
        else {"content": json.loads((tmp_path / "workshops" / "WKSHP-CHK" / path).read_text())}
    measured = cleanup.measure_completion(platform, {"order": order})
    assert measured == {"value": 50.0, "basis": "checks", "checks_passed": 1, "checks": 2}
