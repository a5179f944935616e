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
    broken = json.loads((MACHINES / "provision.asl.json").read_text())
    broken["States"]["Prepare"]["Next"] = "Nowhere"
    path = tmp_path / "broken.asl.json"
    path.write_text(json.dumps(broken))
    assert validate(path).returncode != 0


def test_every_task_retries_and_provisioning_falls_back_to_compensation():
    for path in DEFINITIONS:
        for name, state in json.loads(path.read_text())["States"].items():
            assert state["Type"] != "Task" or state.get("Retry"), (path.name, name)
    machine = json.loads((MACHINES / "provision.asl.json").read_text())
    for name, state in machine["States"].items():
        if state["Type"] == "Task" and name != "Compensate":
            assert state["Catch"][-1] == {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error",
                                          "Next": "Compensate"}, name
    # a stale order touches nothing: it fails before any compensation
    assert machine["States"]["Prepare"]["Catch"][0]["Next"] == "Stale"
    assert machine["States"]["Stale"]["Type"] == "Fail"
    # a compensated failure is handled: the execution succeeds, ProvisioningCompensated alarms instead
    assert machine["States"][machine["States"]["Compensate"]["Next"]]["Type"] == "Succeed"


def test_cleanup_reports_even_when_measuring_or_teardown_fails():
    machine = json.loads((MACHINES / "cleanup.asl.json").read_text())["States"]
    assert machine["MeasureCompletion"]["Catch"][0]["Next"] == "Teardown"
    assert machine["Teardown"]["Catch"][0]["Next"] == "Report"
    assert machine["Report"]["Retry"][0]["ErrorEquals"] == ["States.ALL"]


def test_every_task_names_a_function_the_app_declares():
    import re

    from app import app
    from local.workflows import PLACEHOLDER, function_name

    declared = {f.name for f in app.pure_lambda_functions}
    wanted = {function_name(path.name.removesuffix(".asl.json"), placeholder)
              for path in DEFINITIONS for placeholder in PLACEHOLDER.findall(path.read_text())}
    assert wanted and wanted <= declared, wanted - declared
    assert all(re.fullmatch(r"[a-z]+(-[a-z]+)+", name) for name in wanted)
