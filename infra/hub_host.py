"""The JupyterHub host of a location, as CloudFormation merged into the stack (``infra/template.py``).

``HubHost=true`` (the default) creates one EC2 instance in ``HubSubnet`` (a public subnet of
``HubVpc``) with an Elastic IP: at first boot its user data fetches the hub's files
(``infra/hub/`` + ``infra/jupyterhub/``, which ``make deploy`` uploads to
``s3://<content bucket>/hub/wod-hub.tar.gz``) and runs ``bootstrap.sh`` with this stack's
students table, hub token secret, region and the host name of ``HubUrl``. One instance, not an
auto scaling group: the hub's database and the students' homes live on it, and its address
stays that of the Elastic IP the DNS name points at.

The instance metadata service answers IMDSv2 only, with a hop limit of 1, and bootstrap.sh closes
it to every user but root, so student code cannot take the instance role's credentials. The role
(also for a hub on a VM of your own: ``HubHostInstanceProfile``) may read student items by key,
read this location's hub token, and read the hub's files: nothing else.
"""
from __future__ import annotations

from typing import Any

HUB_ARCHIVE = "hub/wod-hub.tar.gz"  # the key `make deploy` uploads infra/hub + infra/jupyterhub to
CONDITION = "HasHubHost"
DEFAULT_IMAGE = "resolve:ssm:/aws/service/debian/release/13/latest/amd64"

USER_DATA = """#!/bin/bash
# Workshops-on-Demand hub host: fetch the hub's files from the content bucket, run bootstrap.sh.
set -euo pipefail
exec > >(tee -a /var/log/wod-hub-bootstrap.log) 2>&1
export DEBIAN_FRONTEND=noninteractive
command -v aws >/dev/null || { apt-get update -qq && apt-get install -y -qq awscli >/dev/null; }
mkdir -p /opt/wod-hub-src
# `make deploy` uploads the archive once the stack exists: wait for it (up to an hour).
for attempt in $(seq 360); do
  aws s3 cp --only-show-errors --region ${AWS::Region} s3://${ContentBucket}/@ARCHIVE@ \\
    /opt/wod-hub-src/wod-hub.tar.gz && break
  echo "waiting for s3://${ContentBucket}/@ARCHIVE@ (make deploy uploads it), attempt $attempt"
  sleep 10
done
tar -xzf /opt/wod-hub-src/wod-hub.tar.gz -C /opt/wod-hub-src
bash /opt/wod-hub-src/infra/hub/bootstrap.sh --table ${TablePrefix}-students \\
  --hub-token-secret ${SecretsPrefix}/hub-token/${Location} --region ${AWS::Region} \\
  --events-key-secret ${SecretsPrefix}/events-key/${Location} \\
  --domain ${HubDomain} --public-ip ${HubHostAddress} --email "${AlarmEmail}" \\
  --concurrent-spawns ${HubSpawnLimit} --idle-minutes ${IdleMinutes} --events-url ${PublicUrl}/api/events
""".replace("@ARCHIVE@", HUB_ARCHIVE)


def _sub(text: str) -> dict:
    return {"Fn::Sub": text}


def _on(resource: dict) -> dict:
    return {"Condition": CONDITION, **resource}


def parameters() -> dict:
    return {
        "HubHost": {"Type": "String", "AllowedValues": ["true", "false"], "Default": "true",
                    "Description": "true: this stack runs the location's JupyterHub on an EC2 instance of its own; "
                                   "false: the hub runs elsewhere (HubHostInstanceProfile for a VM of yours)"},
        "HubVpc": {"Type": "String", "Default": "", "AllowedPattern": "(vpc-[0-9a-f]{8,17})?",
                   "Description": "VPC of HubSubnet (required with HubHost=true)"},
        "HubSubnet": {"Type": "String", "Default": "", "AllowedPattern": "(subnet-[0-9a-f]{8,17})?",
                      "Description": "Public subnet of the hub host (required with HubHost=true)"},
        "HubInstanceType": {"Type": "String", "Default": "t3.xlarge",
                            "Description": "The hub host's instance type (every participant's server runs on it)"},
        "HubHostImage": {"Type": "String", "Default": DEFAULT_IMAGE,
                         "Description": "AMI of the hub host (Debian or Ubuntu with Node.js 20+): an AMI id or "
                                        "resolve:ssm:<public parameter>"},
    }


def conditions() -> dict:
    # HubHost=true without a network is refused by the rule below; the condition names them too so
    # that the subnet and VPC are never empty where they are used.
    return {CONDITION: {"Fn::And": [{"Fn::Equals": [{"Ref": "HubHost"}, "true"]},
                                    {"Fn::Not": [{"Fn::Equals": [{"Ref": "HubSubnet"}, ""]}]},
                                    {"Fn::Not": [{"Fn::Equals": [{"Ref": "HubVpc"}, ""]}]}]}}


def rules() -> dict:
    return {"HubHostNeedsASubnet": {
        "RuleCondition": {"Fn::Equals": [{"Ref": "HubHost"}, "true"]},
        "Assertions": [
            {"Assert": {"Fn::Not": [{"Fn::Equals": [{"Ref": "HubSubnet"}, ""]}]},
             "AssertDescription": "HubHost=true needs HubSubnet: a public subnet for the JupyterHub host "
                                  "(or HubHost=false to run the hub elsewhere)"},
            {"Assert": {"Fn::Not": [{"Fn::Equals": [{"Ref": "HubVpc"}, ""]}]},
             "AssertDescription": "HubHost=true needs HubVpc: the VPC of HubSubnet"},
        ]}}


def role_statements(table_arn: dict, *secret_arns: dict) -> list[dict]:
    """Everything the hub host may do: student items by key, its hub token and events key, its own files."""
    return [
        {"Sid": "ReadStudents", "Effect": "Allow", "Action": ["dynamodb:GetItem"],  # wod_login.py: one student by key
         "Resource": [table_arn]},
        {"Sid": "HubToken", "Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"],
         "Resource": list(secret_arns)},
        {"Sid": "HubFiles", "Effect": "Allow", "Action": ["s3:GetObject"],
         "Resource": [_sub("${ContentBucket.Arn}/hub/*")]},
    ]


def resources() -> dict:
    from infra.template import role, secret_arn, table_arn

    domain = {"Fn::Select": [2, {"Fn::Split": ["/", {"Ref": "HubUrl"}]}]}  # https://<host>/... -> <host>
    return {
        "HubHostRole": role(
            "The JupyterHub host: reads student items by key, its hub token, its events key and its files, "
            "nothing else", "ec2.amazonaws.com",
            role_statements(table_arn("students"), secret_arn("hub-token"), secret_arn("events-key"))),
        "HubHostInstanceProfile": {"Type": "AWS::IAM::InstanceProfile",
                                   "Properties": {"Roles": [{"Ref": "HubHostRole"}]}},
        "HubHostSecurityGroup": _on({"Type": "AWS::EC2::SecurityGroup", "Properties": {
            "GroupDescription": "JupyterHub host: HTTPS from anywhere, HTTP for the ACME challenge, no SSH",
            "VpcId": {"Ref": "HubVpc"},
            "SecurityGroupIngress": [
                {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "CidrIp": "0.0.0.0/0",
                 "Description": "participants and the platform (JupyterHub)"},
                {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "CidrIpv6": "::/0",
                 "Description": "participants and the platform (JupyterHub)"},
                {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "CidrIp": "0.0.0.0/0",
                 "Description": "ACME HTTP-01 challenge (certbot for Lets Encrypt, only while it runs)"},
            ]}}),
        "HubHostAddress": _on({"Type": "AWS::EC2::EIP", "Properties": {
            "Domain": "vpc", "Tags": [{"Key": "Name", "Value": _sub("${AWS::StackName}-hub")}]}}),
        "HubHostLaunchTemplate": _on({"Type": "AWS::EC2::LaunchTemplate", "Properties": {
            "LaunchTemplateData": {
                "ImageId": {"Fn::Sub": "${HubHostImage}"},  # an AMI id, or resolve:ssm:<parameter>
                "InstanceType": {"Ref": "HubInstanceType"},
                "IamInstanceProfile": {"Arn": {"Fn::GetAtt": ["HubHostInstanceProfile", "Arn"]}},
                # IMDSv2 only, and its token cannot cross a hop (a container, a forwarding student process)
                "MetadataOptions": {"HttpEndpoint": "enabled", "HttpTokens": "required",
                                    "HttpPutResponseHopLimit": 1},
                "NetworkInterfaces": [{"DeviceIndex": 0, "SubnetId": {"Ref": "HubSubnet"},
                                       "AssociatePublicIpAddress": True,
                                       "Groups": [{"Ref": "HubHostSecurityGroup"}]}],
                "UserData": {"Fn::Base64": {"Fn::Sub": [USER_DATA, {"HubDomain": domain}]}},
                "TagSpecifications": [{"ResourceType": "instance", "Tags": [
                    {"Key": "Name", "Value": _sub("${AWS::StackName}-hub")}]}],
            }}}),
        "HubHostInstance": _on({"Type": "AWS::EC2::Instance", "Properties": {
            "LaunchTemplate": {"LaunchTemplateId": {"Ref": "HubHostLaunchTemplate"},
                               "Version": {"Fn::GetAtt": ["HubHostLaunchTemplate", "LatestVersionNumber"]}}}}),
        "HubHostAddressAssociation": _on({"Type": "AWS::EC2::EIPAssociation", "Properties": {
            "AllocationId": {"Fn::GetAtt": ["HubHostAddress", "AllocationId"]},
            "InstanceId": {"Ref": "HubHostInstance"}}}),
    }


def outputs() -> dict:
    return {
        "HubHostInstanceProfile": {"Value": {"Ref": "HubHostInstanceProfile"},
                                   "Description": "For a hub on a VM of your own (HubHost=false)"},
        "HubHostAddress": _on({"Value": {"Ref": "HubHostAddress"},
                               "Description": "Point HubUrl's DNS name (an A record) at this address"}),
        "HubHostInstanceId": _on({"Value": {"Ref": "HubHostInstance"}}),
    }


def hub_host() -> dict[str, Any]:
    """The hub host's part of the template: Parameters, Conditions, Rules, Resources, Outputs."""
    return {"Parameters": parameters(), "Conditions": conditions(), "Rules": rules(),
            "Resources": resources(), "Outputs": outputs()}
