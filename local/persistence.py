"""Keep the embedded DynamoDB on disk. moto holds everything in memory; the aws process keeps

* a **journal**: every DynamoDB request that changed data is appended, in the order it ran (under
  the DynamoDB lock), to ``dynamodb.journal.<generation>`` and flushed to disk (fsync) before its
  answer leaves, so whatever a client was told happened survives a SIGKILL of the process;
* a **snapshot** (``dynamodb.json``), written after writes (at most every second) and at
  shutdown: a consistent copy read under the lock, fsynced, then put in place. Taking it starts
  a new journal generation; the older journals are deleted once the snapshot is on disk.

At start: the snapshot is loaded, then every journal from the snapshot's generation on is
replayed in order (moto's DynamoDB is deterministic: the same requests on the same items give
the same items), then a new snapshot is taken. A crash at any point leaves a snapshot and the
journals written since, which the next start replays again.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

log = logging.getLogger("wod.local.persistence")
# Every write is in the journal before it is answered; a snapshot only bounds what a restart
# replays. It copies every item under the DynamoDB lock, so it is taken once the journal holds
# SAVE_AFTER_WRITES writes, or SAVE_AFTER_SECONDS after a write, not at each second of a burst.
SAVE_CHECK_SECONDS = 1.0
SAVE_AFTER_SECONDS = float(os.environ.get("WOD_SNAPSHOT_SECONDS") or 5.0)
SAVE_AFTER_WRITES = 2000
SLOW_SNAPSHOT_SECONDS = 0.1
GENERATION_KEY = "wod:journal"  # in the snapshot: the first journal generation it does not hold (":" is
#                                 not allowed in a table name, so no table can be called that)
REPLAYED_HEADERS = ("X-Amz-Target", "Authorization", "Content-Type")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Journal:
    """The DynamoDB write requests since the last snapshot, one JSON line each."""

    def __init__(self, directory: Path, stem: str = "dynamodb.journal"):
        self.directory, self.stem = Path(directory), stem
        self.generation = 0
        self._file: Any = None
        self.appended = 0  # lines written (every generation)
        self.synced = 0  # lines known to be on disk
        self._sync_lock = threading.Lock()

    def path(self, generation: int) -> Path:
        return self.directory / f"{self.stem}.{generation}"

    def generations(self) -> list[int]:
        found = []
        for path in self.directory.glob(f"{self.stem}.*"):
            suffix = path.name.rsplit(".", 1)[1]
            if suffix.isdigit():
                found.append(int(suffix))
        return sorted(found)

    def open(self, generation: int) -> None:
        """Append from now on to ``generation`` (called under the DynamoDB lock)."""
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self.synced = self.appended
        self.generation = generation
        self._file = open(self.path(generation), "ab")
        _fsync_dir(self.directory)

    def append(self, headers: dict[str, str], body: bytes) -> int:
        """Write one request (under the DynamoDB lock: the journal's order is the execution order);
        returns its number, for :meth:`sync`."""
        line = json.dumps({"headers": headers, "body": body.decode("utf-8")}) + "\n"
        self._file.write(line.encode())
        self._file.flush()  # to the kernel; sync() puts it on disk
        self.appended += 1
        return self.appended

    def sync(self, number: int) -> None:
        """Return once line ``number`` is on disk (one fsync covers every line written before it)."""
        if number <= self.synced:
            return
        with self._sync_lock:
            if number <= self.synced:
                return
            target, handle = self.appended, self._file
            os.fsync(handle.fileno())
            self.synced = max(self.synced, target)

    def records(self, generation: int) -> list[dict[str, Any]]:
        """The complete lines of one generation (a line cut short by a crash was never answered)."""
        records = []
        for raw in self.path(generation).read_bytes().splitlines():
            try:
                records.append(json.loads(raw))
            except ValueError:
                log.warning("journal %s: an incomplete last line is skipped", generation)
        return records

    def drop_before(self, generation: int) -> None:
        for old in self.generations():
            if old < generation:
                self.path(old).unlink(missing_ok=True)

    def close(self) -> None:
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None


class DynamoSnapshot:
    def __init__(self, path: Path, aws, region: str):
        self.path, self.aws, self.region = Path(path), aws, region
        self.journal = Journal(self.path.parent)
        self.saved_writes = -1
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="dynamodb-snapshot", daemon=True)

    def _tables(self):
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.dynamodb.models import dynamodb_backends

        return dynamodb_backends[DEFAULT_ACCOUNT_ID][self.region].tables

    def save(self) -> None:
        """Read every table under the DynamoDB lock (no transaction half seen) and start the next
        journal there; write the copy to disk (fsync, rename); then drop the older journals."""
        with self.aws.app.lock:
            held = time.perf_counter()
            writes = self.aws.app.writes
            data: dict[str, Any] = {name: [item.to_json()["Attributes"] for item in table.all_items()]
                                    for name, table in self._tables().items()}
            generation = self.journal.generation + 1
            if self.aws.app.journal is not None:
                self.journal.open(generation)
            held = time.perf_counter() - held
        if held > SLOW_SNAPSHOT_SECONDS:  # every DynamoDB request waited this long
            log.info("snapshot held the DynamoDB lock for %.0f ms (%d items)", held * 1000,
                     sum(len(items) for items in data.values()))
        data[GENERATION_KEY] = generation
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w") as handle:
            json.dump(data, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)
        _fsync_dir(self.path.parent)
        self.journal.drop_before(generation)
        self.saved_writes = writes

    def restore(self, client) -> int:
        """Put the saved items back into the (freshly created) tables, replay the journals written
        since, take a new snapshot and start journaling; returns how many items and requests."""
        count, generation = 0, 0
        if self.path.exists():
            data = json.loads(self.path.read_text())
            generation = int(data.pop(GENERATION_KEY, 0))
            for table, items in data.items():
                for start in range(0, len(items), 25):
                    requests = [{"PutRequest": {"Item": item}} for item in items[start:start + 25]]
                    pending = {table: requests}
                    while pending:
                        pending = client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
                    count += len(requests)
        replayed = 0
        for older in self.journal.generations():
            if older >= generation:
                replayed += self._replay(older)
        self.journal.generation = max([generation, *self.journal.generations()])
        if replayed:
            log.info("replayed %d journaled DynamoDB writes", replayed)
        self.aws.app.journal = self.journal  # from now on every write is journaled
        self.save()  # a snapshot that holds the replay; the replayed journals go
        return count + replayed

    def _replay(self, generation: int) -> int:
        done = 0
        for record in self.journal.records(generation):
            request = urllib.request.Request(self.aws.endpoint, data=record["body"].encode(), method="POST",
                                             headers=record["headers"])
            try:
                with urllib.request.urlopen(request, timeout=60) as response:
                    response.read()
            except urllib.error.HTTPError as error:  # refused now as it was not then: say so, go on
                log.error("journaled write %s refused on replay: %s %s", record["headers"].get("X-Amz-Target"),
                          error.code, error.read()[:200])
                continue
            done += 1
        return done

    def _loop(self) -> None:
        saved_at = time.monotonic()
        while not self.stopping.wait(SAVE_CHECK_SECONDS):
            unsaved = self.aws.app.writes - max(self.saved_writes, 0)
            if unsaved and (unsaved >= SAVE_AFTER_WRITES or time.monotonic() - saved_at >= SAVE_AFTER_SECONDS):
                try:
                    self.save()
                    saved_at = time.monotonic()
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
        self.journal.close()
