"""Create the order path's topics and mail identities on the embedded AWS from the same
definitions the AWS stack uses (``infra/template.py``): the SNS topics, the SES receipt
rule set with its rule (one recipient per location the stack serves) and the sending
identity. In local mode the SMTP server then stands in for SES's inbound mail."""
from __future__ import annotations

import boto3

from chalicelib.settings import Settings
from infra.template import platform_resources

STACK_NAME = "wod"


def _resolve(value, parameters: dict[str, object]):
    """Just enough of CloudFormation's intrinsics for these resources' properties."""
    if isinstance(value, dict) and len(value) == 1:
        (key, arg), = value.items()
        if key == "Fn::Sub":
            for name, replacement in parameters.items():
                arg = arg.replace("${" + name + "}", str(replacement))
            return arg
        if key == "Ref":
            return parameters[arg]
    if isinstance(value, dict):
        return {k: _resolve(v, parameters) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, parameters) for v in value]
    return value


def create_messaging(endpoint: str, region: str, settings: Settings) -> str:
    """Create what is missing; return a one-line summary."""
    sns = boto3.client("sns", endpoint_url=endpoint, region_name=region)
    ses = boto3.client("ses", endpoint_url=endpoint, region_name=region)
    resources = platform_resources()
    parameters: dict[str, object] = {"AWS::StackName": STACK_NAME}
    topics = {}
    for logical, resource in resources.items():
        if resource["Type"] == "AWS::SNS::Topic":
            name = _resolve(resource["Properties"]["TopicName"], parameters)
            topics[logical] = sns.create_topic(Name=name)["TopicArn"]  # idempotent
    parameters.update(topics)
    sender_domain = settings.mail_from.rsplit("@", 1)[-1].strip(" >")
    ses.verify_domain_identity(Domain=sender_domain)
    rule_set = _resolve(resources["OrdersRuleSet"]["Properties"]["RuleSetName"], parameters)
    existing = {r["Name"] for r in ses.list_receipt_rule_sets().get("RuleSets", [])}
    if rule_set not in existing:
        ses.create_receipt_rule_set(RuleSetName=rule_set)
        rule = _resolve(resources["OrdersRule"]["Properties"]["Rule"],
                        {**parameters, "OrdersAddress": None})
        rule["Recipients"] = sorted(settings.locations.values())
        ses.create_receipt_rule(RuleSetName=rule_set, Rule=rule)
    return f"{len(topics)} topics, receipt rule {rule_set} for {len(settings.locations)} order address(es)"
