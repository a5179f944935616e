"""IAM is enforced where the deploy rehearsal runs the functions: a role the template made, with one
grant removed, is refused the call that grant allows, both where moto checks the action (its copy
of the policy) and where the rehearsal checks the resource (the call evaluated as botocore sends it)."""
from __future__ import annotations

import json
import uuid

import boto3
import pytest
from botocore.exceptions import ClientError

from infra import iam, merge, standins, template
from local.function_host import Recorder
from local.rehearsal_iam import enforce

REGION, ACCOUNT = "eu-west-1", "123456789012"


@pytest.fixture
def enforced():
    """A fresh embedded AWS with IAM on, and its deployer's credentials; IAM off again afterwards
    (moto's switch is process-wide)."""
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin

    from local.aws import EmbeddedAws

    aws = EmbeddedAws("127.0.0.1", 0).start()
    endpoint = f"http://127.0.0.1:{aws.port}"
    try:
        deployer = enforce(endpoint, REGION, user=f"deployer-{uuid.uuid4().hex[:8]}")
        yield endpoint, deployer
    finally:
        settings.INITIAL_NO_AUTH_ACTION_COUNT = float("inf")  # type: ignore[assignment]
        ActionAuthenticatorMixin.request_count = 0
        aws.stop()


def api_policy(prefix: str, without: tuple[str, str] | None = None) -> dict:
    """The API function's policy as the stack deploys it (with ``prefix``'s tables); ``without``:
    (Sid, an action or a table) taken out of it."""
    merged = merge.merge_template()
    resolve = standins.Resolver(merged, {"TablePrefix": prefix, "MailDomain": "example.org", "Location": "paris",
                                         "SecretsPrefix": "/wod"},
                                {"AWS::StackName": "wod", "AWS::Region": REGION, "AWS::AccountId": ACCOUNT,
                                 "AWS::Partition": "aws", "AWS::NoValue": ""},
                                {"MailConfigurationSet": "wod-mail",
                                 "FailedEventsQueue": f"https://sqs/{ACCOUNT}/failed"})
    document = resolve(template.function_role("APIHandler", template.FUNCTIONS["APIHandler"]))
    document = document["Properties"]["Policies"][0]["PolicyDocument"]
    statements = []
    for statement in document["Statement"]:
        if without and statement["Sid"] == without[0]:
            if without[1].startswith("table:"):
                table = without[1].removeprefix("table:")
                statement = {**statement, "Resource": [r for r in statement["Resource"] if f":table/{table}" not in r]}
            else:
                statement = {**statement, "Action": [a for a in statement["Action"] if a != without[1]]}
        statements.append(statement)
    return {"Version": "2012-10-17", "Statement": statements}


def role_session(endpoint: str, deployer: dict, policy: dict) -> boto3.session.Session:
    """A role with ``policy`` (moto gets its copy), assumed by the deployer as the rehearsal does."""
    admin = boto3.session.Session(aws_access_key_id=deployer["AWS_ACCESS_KEY_ID"],
                                  aws_secret_access_key=deployer["AWS_SECRET_ACCESS_KEY"], region_name=REGION)
    client = admin.client("iam", endpoint_url=endpoint)
    name = f"api-{uuid.uuid4().hex[:8]}"
    trust = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": deployer["arn"]}, "Action": "sts:AssumeRole"}]}
    role = client.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]
    client.put_role_policy(RoleName=name, PolicyName="least-privilege",
                           PolicyDocument=json.dumps(iam.moto_copy(policy)[0]))
    sts = admin.client("sts", endpoint_url=endpoint)
    keys = sts.assume_role(RoleArn=role["Arn"], RoleSessionName="test")["Credentials"]
    return boto3.session.Session(aws_access_key_id=keys["AccessKeyId"], aws_secret_access_key=keys["SecretAccessKey"],
                                 aws_session_token=keys["SessionToken"], region_name=REGION)


def test_moto_refuses_an_action_the_role_lost(enforced):
    endpoint, deployer = enforced
    admin = boto3.client("ses", endpoint_url=endpoint, region_name=REGION,
                         aws_access_key_id=deployer["AWS_ACCESS_KEY_ID"],
                         aws_secret_access_key=deployer["AWS_SECRET_ACCESS_KEY"])
    admin.verify_domain_identity(Domain="example.org")
    raw = {"Data": b"From: noreply@example.org\r\nTo: ada@example.com\r\nSubject: hi\r\n\r\nhello"}
    whole = role_session(endpoint, deployer, api_policy("t"))
    whole.client("ses", endpoint_url=endpoint).send_raw_email(RawMessage=raw)
    lost = role_session(endpoint, deployer, api_policy("t", without=("SendMail", "ses:SendRawEmail")))
    with pytest.raises(ClientError) as refused:
        lost.client("ses", endpoint_url=endpoint).send_raw_email(RawMessage=raw)
    assert "AccessDenied" in refused.value.response["Error"]["Code"]
    unsigned = boto3.client("ses", endpoint_url=endpoint, region_name=REGION, aws_access_key_id="AKIANOBODY",
                            aws_secret_access_key="nobody")
    with pytest.raises(ClientError):  # not a key moto knows: every request is authenticated
        unsigned.get_send_quota()


def test_the_rehearsal_refuses_a_table_the_role_lost(enforced, tmp_path):
    endpoint, deployer = enforced
    prefix = f"t{uuid.uuid4().hex[:6]}"
    admin = boto3.client("dynamodb", endpoint_url=endpoint, region_name=REGION,
                         aws_access_key_id=deployer["AWS_ACCESS_KEY_ID"],
                         aws_secret_access_key=deployer["AWS_SECRET_ACCESS_KEY"])
    admin.create_table(TableName=f"{prefix}-nonces", KeySchema=[{"AttributeName": "nonce", "KeyType": "HASH"}],
                       AttributeDefinitions=[{"AttributeName": "nonce", "AttributeType": "S"}],
                       BillingMode="PAY_PER_REQUEST")
    count = {"TableName": f"{prefix}-nonces", "Key": {"nonce": {"S": "rate:register:x:0"}},
             "UpdateExpression": "ADD hits :one", "ExpressionAttributeValues": {":one": {"N": "1"}}}
    for policy, allowed in ((api_policy(prefix), True), (api_policy(prefix, without=("TablesWrite", "table:" + prefix
                                                                                     + "-nonces")), False)):
        record = tmp_path / f"calls-{allowed}.jsonl"
        recorder = Recorder({"logical": "APIHandler", "policy": policy, "region": REGION, "account": ACCOUNT,
                             "hash_keys": {f"{prefix}-nonces": "nonce"}, "record": str(record)})
        client = recorder.attach(role_session(endpoint, deployer, policy).client("dynamodb", endpoint_url=endpoint))
        if allowed:
            client.update_item(**count)  # moto's copy allows the action on "*": only the resource is at stake
        else:
            with pytest.raises(ClientError) as refused:
                client.update_item(**count)
            assert refused.value.response["Error"]["Code"] == "AccessDeniedException"
            assert f"dynamodb:UpdateItem on resource: arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{prefix}-nonces" \
                in refused.value.response["Error"]["Message"]
        [line] = record.read_text().splitlines()
        assert json.loads(line)["allowed"] is allowed
    assert int(admin.get_item(TableName=f"{prefix}-nonces", Key=count["Key"])["Item"]["hits"]["N"]) == 1  # once
