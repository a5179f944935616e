"""The embedded AWS keeps a bounded tail of each table's stream: a reader that follows the newest
records reads on across a trim, and memory stays flat however long the stack runs."""
from __future__ import annotations

import uuid

import boto3


def test_a_trimmed_stream_keeps_its_newest_records_and_its_reader_reads_on(embedded_aws):
    client = boto3.client("dynamodb", endpoint_url=embedded_aws.endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    streams = boto3.client("dynamodbstreams", endpoint_url=embedded_aws.endpoint, region_name="us-east-1",
                           aws_access_key_id="testing", aws_secret_access_key="testing")
    name = f"trim{uuid.uuid4().hex[:8]}"
    client.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    arn = streams.list_streams(TableName=name)["Streams"][0]["StreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    for i in range(30):
        client.put_item(TableName=name, Item={"id": {"S": f"a{i}"}})
    first = streams.get_records(ShardIterator=streams.get_shard_iterator(
        StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"], Limit=25)
    last_read = first["Records"][-1]["dynamodb"]["SequenceNumber"]

    assert embedded_aws.trim_streams(keep=10) >= 20
    for i in range(3):
        client.put_item(TableName=name, Item={"id": {"S": f"b{i}"}})

    after = streams.get_records(ShardIterator=streams.get_shard_iterator(
        StreamArn=arn, ShardId=shard, ShardIteratorType="AFTER_SEQUENCE_NUMBER",
        SequenceNumber=last_read)["ShardIterator"])["Records"]
    keys = [r["dynamodb"]["Keys"]["id"]["S"] for r in after]
    assert keys == ["a25", "a26", "a27", "a28", "a29", "b0", "b1", "b2"]
    horizon = streams.get_records(ShardIterator=streams.get_shard_iterator(
        StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"])["Records"]
    assert len(horizon) == 13 and horizon[0]["dynamodb"]["Keys"]["id"]["S"] == "a20"
