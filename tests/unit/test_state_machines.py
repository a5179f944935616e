"""Every state machine passes asl-validator, raw and with its function ARNs filled in."""
from __future__ import annotations

import json
import subprocess

import pytest

from local.workflows import MACHINES, definition
from tests.conftest import ROOT

VALIDATOR = ROOT / "node_modules" / ".bin" / "asl-validator"
DEFINITIONS = sorted(MACHINES.glob("*.asl.json"))


def validate(path):
    return subprocess.run([str(VALIDATOR), "--json-path", str(path)], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("path", DEFINITIONS, ids=lambda p: p.name)
def test_state_machine_is_valid_asl(path, tmp_path):
    assert DEFINITIONS, "no state machines found"
    raw = validate(path)
    assert raw.returncode == 0, raw.stdout + raw.stderr
    filled = tmp_path / path.name
    filled.write_text(definition(path, "us-east-1"))
    result = validate(filled)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "${" not in filled.read_text()


def test_validator_catches_a_broken_machine(tmp_path):
    broken = json.loads(DEFINITIONS[0].read_text())
    broken["States"]["Prepare"]["Next"] = "Nowhere"
    path = tmp_path / "broken.asl.json"
    path.write_text(json.dumps(broken))
    assert validate(path).returncode != 0


def test_every_task_retries_and_falls_back_to_compensation():
    machine = json.loads((MACHINES / "provision.asl.json").read_text())
    tasks = {name: s for name, s in machine["States"].items() if s["Type"] == "Task"}
    for name, state in tasks.items():
        assert state.get("Retry"), name
        if name != "Compensate":
            assert state["Catch"][0]["Next"] == "Compensate", name
