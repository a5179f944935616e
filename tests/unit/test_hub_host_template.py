"""The JupyterHub host in the AWS template (infra/hub_host.py, merged by infra/template.py): IMDSv2
with a hop limit of 1, a role that may only read student items by key, its hub token and its
files, user data that runs bootstrap.sh with this stack's names, HTTPS in and no SSH, a subnet
required when it is on, and nothing of it when it is off."""
from __future__ import annotations

import base64
import json
import re
import tarfile
from pathlib import Path

import pytest

from infra import hub_host, merge
from infra import template as infra

ROOT = Path(__file__).resolve().parents[2]
HOST_TYPES = {"AWS::EC2::SecurityGroup", "AWS::EC2::EIP", "AWS::EC2::LaunchTemplate", "AWS::EC2::Instance",
              "AWS::EC2::EIPAssociation"}


@pytest.fixture(scope="module")
def template() -> dict:
    return json.loads(json.dumps(merge.merge_template()))  # as `make package` writes it


def test_the_instance_answers_imdsv2_only_with_a_hop_limit_of_one(template):
    data = template["Resources"]["HubHostLaunchTemplate"]["Properties"]["LaunchTemplateData"]
    assert data["MetadataOptions"] == {"HttpEndpoint": "enabled", "HttpTokens": "required",
                                       "HttpPutResponseHopLimit": 1}
    instance = template["Resources"]["HubHostInstance"]["Properties"]
    assert instance["LaunchTemplate"]["LaunchTemplateId"] == {"Ref": "HubHostLaunchTemplate"}
    assert set(instance) == {"LaunchTemplate"}  # nothing overrides the launch template's metadata options
    assert data["IamInstanceProfile"] == {"Arn": {"Fn::GetAtt": ["HubHostInstanceProfile", "Arn"]}}


def test_the_hub_hosts_role_may_do_exactly_three_things(template):
    role = template["Resources"]["HubHostRole"]["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"] == [
        {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]
    [policy] = role["Policies"]
    assert "ManagedPolicyArns" not in role
    assert policy["PolicyDocument"]["Statement"] == [
        {"Sid": "ReadStudents", "Effect": "Allow", "Action": ["dynamodb:GetItem"],  # one student by key (wod_login.py)
         "Resource": [infra.table_arn("students")]},
        {"Sid": "HubToken", "Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"],
         "Resource": [infra.secret_arn("hub-token"), infra.secret_arn("events-key")]},
        {"Sid": "HubFiles", "Effect": "Allow", "Action": ["s3:GetObject"],
         "Resource": [{"Fn::Sub": "${ContentBucket.Arn}/hub/*"}]},
    ]
    text = json.dumps(policy)
    assert "*\"" not in text.replace("/hub/*\"", "")  # no wildcard action or resource besides the hub's files
    assert infra.secret_arn("hub-token")["Fn::Sub"].endswith("/hub-token/${Location}-??????")  # this location's
    assert infra.secret_arn("events-key")["Fn::Sub"].endswith("/events-key/${Location}-??????")


def user_data(template: dict) -> str:
    data = template["Resources"]["HubHostLaunchTemplate"]["Properties"]["LaunchTemplateData"]["UserData"]
    text, variables = data["Fn::Base64"]["Fn::Sub"]
    assert variables == {"HubDomain": {"Fn::Select": [2, {"Fn::Split": ["/", {"Ref": "HubUrl"}]}]}}
    return text


def test_user_data_fetches_the_hub_files_and_runs_bootstrap_with_this_stacks_names(template):
    text = user_data(template)
    assert text.startswith("#!/bin/bash\n")
    assert "s3://${ContentBucket}/hub/wod-hub.tar.gz" in text
    run = re.search(r"bash /opt/wod-hub-src/infra/hub/bootstrap.sh (.*?)\n(?!  )", text, re.S).group(1)
    assert "--table ${TablePrefix}-students" in run
    assert "--hub-token-secret ${SecretsPrefix}/hub-token/${Location}" in run
    assert "--events-key-secret ${SecretsPrefix}/events-key/${Location}" in run
    assert "--region ${AWS::Region}" in run and "--domain ${HubDomain}" in run
    assert "--public-ip ${HubHostAddress}" in run
    names = set(re.findall(r"\$\{([A-Za-z0-9:]+)\}", text)) - {"HubDomain"}
    known = set(template["Parameters"]) | set(template["Resources"]) | {"AWS::Region"}
    assert names <= known, names - known
    for option in re.findall(r"(--[a-z-]+)", run):  # every option it passes is one bootstrap.sh takes
        assert f"  {option} " in (ROOT / "infra" / "hub" / "bootstrap.sh").read_text(), option


def test_make_deploy_uploads_the_archive_the_user_data_fetches(tmp_path):
    from infra import deploy

    archive = deploy.hub_archive(tmp_path / "hub.tar.gz")
    command = deploy.upload_command(archive, bucket="b", region="eu-west-1")
    assert command[3:5] == ["s3", "cp"]
    assert command.index(str(archive)) + 1 == command.index(f"s3://b/{hub_host.HUB_ARCHIVE}")
    with tarfile.open(tmp_path / "hub.tar.gz") as tar:
        names = set(tar.getnames())
    assert {"infra/hub/bootstrap.sh", "infra/jupyterhub/wod_authenticator.py",
            "infra/jupyterhub/wod_login.py"} <= names
    assert not any("__pycache__" in name for name in names)


def test_https_comes_in_and_ssh_does_not(template):
    ingress = template["Resources"]["HubHostSecurityGroup"]["Properties"]["SecurityGroupIngress"]
    ports = {(rule["FromPort"], rule["ToPort"]) for rule in ingress}
    assert ports == {(443, 443), (80, 80)}  # 80: Let's Encrypt's HTTP-01 challenge
    assert all(rule["IpProtocol"] == "tcp" for rule in ingress)
    assert template["Resources"]["HubHostSecurityGroup"]["Properties"]["VpcId"] == {"Ref": "HubVpc"}
    [nic] = template["Resources"]["HubHostLaunchTemplate"]["Properties"]["LaunchTemplateData"]["NetworkInterfaces"]
    assert nic["SubnetId"] == {"Ref": "HubSubnet"} and nic["Groups"] == [{"Ref": "HubHostSecurityGroup"}]
    assert "KeyName" not in json.dumps(template["Resources"]["HubHostLaunchTemplate"])


def test_a_hub_host_needs_a_subnet_and_its_vpc(template):
    assert template["Parameters"]["HubHost"]["Default"] == "true"
    rule = template["Rules"]["HubHostNeedsASubnet"]
    assert rule["RuleCondition"] == {"Fn::Equals": [{"Ref": "HubHost"}, "true"]}
    checked = {a["Assert"]["Fn::Not"][0]["Fn::Equals"][0]["Ref"] for a in rule["Assertions"]}
    assert checked == {"HubSubnet", "HubVpc"}
    assert all("HubHost=true needs" in a["AssertDescription"] for a in rule["Assertions"])
    assert re.fullmatch(template["Parameters"]["HubSubnet"]["AllowedPattern"], "subnet-0123456789abcdef0")
    assert not re.fullmatch(template["Parameters"]["HubSubnet"]["AllowedPattern"], "subnet-x; rm -rf /")


def evaluate(condition, parameters: dict, conditions: dict) -> bool:
    if "Fn::Equals" in condition:
        left, right = (parameters[v["Ref"]] if isinstance(v, dict) else v for v in condition["Fn::Equals"])
        return left == right
    if "Fn::And" in condition:
        return all(evaluate(c, parameters, conditions) for c in condition["Fn::And"])
    if "Fn::Not" in condition:
        return not evaluate(condition["Fn::Not"][0], parameters, conditions)
    if "Condition" in condition:
        return evaluate(conditions[condition["Condition"]], parameters, conditions)
    raise AssertionError(f"unexpected condition {condition}")


def created(template: dict, **given: str) -> dict:
    """The resources CloudFormation creates with these parameters (the rest at their defaults)."""
    parameters = {name: p.get("Default", "") for name, p in template["Parameters"].items()} | given
    return {logical: r for logical, r in template["Resources"].items()
            if "Condition" not in r or evaluate(template["Conditions"][r["Condition"]], parameters,
                                                template["Conditions"])}


def test_hub_host_off_creates_no_instance_but_keeps_the_profile_for_a_vm_of_your_own(template):
    on = created(template, HubHost="true", HubVpc="vpc-0123456789abcdef0", HubSubnet="subnet-0123456789abcdef0")
    off = created(template, HubHost="false")
    assert {r.get("Type") for r in on.values()} >= HOST_TYPES
    assert not {r.get("Type") for r in off.values()} & HOST_TYPES
    assert {"HubHostRole", "HubHostInstanceProfile"} <= set(off)
    assert template["Outputs"]["HubHostAddress"]["Condition"] == hub_host.CONDITION
    assert "Condition" not in template["Outputs"]["HubHostInstanceProfile"]


def test_the_user_data_stays_within_ec2s_limit(template):
    assert len(base64.b64encode(user_data(template).encode())) < 16 * 1024
