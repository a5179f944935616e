"""``make deploy-rehearsal``: the deploy's own AWS CLI commands against an embedded AWS that enforces
IAM, twice, then a participant's whole life through the stack's resources, each function in a
process of its own under its own role, the location's hub set up by bootstrap.sh on this machine
(the session's one install, ``tests/hubhost.py``)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.packaging import chalice_package

ROOT = Path(__file__).resolve().parents[2]
MAP = ROOT / "infra" / "iam-map.json"


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory, installed_hub_host) -> tuple[subprocess.CompletedProcess, dict, dict]:
    out = tmp_path_factory.mktemp("rehearsal")
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "WOD_"))}
    env["AWS_DEFAULT_REGION"] = "eu-west-1"
    subprocess.run([sys.executable, "-m", "infra.merge", "--out", str(out / "merge.json")],
                   cwd=ROOT, env=env, check=True, capture_output=True)
    packaged = chalice_package(out / "merge.json", out / "package", env, timeout=300)
    assert packaged.returncode == 0, packaged.stdout + packaged.stderr
    run = subprocess.run([sys.executable, "-m", "local.rehearsal", "--package", str(out / "package"),
                          "--hub-prefix", str(installed_hub_host.prefix), "--report", str(out / "report.json"),
                          "--map", str(out / "map.json")],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    print(run.stdout[-3000:])
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-4000:]
    return run, json.loads((out / "report.json").read_text()), json.loads((out / "map.json").read_text())


pytestmark = pytest.mark.timeout(1500)


def test_the_stack_is_created_by_the_deploy_commands_signed_and_authorized(rehearsal):
    run, report, _ = rehearsal
    kinds = [resource["type"] for resource in report["resources"].values()]
    assert kinds.count("AWS::DynamoDB::Table") == 6
    assert kinds.count("AWS::StepFunctions::StateMachine") == 5
    assert kinds.count("AWS::Lambda::Function") == 22  # the app's 21 and the rule set's activation
    assert kinds.count("AWS::IAM::Role") == 24  # one per function, the activation's, the state machines', the hub's
    assert kinds.count("AWS::Lambda::EventSourceMapping") == 1  # the registrations' stream to the dispatcher
    assert "every request from now on is signed and authorized" in run.stdout
    assert "aws cloudformation deploy --template-file" in run.stdout  # the CLI's own words
    assert run.stdout.count("Successfully created/updated stack") == 3  # create, protect, no-op
    assert "Traceback" not in run.stdout + run.stderr and "unpublished metrics" not in run.stderr  # step by step


def test_what_moto_cannot_create_is_named_and_what_the_chain_needs_is_stood_in_for(rehearsal):
    run, report, _ = rehearsal
    for logical in report["skipped"]:
        assert f"skipped {logical}: " in run.stdout
    assert {"OrderKeySecret", "HubTokenSecret", "MailIdentity", "MailConfigurationSet", "OrdersRuleSet",
            "OrdersRule", "ActiveRuleSet", "OrdersTopicPolicy", "OrderIntakeOrderIntakeSnsSubscription",
            "MailFeedbackMailFeedbackSnsSubscription",
            "AlarmsSubscription", "OrderIntakeEventInvokeConfig", "TimeChecksEventInvokeConfig",
            "FailedEventsAlarm"} <= set(report["stood_in"])
    assert report["active_rule_set"] == "wod-rehearsal-orders"
    assert "ActiveRuleSet: its function's own code run with a Create request as ActiveRuleSetRole: SUCCESS" \
        in run.stdout


def test_refusals_before_anything_is_created(rehearsal):
    run, report, _ = rehearsal
    assert "the active SES receipt rule set in eu-west-1 is crm-inbound" in report["refusals"]["rule_set"]
    assert "no table wod-students in us-west-2" in report["refusals"]["other_region"]


def test_a_participants_whole_life_runs_through_the_stack(rehearsal):
    run, report, _ = rehearsal
    chain = report["chain"]
    assert chain["registration"] == "pending"  # confirmed from the mail, rate limits on
    assert chain["login"].endswith("/lab/tree/0-ReadMeFirst.ipynb")
    assert chain["check_ready"] == chain["warm_check_ready"] == {"ready": True, "wait": 0}  # as machines invoke it
    assert chain["hold_released"] == "expired"
    assert chain["mail_bounce"] == "permanent"  # SES's bounce through the mail feedback topic, on the registration
    assert chain["time_checks"]["reminders"] == 1 and chain["time_checks"]["expired"] == 1
    assert chain["time_checks"]["warming"] == 1
    assert chain["warm_taken"]  # a registration for the warm workshop took the warm seat
    machines = chain["machines"]
    assert machines["ProvisionStateMachine"] == ["SUCCEEDED"] * 3  # two ready, one compensated
    for machine in ("ResetStateMachine", "CleanupStateMachine", "WarmStateMachine", "PurgeStateMachine"):
        assert machines[machine] and set(machines[machine]) == {"SUCCEEDED"}, (machine, chain["failed_executions"])
    seats, grown, back = chain["organiser"]["resized"]
    assert chain["organiser"]["csv"] and (grown, back) == (seats + 1, seats)
    assert chain["inbound"] >= 5  # CREATE x2, RESET, CLEANUP, WARM, PURGE through SES inbound and SNS


def test_every_function_ran_under_its_own_role_and_nothing_was_refused(rehearsal):
    _, report, recorded = rehearsal
    assert report["iam"]["refused"] == [] and recorded["refused"] == []
    invoked = {u["resource"].removeprefix("${").removesuffix(".Arn}")
               for u in recorded["functions"]["StateMachineRole"]["uses"]}
    ran = {name for name, use in recorded["functions"].items() if use["uses"]} | invoked
    assert set(recorded["functions"]) <= ran  # every function of the stack ran in the chain


def test_the_committed_map_holds_every_call_the_rehearsal_recorded(rehearsal):
    """``infra/iam-map.json`` (which tests/unit/test_iam_map.py holds the template to) knows every
    call this run made; a path that depends on timing may add to it (--map merges)."""
    _, _, recorded = rehearsal
    committed = json.loads(MAP.read_text())
    for function, use in recorded["functions"].items():
        known = committed["functions"][function]
        assert known["grants"] == use["grants"], f"{function}: regenerate with --map infra/iam-map.json"
        missing = [u for u in use["uses"] if u not in known["uses"]]
        assert missing == [], f"{function}: calls the committed map lacks (--map infra/iam-map.json): {missing}"
