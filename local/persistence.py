"""Keep the embedded DynamoDB on disk: moto holds everything in memory, so the local stack
saves a consistent snapshot after writes (at most every second) and at shutdown, and loads
it at start. A SIGKILL loses at most the last second of writes.
"""
from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

log = logging.getLogger("wod.local.persistence")
SAVE_EVERY_SECONDS = 1.0


class DynamoSnapshot:
    def __init__(self, path: Path, aws, region: str):
        self.path, self.aws, self.region = Path(path), aws, region
        self.saved_writes = -1
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="dynamodb-snapshot", daemon=True)

    def _tables(self):
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.dynamodb.models import dynamodb_backends

        return dynamodb_backends[DEFAULT_ACCOUNT_ID][self.region].tables

    def save(self) -> None:
        """Read every table under the DynamoDB lock (no transaction half seen), then write atomically."""
        with self.aws.app.lock:
            writes = self.aws.app.writes
            data = {name: [item.to_json()["Attributes"] for item in table.all_items()]
                    for name, table in self._tables().items()}
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w") as handle:
            json.dump(data, handle)
        os.replace(tmp, self.path)
        self.saved_writes = writes

    def restore(self, client) -> int:
        """Put the saved items back into the (freshly created) tables; returns how many."""
        if not self.path.exists():
            return 0
        data = json.loads(self.path.read_text())
        count = 0
        for table, items in data.items():
            for start in range(0, len(items), 25):
                requests = [{"PutRequest": {"Item": item}} for item in items[start:start + 25]]
                pending = {table: requests}
                while pending:
                    pending = client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
                count += len(requests)
        self.saved_writes = self.aws.app.writes
        return count

    def _loop(self) -> None:
        while not self.stopping.wait(SAVE_EVERY_SECONDS):
            if self.aws.app.writes != self.saved_writes:
                try:
                    self.save()
                except Exception:
                    log.exception("snapshot failed; retrying in a second")

    def start(self) -> DynamoSnapshot:
        self.thread.start()
        return self

    def restart(self) -> None:
        self.thread = threading.Thread(target=self._loop, name="dynamodb-snapshot", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.save()
