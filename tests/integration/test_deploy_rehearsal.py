"""``make deploy-rehearsal``: the deploy's own AWS CLI commands against an embedded AWS, twice, then a
smoke flow (catalog sync, one registration through the API function with the stack's environment)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path_factory.mktemp("rehearsal")
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "WOD_"))}
    env["AWS_DEFAULT_REGION"] = "eu-west-1"
    subprocess.run([sys.executable, "-m", "infra.template", "--out", str(out / "merge.json")],
                   cwd=ROOT, env=env, check=True, capture_output=True)
    subprocess.run([str(BIN / "chalice"), "package", "--stage", "aws", "--merge-template", str(out / "merge.json"),
                    str(out / "package")], cwd=ROOT, env=env, check=True, capture_output=True, timeout=300)
    run = subprocess.run([sys.executable, "-m", "infra.rehearsal", "--package", str(out / "package"),
                          "--report", str(out / "report.json")],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    return run, json.loads((out / "report.json").read_text())


def test_the_stack_is_created_by_the_deploy_commands(rehearsal):
    run, report = rehearsal
    kinds = [resource["type"] for resource in report["resources"].values()]
    assert kinds.count("AWS::DynamoDB::Table") == 6
    assert kinds.count("AWS::StepFunctions::StateMachine") == 5
    assert kinds.count("AWS::Lambda::Function") == 20  # the app's 19 and the rule set's activation
    assert kinds.count("AWS::Logs::LogGroup") == 21  # one per function, one for the state machines
    assert {"ContentBucket", "OrdersTopic", "AlarmsTopic", "MailFeedbackTopic", "FailedEventsQueue", "HubHostRole",
            "APIHandler", "OrderIntake", "RestAPI", "ActiveRuleSetFunction",
            "StateMachinesLogGroup"} <= set(report["resources"])
    assert "aws cloudformation deploy --template-file" in run.stdout  # the CLI's own words
    assert "Successfully created/updated stack - wod-rehearsal" in run.stdout


def test_a_second_deploy_with_nothing_changed_succeeds(rehearsal):
    run, _ = rehearsal
    assert "[3] deploy again, nothing changed ..." in run.stdout
    assert run.stdout.count("Successfully created/updated stack") == 3  # create, protect, no-op


def test_what_moto_cannot_create_is_named_and_stood_in_for(rehearsal):
    run, report = rehearsal
    skipped = report["skipped"]
    assert skipped["OrderKeySecret"] == "AWS::SecretsManager::Secret"
    assert skipped["MailIdentity"] == "AWS::SES::EmailIdentity"
    for logical in skipped:
        assert f"skipped {logical}: " in run.stdout
    assert {"OrderKeySecret", "CallbackKeySecret", "AdminTokenSecret", "HubTokenSecret", "MailIdentity",
            "MailConfigurationSet", "OrdersRuleSet", "OrdersRule", "ActiveRuleSet"} <= set(report["stood_in"])
    assert not set(skipped) & set(report["resources"])
    assert "ApiWebAcl" not in skipped  # WafRateLimit=0: not part of the stack, not reported as skipped


def test_the_stack_activates_its_receipt_rule_set(rehearsal):
    run, report = rehearsal
    assert "ActiveRuleSet" in report["skipped"]  # its rule set is created by hand, so its code runs after
    assert report["active_rule_set"] == "wod-rehearsal-orders"
    assert "the active receipt rule set: wod-rehearsal-orders" in run.stdout


def test_tables_are_created_unprotected_then_protected(rehearsal):
    run, _ = rehearsal
    assert "created: turning on the tables' deletion protection" in run.stdout
    assert run.stdout.count("turning on the tables' deletion protection") == 1  # not on the later deploy


def test_a_registration_claims_a_seat_and_sends_the_welcome_mail(rehearsal):
    run, report = rehearsal
    assert "WKSHP-PY101: created, +120 students" in run.stdout  # the catalog sync
    assert "confirmation mail sent; confirming through" in run.stdout  # the hold, confirmed from its mail
    assert report["registration"] == "pending"
    assert report["seat"]["status"] == "reserved"
    subjects = report["mail"]["to_participant"]
    assert [s.split(":")[0] for s in subjects] == ["Confirm your seat", "You're registered"]
    assert run.stdout.rstrip().endswith("a seat claimed and the welcome mail sent")
