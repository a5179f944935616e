"""The embedded DynamoDB's answers written directly (local/dynamo_answers.py) are moto's own: every
operation it answers, on items of every attribute type, errors included, as the client receives them."""
from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
import uuid
from typing import Any

import pytest

from local import dynamo_answers

AUTH = ("AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/{service}/aws4_request, "
        "SignedHeaders=host, Signature=0")
VOLATILE = {"eventID", "ApproximateCreationDateTime", "SequenceNumber", "SizeBytes", "NextShardIterator",
            "ShardIterator"}
ITEM = {"pk": {"S": "a"}, "sk": {"N": "1"}, "b": {"B": base64.b64encode(b"\x00\x01").decode()},
        "bs": {"BS": [base64.b64encode(b"x").decode()]}, "ss": {"SS": ["p", "q"]}, "ns": {"NS": ["1", "2.5"]},
        "m": {"M": {"x": {"L": [{"N": "1.5"}, {"NULL": True}, {"BOOL": False}, {"S": ""}]}}}}


def _operations(table: str) -> list[tuple[str, dict]]:
    key, other = {"pk": {"S": "a"}, "sk": {"N": "1"}}, {"pk": {"S": "v"}, "sk": {"N": "2"}}
    set_c = {"UpdateExpression": "SET c = :c", "ExpressionAttributeValues": {":c": {"N": "3"}}}
    by_pk = {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "a"}}}
    return [
        ("PutItem", {"TableName": table, "Item": ITEM, "ReturnValues": "ALL_OLD"}),
        ("PutItem", {"TableName": table, "Item": ITEM, "ReturnValues": "ALL_OLD", "ReturnConsumedCapacity": "TOTAL"}),
        ("PutItem", {"TableName": table, "Item": {**ITEM, "sk": {"N": "2"}}}),
        ("GetItem", {"TableName": table, "Key": key}),
        ("GetItem", {"TableName": table, "Key": {"pk": {"S": "none"}, "sk": {"N": "1"}}}),
        ("GetItem", {"TableName": table, "Key": key, "ProjectionExpression": "m.x[0], ss"}),
        ("UpdateItem", {"TableName": table, "Key": key, **set_c, "ReturnValues": "ALL_NEW"}),
        ("UpdateItem", {"TableName": table, "Key": key, **set_c, "ReturnValues": "UPDATED_OLD"}),
        ("UpdateItem", {"TableName": table, "Key": key, **set_c}),
        ("UpdateItem", {"TableName": table, "Key": key, "UpdateExpression": "SET c = :c",
                        "ConditionExpression": "c = :d", "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                        "ExpressionAttributeValues": {":c": {"N": "4"}, ":d": {"N": "9"}}}),  # refused: 400
        ("Query", {"TableName": table, **by_pk}),
        ("Query", {"TableName": table, **by_pk, "Limit": 1}),
        ("Query", {"TableName": table, **by_pk, "Select": "COUNT", "ReturnConsumedCapacity": "TOTAL"}),
        ("Query", {"TableName": table, "KeyConditionExpression": "pk = :p",
                   "ExpressionAttributeValues": {":p": {"S": "none"}}}),
        ("Scan", {"TableName": table, "Limit": 1}),
        ("Scan", {"TableName": table}),
        ("BatchGetItem", {"RequestItems": {table: {"Keys": [key, {"pk": {"S": "none"}, "sk": {"N": "1"}}]}}}),
        ("BatchWriteItem", {"RequestItems": {table: [{"PutRequest": {"Item": {"pk": {"S": "w"}, "sk": {"N": "2"}}}}]}}),
        ("TransactGetItems", {"TransactItems": [{"Get": {"TableName": table, "Key": key}},
                                                {"Get": {"TableName": table, "Key": {**key, "pk": {"S": "x"}}}}]}),
        ("TransactWriteItems", {"TransactItems": [{"Put": {"TableName": table, "Item": other}}],
                                "ReturnConsumedCapacity": "TOTAL"}),
        ("TransactWriteItems", {"TransactItems": [{"Put": {  # refused: 400
            "TableName": table, "Item": other, "ConditionExpression": "attribute_not_exists(pk)",
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}}]}),
        ("DeleteItem", {"TableName": table, "Key": {"pk": {"S": "w"}, "sk": {"N": "2"}}, "ReturnValues": "ALL_OLD"}),
        ("DeleteItem", {"TableName": table, "Key": {"pk": {"S": "w"}, "sk": {"N": "2"}}}),
        ("GetItem", {"TableName": f"{table}-none", "Key": key}),  # no such table: 400
    ]


def _call(endpoint: str, service: str, target: str, body: dict, steady: bool = True) -> tuple[int, str, Any]:
    """(status, content type, JSON answer), the answer ``_steady`` unless asked otherwise."""
    request = urllib.request.Request(endpoint, data=json.dumps(body).encode(), headers={
        "X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.0",
        "Authorization": AUTH.format(service=service)})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            status, content_type, raw = answer.status, answer.headers["Content-Type"], answer.read()
    except urllib.error.HTTPError as refused:
        status, content_type, raw = refused.code, refused.headers["Content-Type"], refused.read()
    answer = json.loads(raw) if raw else None
    return status, content_type, _steady(answer) if steady else answer


def _steady(value: object) -> object:
    """The answer without what differs from one run to the next (ids, times, stream positions)."""
    if isinstance(value, dict):
        return {k: "*" if k in VOLATILE else _steady(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_steady(v) for v in value]
    return value


def _run(endpoint: str, table: str) -> list:
    dynamo = lambda op, body: _call(endpoint, "dynamodb", f"DynamoDB_20120810.{op}", body)  # noqa: E731
    streams = lambda op, body, steady=True: _call(  # noqa: E731
        endpoint, "dynamodb", f"DynamoDBStreams_20120810.{op}", body, steady)
    dynamo("CreateTable", {
        "TableName": table, "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                                 {"AttributeName": "sk", "AttributeType": "N"}],
        "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}})
    try:
        answers = [(op, *dynamo(op, body)) for op, body in _operations(table)]
        arn = streams("ListStreams", {"TableName": table})[2]["Streams"][0]["StreamArn"]
        shard = streams("DescribeStream", {"StreamArn": arn})[2]["StreamDescription"]["Shards"][0]["ShardId"]
        for start in ("TRIM_HORIZON", "LATEST"):
            iterator = streams("GetShardIterator", {"StreamArn": arn, "ShardId": shard, "ShardIteratorType": start},
                               steady=False)[2]["ShardIterator"]  # itself volatile: from the answer as it is
            answers.append(("GetRecords", *streams("GetRecords", {"ShardIterator": iterator, "Limit": 100})))
        return answers
    finally:
        dynamo("DeleteTable", {"TableName": table})


@pytest.fixture
def walked_first():
    """moto's own answers for the test's start; the direct ones as they were afterwards."""
    was = bool(dynamo_answers._installed)
    dynamo_answers.uninstall()
    yield
    dynamo_answers.uninstall()
    if was:
        dynamo_answers.install()


def test_every_direct_answer_is_the_one_moto_writes(embedded_aws, walked_first):
    table = f"answers-{uuid.uuid4().hex[:8]}"
    walked = _run(embedded_aws.endpoint, table)
    before = dict(dynamo_answers.answered)
    dynamo_answers.install()
    direct = _run(embedded_aws.endpoint, table)
    assert [a[:2] for a in walked].count(("UpdateItem", 400)) == 1  # the refusals are in the run
    assert len(direct) == len(walked)
    for (op, *moto), (_, *ours) in zip(walked, direct, strict=True):
        assert ours == moto, op
    used = {op for op, n in dynamo_answers.answered.items() if n > before.get(op, 0)}
    assert used == dynamo_answers.DIRECT  # each was answered directly at least once
    records = next(a[3] for a in direct if a[0] == "GetRecords")["Records"]
    assert [r["eventName"] for r in records][:3] == ["INSERT", "MODIFY", "INSERT"]
    assert records[1]["dynamodb"]["OldImage"]["b"] == {"B": ITEM["b"]["B"]}
