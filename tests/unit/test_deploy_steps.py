"""The deploy's commands and checks (``infra/deploy.py``) and the rehearsal's stand-ins for what
moto's CloudFormation lacks (``infra/standins.py``), without any AWS."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from infra import deploy, standins
from local.rehearsal import Rehearsal, StepFailed

FRONTEND = {"PublicUrl": "https://w.example.org", "MailDomain": "example.org", "MailFrom": "W <noreply@example.org>",
            "OrdersAddress": "orders@example.org", "HubUrl": "https://hub.example.org", "AlarmEmail": "ops@example.org",
            "Locations": '{"paris": "orders@example.org"}'}


def test_a_frontend_without_an_alarm_email_is_refused_before_anything_is_uploaded(tmp_path):
    ran: list[list[str]] = []
    with pytest.raises(deploy.DeployError, match="AlarmEmail is empty"):
        deploy.deploy(tmp_path, bucket="b", stack="wod", region="eu-west-1",
                      parameters={**FRONTEND, "AlarmEmail": " "}, run=ran.append)
    assert ran == []
    deploy.check_parameters({**FRONTEND, "AlarmEmail": "", "Frontend": "false"})  # a location stack may omit it


def test_missing_parameters_are_named():
    with pytest.raises(deploy.DeployError, match="HubUrl"):
        deploy.check_parameters({k: v for k, v in FRONTEND.items() if k != "HubUrl"})
    with pytest.raises(deploy.DeployError, match="Name=Value"):
        deploy.parse_parameters(["PublicUrl"])
    assert deploy.parse_parameters(["MailFrom=W <a=b@example.org>"]) == {"MailFrom": "W <a=b@example.org>"}


@pytest.mark.parametrize("locations", ["{paris:orders@example.org}", "'{\"paris\":\"orders@example.org\"}'", "",
                                       '["orders@example.org"]', '{"paris": 1}', '{"Paris Site": "orders@example.org"}',
                                       '{"paris": "nobody"}'])
def test_locations_that_the_functions_could_not_read_are_refused_before_anything_is_uploaded(tmp_path, locations):
    ran: list[list[str]] = []
    with pytest.raises(deploy.DeployError, match="Locations"):
        deploy.deploy(tmp_path, bucket="b", stack="wod", region="eu-west-1",
                      parameters={**FRONTEND, "Locations": locations}, run=ran.append)
    assert ran == []


def test_a_frontend_needs_a_location_to_send_orders_to_and_a_location_stack_may_name_none():
    with pytest.raises(deploy.DeployError, match="Locations is empty"):
        deploy.check_parameters({k: v for k, v in FRONTEND.items() if k != "Locations"})
    deploy.check_parameters({**FRONTEND, "Frontend": "false", "Locations": "{}", "AlarmEmail": ""})


@pytest.mark.parametrize("address", ['ops@example.org" ; reboot ; "', "$(id)@example.org", "Ops <ops@example.org>",
                                     "ops@example.org other@example.org", "ops"])
def test_an_alarm_email_that_is_not_one_plain_address_is_refused(address):
    with pytest.raises(deploy.DeployError, match="AlarmEmail"):
        deploy.check_parameters({**FRONTEND, "AlarmEmail": address})


def test_the_template_refuses_the_alarm_emails_the_deploy_refuses():
    import re

    from infra.template import parameters

    pattern = parameters()["AlarmEmail"]["AllowedPattern"]
    for address in ("", "ops@example.org", "first.last+wod@mail.example.co.uk"):
        assert re.fullmatch(pattern, address)
        assert not address or deploy.ALARM_EMAIL.fullmatch(address)
    for address in ('ops@example.org" ; reboot ; "', "$(id)@example.org", "Ops <ops@example.org>"):
        assert not re.fullmatch(pattern, address)


def stack_in(status: str | None, active: str = "None", identity: str = "None", tables: str = "", secrets: str = ""):
    """The CLI's answers: the stack's status (None: no stack yet) and, once deployed, its content bucket;
    the region's active receipt rule set, the mail domain's SES identity, the tables, the secrets."""
    def query(command: list[str]) -> str | None:
        if any("'ContentBucket'" in part for part in command):
            return "wod-content-1"
        if "describe-active-receipt-rule-set" in command:
            return active
        if "get-identity-verification-attributes" in command:
            return identity
        if "list-tables" in command:
            return tables
        if "list-secrets" in command:
            return secrets
        return json.dumps([status] if status else [])
    return query


def test_a_status_that_cannot_be_read_stops_the_deploy_before_anything_changes(tmp_path):
    ran: list[list[str]] = []
    for answer in (None, "", "An error occurred (Throttling)"):
        with pytest.raises(deploy.DeployError, match="could not be read"):
            deploy.deploy(tmp_path, bucket="b", stack="wod", region="eu-west-1", parameters=FRONTEND,
                          run=ran.append, query=lambda command, answer=answer: answer)
    assert ran == []  # never taken for "no stack" (which would deploy the tables unprotected)


def test_the_status_query_finds_the_live_stack_among_deleted_ones():
    command = deploy.status_command(stack="wod", region="eu-west-1")
    assert command[3:5] == ["cloudformation", "list-stacks"] and command[command.index("--output") + 1] == "json"
    assert "StackName=='wod' && StackStatus!='DELETE_COMPLETE'" in command[command.index("--query") + 1]
    with pytest.raises(deploy.DeployError, match="STACK"):
        deploy.deploy(Path("."), bucket="b", stack="wod' || 'x", region="eu-west-1", parameters=FRONTEND,
                      run=lambda command: None, query=stack_in(None))


no_stack = stack_in(None)


def test_package_then_deploy_through_the_bucket_with_empty_changesets_allowed(tmp_path):
    ran: list[list[str]] = []
    deploy.deploy(tmp_path, bucket="art", stack="wod", region="eu-west-1", parameters=FRONTEND, run=ran.append,
                  query=stack_in("UPDATE_COMPLETE"))
    package, cfn, upload = ran
    assert package[3:5] == ["cloudformation", "package"] and package[package.index("--s3-bucket") + 1] == "art"
    assert cfn[3:5] == ["cloudformation", "deploy"]
    assert {"--no-fail-on-empty-changeset", "CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"} <= set(cfn)
    assert cfn[cfn.index("--s3-prefix") + 1] == "wod" and "AlarmEmail=ops@example.org" in cfn
    assert "--endpoint-url" not in package + cfn  # only the rehearsal points the CLI elsewhere
    assert "TableDeletionProtection=true" in cfn
    assert upload[3:5] == ["s3", "cp"] and upload[-3] == "s3://wod-content-1/hub/wod-hub.tar.gz"
    assert (tmp_path / "wod-hub.tar.gz").is_file()  # bootstrap.sh and the hub's modules, for the hub host


def test_a_first_deploy_creates_the_tables_unprotected_then_protects_them(tmp_path):
    ran: list[list[str]] = []
    deploy.deploy(tmp_path, bucket="art", stack="wod", region="eu-west-1", parameters=FRONTEND, run=ran.append,
                  query=no_stack, say=lambda line: None)
    assert [c[4] for c in ran] == ["package", "deploy", "deploy", "cp"]
    assert "TableDeletionProtection=false" in ran[1] and "TableDeletionProtection=true" in ran[2]


def test_a_failed_first_deploy_is_cleared_away_before_trying_again(tmp_path):
    ran: list[list[str]] = []
    said: list[str] = []
    deploy.deploy(tmp_path, bucket="art", stack="wod", region="eu-west-1", parameters=FRONTEND, run=ran.append,
                  query=stack_in("ROLLBACK_COMPLETE"), say=said.append)
    assert [c[3:5] for c in ran[:2]] == [["cloudformation", "delete-stack"], ["cloudformation", "wait"]]
    assert "TableDeletionProtection=false" in ran[3]  # created again, as a first deploy
    assert "rolled back" in said[0]


def test_the_rehearsal_runs_the_same_commands_pointed_at_its_endpoint(tmp_path):
    ran: list[list[str]] = []
    real: list[list[str]] = []
    deploy.deploy(tmp_path, bucket="art", stack="wod", region="eu-west-1", parameters=FRONTEND, run=real.append,
                  query=no_stack, say=lambda line: None)
    deploy.deploy(tmp_path, bucket="art", stack="wod", region="eu-west-1", parameters=FRONTEND, run=ran.append,
                  query=no_stack, say=lambda line: None, endpoint="http://localhost:1", transform=lambda p: p)
    assert [c[:-2] for c in ran] == real and all(c[-2:] == ["--endpoint-url", "http://localhost:1"] for c in ran)


TEMPLATE = {"Parameters": {"Prefix": {"Type": "String", "Default": "wod"}, "On": {"Type": "String"}},
            "Conditions": {"IsOn": {"Fn::Equals": [{"Ref": "On"}, "true"]}},
            "Resources": {
                "Secret": {"Type": "AWS::SecretsManager::Secret", "Properties": {"Name": {"Fn::Sub": "/${Prefix}/k"}}},
                "Fn": {"Type": "AWS::Lambda::Function", "DependsOn": ["Secret", "Table"], "Properties": {
                    "Environment": {"Variables": {"A": {"Ref": "Secret"}, "B": {"Fn::Sub": "${Secret}/${Table}"},
                                                  "C": {"Fn::GetAtt": ["Secret", "Arn"]}, "D": {"Ref": "Table"}}}}},
                "Table": {"Type": "AWS::DynamoDB::Table", "Properties": {}},
                "Activate": {"Type": "Custom::Thing", "Properties": {"ServiceToken": {"Fn::GetAtt": ["Fn", "Arn"]},
                                                                     "Of": {"Ref": "Secret"}}},
                "Other": {"Type": "Custom::Other", "Properties": {"ServiceToken": {"Fn::GetAtt": ["Fn", "Arn"]}}},
            },
            "Outputs": {"S": {"Value": {"Ref": "Secret"}}}}


def test_what_moto_cannot_create_is_left_out_and_references_to_it_are_placeholders():
    kept, skipped = standins.without_unsupported(TEMPLATE, {"AWS::Lambda::Function", "AWS::DynamoDB::Table"})
    assert skipped == {"Secret": "AWS::SecretsManager::Secret", "Activate": "Custom::Thing"}
    assert set(kept["Resources"]) == {"Fn", "Table", "Other"}
    fn = kept["Resources"]["Fn"]
    assert fn["DependsOn"] == ["Table"]
    assert fn["Properties"]["Environment"]["Variables"] == {
        "A": "skipped-Secret", "B": {"Fn::Sub": "skipped-Secret/${Table}"}, "C": "skipped-Secret-Arn",
        "D": {"Ref": "Table"}}
    assert kept["Outputs"]["S"]["Value"] == "skipped-Secret"
    assert TEMPLATE["Resources"]["Fn"]["DependsOn"] == ["Secret", "Table"]  # the input is left as it was


def test_the_resolver_evaluates_parameters_conditions_and_physical_ids():
    resolve = standins.Resolver(TEMPLATE, {"On": "true"}, {"AWS::StackName": "s"}, {"Table": "s-Table-1"})
    assert resolve(TEMPLATE["Resources"]["Secret"]["Properties"]) == {"Name": "/wod/k"}
    assert resolve({"Fn::Sub": "${AWS::StackName}-${Table}-${Missing}"}) == "s-s-Table-1-${Missing}"
    assert resolve({"Fn::If": ["IsOn", "yes", "no"]}) == "yes"
    assert resolve.active({"Condition": "IsOn"}) and not standins.Resolver(TEMPLATE, {"On": "false"}, {}, {}).active(
        {"Condition": "IsOn"})


def test_a_failing_step_is_named(tmp_path):
    lines: list[str] = []
    rehearsal = Rehearsal(Path(tmp_path), Path(tmp_path), "wod", "eu-west-1", "WKSHP-X", out=lines.append)
    shutil.rmtree(rehearsal.home)  # nothing runs: its working directory is not needed
    with pytest.raises(StepFailed, match=r"step 2 \(the second\) failed: broken"):
        with rehearsal.step("the first"):
            pass
        with rehearsal.step("the second"):
            raise RuntimeError("broken")
    assert lines[:3] == ["[1] the first ...", lines[1], "[2] the second ..."] and lines[1].startswith("    ok (")


LOCATION = {**FRONTEND, "Frontend": "false", "AlarmEmail": "", "Locations": "{}"}


def test_a_location_stack_away_from_its_frontends_tables_is_refused_with_the_reason(tmp_path):
    ran: list[list[str]] = []
    with pytest.raises(deploy.DeployError, match="no table wod-students in us-west-2: a location stack works on "
                                                 "its frontend's tables"):
        deploy.deploy(tmp_path, bucket="b", stack="wod-london", region="us-west-2", parameters=LOCATION,
                      run=ran.append, query=stack_in(None, tables="other-students"))
    assert ran == []
    deploy.deploy(tmp_path, bucket="b", stack="wod-london", region="eu-west-1",
                  parameters={**LOCATION, "ReceiptRuleSet": "wod-orders"}, run=ran.append,
                  query=stack_in(None, active="wod-orders", tables="wod-students"), say=lambda line: None)
    assert ran


def test_another_active_receipt_rule_set_is_named_and_kept_unless_told_to_replace_it(tmp_path):
    ran: list[list[str]] = []
    with pytest.raises(deploy.DeployError, match="the active SES receipt rule set in eu-west-1 is crm-inbound, not "
                                                 "this stack's.*ReceiptRuleSet=crm-inbound.*ReplaceActiveRuleSet=true"):
        deploy.deploy(tmp_path, bucket="b", stack="wod", region="eu-west-1", parameters=FRONTEND, run=ran.append,
                      query=stack_in(None, active="crm-inbound"))
    assert ran == []
    for told in ({"ReplaceActiveRuleSet": "true"}, {"ReceiptRuleSet": "crm-inbound"}):
        deploy.deploy(tmp_path, bucket="b", stack="wod", region="eu-west-1", parameters={**FRONTEND, **told},
                      run=ran.append, query=stack_in(None, active="crm-inbound"), say=lambda line: None)
    deploy.deploy(tmp_path, bucket="b", stack="wod", region="eu-west-1", parameters=FRONTEND, run=ran.append,
                  query=stack_in("UPDATE_COMPLETE", active="wod-orders"), say=lambda line: None)  # its own


def test_an_existing_mail_identity_is_named_before_anything_is_created(tmp_path):
    ran: list[list[str]] = []
    with pytest.raises(deploy.DeployError, match="SES already has the identity example.org in eu-west-1 "
                                                 r"\(Success\).*MailIdentityExists=true"):
        deploy.deploy(tmp_path, bucket="b", stack="wod", region="eu-west-1", parameters=FRONTEND, run=ran.append,
                      query=stack_in(None, identity="Success"))
    assert ran == []
    deploy.deploy(tmp_path, bucket="b", stack="wod", region="eu-west-1",
                  parameters={**FRONTEND, "MailIdentityExists": "true"}, run=ran.append,
                  query=stack_in(None, identity="Success"), say=lambda line: None)
    deploy.deploy(tmp_path, bucket="b", stack="wod", region="eu-west-1", parameters=FRONTEND, run=ran.append,
                  query=stack_in("UPDATE_COMPLETE", identity="Success"), say=lambda line: None)  # the stack's own


@pytest.mark.parametrize("name, value, message", [
    ("ClientRateLimit", "lots", "expected a whole number"), ("ClientRateLimit", "-1", "expected 0 to 100000"),
    ("StuckMinutes", "1", "expected 2 to 1440"), ("MailBulkShare", "1.5", "expected 0.05 to 1"),
    ("MailboxDailyCap", "0", "expected 1 to 1000"), ("HubSpawnLimit", "2.5", "expected a whole number"),
    ("ClientRateLimit", " 30", "expected a whole number"), ("MailBulkShare", "5e-1", "expected a number"),
    ("MailBulkShare", "nan", "expected a number"), ("MailBulkShare", "0.7 ", "expected a number"),
    ("VenueRateLimit", "0", "expected 1 to 1000000"),
    ("VenueNetworks", "the-hall", "'the-hall' is not an address or a network"),
])
def test_limits_out_of_range_are_refused_before_anything_is_uploaded(tmp_path, name, value, message):
    ran: list[list[str]] = []
    with pytest.raises(deploy.DeployError, match=f"{name}={value!r}: {message}"):
        deploy.deploy(tmp_path, bucket="b", stack="wod", region="eu-west-1", parameters={**FRONTEND, name: value},
                      run=ran.append, query=no_stack)
    assert ran == []


def test_every_limit_the_deploy_takes_the_template_takes():
    import re

    from infra.template import parameters

    for value in ("0.05", ".5", "1", "1.0", "0.7"):
        assert re.fullmatch(parameters()["MailBulkShare"]["AllowedPattern"], value)
        deploy.check_limits({"MailBulkShare": value})


def test_every_limit_is_a_parameter_with_the_local_default_and_reaches_the_functions_or_the_hub():
    from chalicelib.settings import Settings
    from infra import hub_host, merge, template

    settings, merged = Settings(), merge.merge_template()
    local = {"WOD_RATE_LIMIT_PER_MINUTE": settings.rate_limit_per_minute,
             "WOD_DOMAIN_RATE_LIMIT_PER_MINUTE": settings.domain_rate_limit_per_minute,
             "WOD_HOLDS_PER_CLIENT": settings.holds_per_client,
             "WOD_MAILBOX_MAILS_PER_DAY": settings.mailbox_mails_per_day,
             "WOD_MAIL_BULK_SHARE": settings.mail_bulk_share, "WOD_STUCK_MINUTES": settings.stuck_minutes,
             "WOD_READY_TIMEOUT_SECONDS": settings.ready_timeout_seconds,
             "WOD_VENUE_RATE_LIMIT_PER_MINUTE": settings.venue_rate_limit_per_minute,
             "WOD_VENUE_HOLDS": settings.venue_holds,
             "WOD_HUB_CONCURRENT_SPAWNS": 10, "WOD_IDLE_MINUTES": 20}
    assert {limit.variable for limit in template.LIMITS.values()} == set(local)
    for name, limit in template.LIMITS.items():
        assert float(merged["Parameters"][name]["Default"]) == local[limit.variable], name
        if limit.hub:
            assert f"${{{name}}}" in hub_host.USER_DATA
        else:
            assert template.environment("APIHandler")["Variables"][limit.variable] == {"Ref": name}


def test_the_metadata_fences_of_rehearsals_no_longer_running_are_found():
    from local.rehearsal_hub import imds_chain, stale_chains

    listed = "\n".join(["-P OUTPUT ACCEPT", "-A OUTPUT -o lo -j WOD-STUDENTS-56611", f"-A OUTPUT -j {imds_chain(3548)}",
                        f"-A OUTPUT -j {imds_chain(118261)}", "-A OUTPUT -j WOD-HUB-IMDS"])
    assert stale_chains(listed, {18261, 777}) == ["WOD-IMDS-R3548"]


def test_a_rule_set_that_is_not_the_active_one_is_refused_before_anything_is_created(tmp_path):
    """A rule in a set that is not active receives nothing: the location's orders would never arrive."""
    ran: list[list[str]] = []
    for active, named in (("wod-orders", "wod-order"), ("None", "wod-orders")):
        with pytest.raises(deploy.DeployError, match=f"ReceiptRuleSet={named} is not the active receipt rule set"):
            deploy.deploy(tmp_path, bucket="b", stack="wod-london", region="eu-west-1",
                          parameters={**LOCATION, "ReceiptRuleSet": named}, run=ran.append,
                          query=stack_in(None, active=active, tables="wod-students"))
    assert ran == []


def test_an_identity_said_to_exist_that_does_not_is_refused_before_anything_is_created(tmp_path):
    ran: list[list[str]] = []
    with pytest.raises(deploy.DeployError, match="MailIdentityExists=true, but SES has no identity example.org"):
        deploy.deploy(tmp_path, bucket="b", stack="wod", region="eu-west-1",
                      parameters={**FRONTEND, "MailIdentityExists": "true"}, run=ran.append, query=no_stack)
    assert ran == []


def test_tables_and_secrets_kept_from_a_deleted_stack_are_named_before_anything_is_created(tmp_path):
    """Tables outlive their stack, deleted secrets wait out their recovery window: a new stack of the
    same names would fail halfway through its creation."""
    ran: list[list[str]] = []
    with pytest.raises(deploy.DeployError, match=r"wod-customers, wod-students already exist in eu-west-1"):
        deploy.deploy(tmp_path, bucket="b", stack="wod", region="eu-west-1", parameters=FRONTEND, run=ran.append,
                      query=stack_in(None, tables="other-students\twod-customers\twod-students"))
    with pytest.raises(deploy.DeployError, match=r"/wod/hub-token/paris already exists? in eu-west-1"):
        deploy.deploy(tmp_path, bucket="b", stack="wod-paris", region="eu-west-1",
                      parameters={**LOCATION, "Location": "paris", "ReceiptRuleSet": "wod-orders"}, run=ran.append,
                      query=stack_in(None, active="wod-orders", tables="wod-students",
                                     secrets="/wod/admin-token\t/wod/hub-token/paris\t/wod/hub-token/london"))
    assert ran == []
    deploy.deploy(tmp_path, bucket="b", stack="wod", region="eu-west-1", parameters=FRONTEND, run=ran.append,
                  query=stack_in("UPDATE_COMPLETE", tables="wod-customers\twod-students", active="wod-orders",
                                 secrets="/wod/admin-token"), say=lambda line: None)  # its own, once created
    assert ran


@pytest.mark.parametrize("value", ["5", "-1", "ten"])
def test_a_waf_rate_limit_waf_would_refuse_is_refused_before_anything_is_uploaded(tmp_path, value):
    ran: list[list[str]] = []
    with pytest.raises(deploy.DeployError, match=f"WafRateLimit={value!r}: expected 0"):
        deploy.deploy(tmp_path, bucket="b", stack="wod", region="eu-west-1",
                      parameters={**FRONTEND, "WafRateLimit": value}, run=ran.append, query=no_stack)
    assert ran == []
    deploy.check_parameters({**FRONTEND, "WafRateLimit": "0"})
    deploy.check_parameters({**FRONTEND, "WafRateLimit": "2000"})
