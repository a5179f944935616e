"""Resending credentials is a RESET of scope ``password``: signed like every order, started like
every RESET, and its Deploy stores a new password hash without touching the notebooks."""
from __future__ import annotations

import time

import pytest

from chalicelib.adapters.appliances import LocalAppliances
from chalicelib.adapters.content import FolderContent
from chalicelib.adapters.workflows import StepFunctionsStarter
from chalicelib.backend.intake import handle
from chalicelib.domain.orders import Order
from chalicelib.domain.passwords import verify_password
from chalicelib.services import provisioning
from tests.admintools import activate, participant
from tests.functional.test_backend_intake import Starter, order_mail

WORKSHOP = "WKSHP-CRED"


class ContentsHub:
    """Records what Deploy uploads."""

    def __init__(self):
        self.uploaded: list[str] = []
        self.participants: list[str] = []

    def mark_participant(self, name):
        self.participants.append(name)

    def put_contents(self, name, path, model):
        self.uploaded.append(path)


@pytest.fixture
def deploy(client, platform, tables, sync, recording, tmp_path, monkeypatch):
    """Run the Deploy task of an active registration's RESET; returns (hub, callbacks, student)."""
    sync((WORKSHOP, {"seats": 1}))
    created = participant(platform, WORKSHOP, "mo@example.com")
    activate(client, platform, created)
    hub, callbacks = ContentsHub(), []
    platform.hub = hub
    platform.content = FolderContent(tmp_path / "workshops")
    platform.appliances = LocalAppliances(tmp_path)
    monkeypatch.setattr(provisioning, "callback", lambda ctx, payload: callbacks.append(payload))

    def run(scope):
        provisioning.deploy(platform, {"order": {"action": "RESET", "workshop": WORKSHOP,
                                                 "student": created["student"], "registration": created["id"],
                                                 "scope": scope}})
        return hub, callbacks[-1], tables.students.get(created["student"])
    return run


def test_a_password_reset_stores_a_new_hash_and_uploads_nothing(deploy):
    hub, result, student = deploy("password")
    assert hub.uploaded == []
    assert result["outcome"] == "ready" and verify_password(result["password"], student.password_hash)


def test_a_full_reset_uploads_the_notebooks_again(deploy):
    hub, result, student = deploy("all")
    assert set(hub.uploaded) == {"0-ReadMeFirst.ipynb", "9-Conclusion.ipynb"}
    assert hub.participants == [student.id]  # the hub stops this server when idle from now on
    assert verify_password(result["password"], student.password_hash)


def test_the_intake_starts_a_password_reset_like_any_reset(platform):
    platform.workflows = Starter()
    order = Order.new("RESET", "WKSHP-X", "student7", "reg-1234567890abcdef", time.time(), 3,
                      "password")
    assert handle(platform, order_mail(platform, order)) == "started"
    assert platform.workflows.started == ["reg-1234567890abcdef-RESET-3"]


def test_the_workflow_input_carries_the_scope():
    class Client:
        def start_execution(self, **kwargs):
            self.started = kwargs

    client = Client()
    order = Order.new("RESET", "WKSHP-X", "s1", "r" * 20, 0, 2, "password")
    assert StepFunctionsStarter(lambda: client, {"RESET": "arn:reset"})(order)
    assert client.started["name"] == "r" * 20 + "-RESET-2"
    assert '"scope": "password"' in client.started["input"]
