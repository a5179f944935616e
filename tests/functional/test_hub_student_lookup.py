"""The hub's student lookup (infra/jupyterhub/wod_login.py) against DynamoDB (moto)."""
from __future__ import annotations

from datetime import timedelta

import boto3
from moto import mock_aws

from tests.unit.test_hub_authenticator import HASH, NOW, PASSWORD, expires, item, wod_login


def test_lookup_reads_only_what_the_hub_needs_and_a_missing_table_refuses():
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(TableName="wod-students", BillingMode="PAY_PER_REQUEST",
                            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}])
        client.put_item(TableName="wod-students", Item={
            "id": {"S": "student207"}, "status": {"S": "active"}, "password_hash": {"S": HASH},
            "expires_at": {"S": expires(timedelta(hours=1))}, "workshop": {"S": "api101"}, "seq": {"N": "7"}})
        students = wod_login.DynamoStudents("wod-students", region="us-east-1")
        assert students("student207") == item()  # only the attributes the hub needs
        assert students("student208") is None
        assert wod_login.login("student207", PASSWORD, students, now=NOW).ok
        missing_table = wod_login.DynamoStudents("no-such-table", region="us-east-1")
        assert "lookup failed" in wod_login.login("student207", PASSWORD, missing_table, now=NOW).reason
