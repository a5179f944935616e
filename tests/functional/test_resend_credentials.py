"""Resending credentials is a RESET of scope ``password``: signed like every order, started like
every RESET, and its Deploy stores a new password hash without touching the notebooks."""
from __future__ import annotations

import pytest

from chalicelib.adapters.appliances import LocalAppliances
from chalicelib.adapters.content import FolderContent
from chalicelib.adapters.workflows import StepFunctionsStarter
from chalicelib.backend import provision
from chalicelib.backend.intake import Intake, handle
from chalicelib.backend.provision import Backend
from chalicelib.domain.orders import Order
from chalicelib.domain.passwords import verify_password
from chalicelib.store.models import StudentModel
from tests.admintools import activate, participant
from tests.functional.test_backend_intake import Starter, order_mail

WORKSHOP = "WKSHP-CRED"


class ContentsHub:
    """Records what Deploy uploads."""

    def __init__(self):
        self.uploaded: list[str] = []

    def put_contents(self, name, path, model):
        self.uploaded.append(path)


@pytest.fixture
def deploy(client, platform, sync, recording, tmp_path, monkeypatch):
    """Run the Deploy task of an active registration's RESET; returns (hub, callbacks, student)."""
    sync((WORKSHOP, {"seats": 1}))
    created = participant(WORKSHOP, "mo@example.com")
    activate(client, platform, created)
    hub, callbacks = ContentsHub(), []
    provision.use(Backend(platform.settings, hub, FolderContent(tmp_path / "workshops"), LocalAppliances(tmp_path)))
    monkeypatch.setattr(provision, "_callback", lambda backend, payload: callbacks.append(payload))

    def run(scope):
        provision.deploy({"order": {"action": "RESET", "workshop": WORKSHOP, "student": created["student"],
                                    "registration": created["id"], "scope": scope}})
        return hub, callbacks[-1], StudentModel.get(created["student"])
    yield run
    provision.use(None)


def test_a_password_reset_stores_a_new_hash_and_uploads_nothing(deploy):
    hub, result, student = deploy("password")
    assert hub.uploaded == []
    assert result["outcome"] == "ready" and verify_password(result["password"], student.password_hash)


def test_a_full_reset_uploads_the_notebooks_again(deploy):
    hub, result, student = deploy("all")
    assert set(hub.uploaded) == {"0-ReadMeFirst.ipynb", "9-Conclusion.ipynb"}
    assert verify_password(result["password"], student.password_hash)


def test_the_intake_starts_a_password_reset_like_any_reset(platform):
    intake = Intake(settings=platform.settings, start=Starter(), clock=platform.clock)
    order = Order.new("RESET", "WKSHP-X", "student7", "reg-1234567890abcdef", platform.clock().timestamp(), 3,
                      "password")
    assert handle(intake, order_mail(platform, order)) == "started"
    assert intake.start.started == ["reg-1234567890abcdef-RESET-3"]


def test_the_workflow_input_carries_the_scope():
    class Client:
        def start_execution(self, **kwargs):
            self.started = kwargs

    client = Client()
    order = Order.new("RESET", "WKSHP-X", "s1", "r" * 20, 0, 2, "password")
    assert StepFunctionsStarter(lambda: client, {"RESET": "arn:reset"})(order)
    assert client.started["name"] == "r" * 20 + "-RESET-2"
    assert '"scope": "password"' in client.started["input"]
