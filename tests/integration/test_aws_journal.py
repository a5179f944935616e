"""What the embedded DynamoDB answered survives a SIGKILL of the aws process: every write is
journaled (fsync) before its answer leaves, and the next start replays the journal on top of the
last snapshot. The process is killed right after the writes, before its once-a-second snapshot."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest

from local.persistence import Journal
from tests.stack import free_port

pytestmark = pytest.mark.timeout(120)
ROOT = Path(__file__).resolve().parents[2]


def start_aws(state: Path, port: int) -> subprocess.Popen:
    """``python -m local aws`` as the supervisor starts it; returns once it says it is ready."""
    read_end, write_end = os.pipe()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WOD_")}
    env.update(WOD_STATE_DIR=str(state), WOD_AWS_PORT=str(port), WOD_WORKERS_PORT=str(free_port()),
               WOD_READY_FD=str(write_end), AWS_DEFAULT_REGION="us-east-1", AWS_ACCESS_KEY_ID="testing",
               AWS_SECRET_ACCESS_KEY="testing")
    process = subprocess.Popen([sys.executable, "-m", "local", "aws"], cwd=ROOT, env=env, pass_fds=(write_end,),
                               stdout=subprocess.DEVNULL, stderr=open(state / "aws.err", "ab"))
    os.close(write_end)
    with os.fdopen(read_end, "rb") as ready:
        line = ready.readline()  # written once the tables are restored and the journal replayed
    assert line, (state / "aws.err").read_text()[-3000:]
    return process


def test_answered_writes_survive_a_sigkill(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    port = free_port()
    process = start_aws(state, port)
    client = boto3.client("dynamodb", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1")
    try:
        time.sleep(1.5)  # the start's snapshot is behind us: what follows is only in the journal
        for n in range(40):
            client.put_item(TableName="wod-nonces", Item={"nonce": {"S": f"n{n}"}, "expires": {"N": "1"}})
        client.update_item(TableName="wod-nonces", Key={"nonce": {"S": "n0"}}, UpdateExpression="ADD hits :one",
                           ExpressionAttributeValues={":one": {"N": "1"}})
        client.delete_item(TableName="wod-nonces", Key={"nonce": {"S": "n1"}})
        try:  # refused: not journaled, and not replayed as if it had happened
            client.put_item(TableName="wod-nonces", Item={"nonce": {"S": "n2"}, "expires": {"N": "9"}},
                            ConditionExpression="attribute_not_exists(nonce)")
        except client.exceptions.ConditionalCheckFailedException:
            pass
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    process = start_aws(state, port)
    try:
        items = {item["nonce"]["S"]: item for item in client.scan(TableName="wod-nonces")["Items"]}
        assert len(items) == 39 and "n1" not in items
        assert items["n0"]["hits"] == {"N": "1"} and items["n2"]["expires"] == {"N": "1"}
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    assert Journal(state).generations() and len(Journal(state).generations()) == 1  # older ones dropped


def test_a_line_cut_short_by_a_crash_is_skipped(tmp_path):
    journal = Journal(tmp_path)
    journal.open(3)
    journal.append({"X-Amz-Target": "DynamoDB_20120810.PutItem"}, b'{"TableName": "t"}')
    journal.close()
    with open(journal.path(3), "ab") as handle:
        handle.write(b'{"headers": {"X-Amz-Tar')
    assert [r["headers"] for r in journal.records(3)] == [{"X-Amz-Target": "DynamoDB_20120810.PutItem"}]
