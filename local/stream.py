"""The registrations' stream in local mode: what DynamoDB Streams and a Lambda event source mapping
do on AWS, for the workers process.

A thread reads the customers table's stream on the embedded AWS (``GetRecords``, from the newest
record at start) and hands each batch to ``app.py``'s ``outbox-dispatcher`` function, shaped as the
event source mapping shapes it (``{"Records": [...]}``), so the same code delivers what a state
change owes on AWS and here. Records written while the workers were away are not read again: the
time checks deliver what they owe (``services/outbox.deliver_due``).
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("wod.local.stream")
BATCH = 100  # records per GetRecords, as the event source mapping's batch size
IDLE_SECONDS = 0.1  # between two reads that found nothing


class StreamReader:
    """Follow ``table``'s stream and call ``handler({"Records": batch})`` for each batch read."""

    def __init__(self, client: Any, table: str, handler: Callable[[dict], Any], stopping: threading.Event,
                 idle_seconds: float = IDLE_SECONDS):
        self.client, self.table, self.handler, self.stopping = client, table, handler, stopping
        self.idle_seconds = idle_seconds
        self.batches = self.records = 0
        self.thread = self._start()

    def _start(self) -> threading.Thread:
        thread = threading.Thread(target=self._loop, name="stream", daemon=True)
        thread.start()
        return thread

    def _iterator(self, after: str | None) -> str:
        streams = self.client.list_streams(TableName=self.table)["Streams"]
        if not streams:
            raise RuntimeError(f"the table {self.table} has no stream")
        arn = streams[0]["StreamArn"]
        shard = self.client.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][-1]["ShardId"]
        where: dict[str, str] = ({"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": after} if after
                                 else {"ShardIteratorType": "LATEST"})
        return self.client.get_shard_iterator(StreamArn=arn, ShardId=shard, **where)["ShardIterator"]

    def _loop(self) -> None:
        iterator, last = None, None
        while not self.stopping.is_set():
            try:
                if iterator is None:
                    iterator = self._iterator(last)
                page = self.client.get_records(ShardIterator=iterator, Limit=BATCH)
            except Exception as exc:  # the aws process restarting, a trimmed position: start again from here
                log.warning("reading the stream of %s failed (%s); reading on from the newest record",
                            self.table, exc)
                iterator, last = None, None
                self.stopping.wait(1)
                continue
            iterator = page.get("NextShardIterator")
            records = page.get("Records") or []
            if not records:
                self.stopping.wait(self.idle_seconds)
                continue
            last = records[-1]["dynamodb"]["SequenceNumber"]
            started = time.monotonic()
            try:
                self.handler({"Records": records})
            except Exception:
                log.exception("the outbox dispatcher failed on %d records; the time checks deliver them",
                              len(records))
            self.batches += 1
            self.records += len(records)
            log.debug("dispatched %d stream records in %.3fs", len(records), time.monotonic() - started)

    def keep_alive(self) -> None:
        if not self.thread.is_alive() and not self.stopping.is_set():
            log.error("the stream reader stopped; starting it again")
            self.thread = self._start()
