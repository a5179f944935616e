"""The local stack creates the order path's topics and SES rule from infra/template.py."""
from __future__ import annotations

import boto3

from local.messaging import create_messaging


def test_topics_identity_and_receipt_rule_come_from_the_template(aws, settings):
    summary = create_messaging(None, "us-east-1", settings)
    assert create_messaging(None, "us-east-1", settings) == summary  # a restart creates nothing twice
    topics = {t["TopicArn"].rsplit(":", 1)[1] for t in boto3.client("sns", "us-east-1").list_topics()["Topics"]}
    assert {"wod-orders", "wod-alarms"} <= topics
    ses = boto3.client("ses", "us-east-1")
    rule_set = ses.describe_receipt_rule_set(RuleSetName="wod-orders")
    [rule] = rule_set["Rules"]
    assert rule["Recipients"] == sorted(settings.locations.values())
    assert rule["Actions"][0]["SNSAction"]["TopicArn"].endswith(":wod-orders")
    assert "wod.local" in ses.list_identities(IdentityType="Domain")["Identities"]
