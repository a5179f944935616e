"""Local SES inbound: mail to a backend's orders address becomes an SES notification over SNS.

The shape matches what a real SES receipt rule with an SNS action publishes
(``notificationType``, ``mail``, ``receipt`` with verdicts, ``content``), so the
intake handler runs the same code as on AWS.

As on AWS, where SES accepts the mail, SNS delivers it and Lambda runs the intake
asynchronously (retrying a failed run), the SMTP server accepts an order once it is in the
:class:`OrderSpool` (a file, on disk before the ``250``) and the intake runs in the background,
retried with a growing pause; an order the intake keeps failing on is moved to
``failed/`` (the dead letters) and logged. Orders left in the spool by a crash are run at
the next start.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

log = logging.getLogger("wod.local.orders")
PASS = {"status": "PASS"}


def ses_notification(raw: bytes, mail_from: str, rcpt_tos: list[str]) -> dict:
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {
        "notificationType": "Received",
        "mail": {"timestamp": now, "source": mail_from, "messageId": uuid.uuid4().hex, "destination": rcpt_tos},
        "receipt": {"timestamp": now, "recipients": rcpt_tos, "spamVerdict": PASS, "virusVerdict": PASS,
                    "spfVerdict": PASS, "dkimVerdict": PASS, "dmarcVerdict": PASS,
                    "action": {"type": "SNS", "topicArn": "arn:aws:sns:us-east-1:123456789012:wod-orders",
                               "encoding": "UTF8"}},
        "content": raw.decode("utf-8", errors="replace"),
    }


def sns_event(message: str, subject: str = "Amazon SES Email Receipt Notification") -> dict:
    return {"Records": [{"EventSource": "aws:sns", "EventVersion": "1.0", "Sns": {
        "Type": "Notification", "MessageId": str(uuid.uuid4()), "Subject": subject, "Message": message,
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:wod-orders",
        "Timestamp": datetime.now(UTC).isoformat(), "MessageAttributes": {}}}]}


Intake = Callable[[dict, object], object]


class OrderSpool:
    """Orders on disk, handed to ``intake(sns_event, None)`` by ``threads`` background threads."""

    def __init__(self, directory: str | os.PathLike, intake: Intake, *, threads: int = 4, attempts: int = 8,
                 first_pause: float = 1.0, longest_pause: float = 30.0):
        self.dir = Path(directory)
        self.failed_dir = self.dir / "failed"
        self.intake, self.attempts = intake, attempts
        self.first_pause, self.longest_pause = first_pause, longest_pause
        self.threads = threads
        self.stopping = threading.Event()
        self.pool: ThreadPoolExecutor | None = None

    def start(self) -> int:
        """Start the background threads; run the orders a previous run left; returns how many."""
        self.failed_dir.mkdir(parents=True, exist_ok=True)
        self.pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="order-intake")
        left = sorted(p for p in self.dir.glob("*.json"))
        for path in self.dir.glob(".tmp-*"):
            path.unlink(missing_ok=True)  # never acknowledged: the sender retries it
        for path in left:
            self.pool.submit(self._deliver, path)
        if left:
            log.info("%d order(s) left in %s by an earlier run: running them", len(left), self.dir)
        return len(left)

    def put(self, event: dict) -> Path:
        """Keep ``event`` on disk (fsync) and queue it; the SMTP answer follows."""
        if self.pool is None:
            raise RuntimeError("the order spool is not started")
        name = f"{time.time_ns()}-{uuid.uuid4().hex}"
        tmp, path = self.dir / f".tmp-{name}", self.dir / f"{name}.json"
        with open(tmp, "w") as handle:
            json.dump(event, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        self.pool.submit(self._deliver, path)
        return path

    def _deliver(self, path: Path, attempt: int = 1, pause: float | None = None) -> None:
        """One try; a failed one is tried again later by a timer, never by sleeping here, so one
        order that keeps failing does not hold a thread the others need."""
        if self.stopping.is_set():
            return  # stays on disk for the next start
        try:
            event = json.loads(path.read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:  # not an order any more: no retry can help
            os.replace(path, self.failed_dir / path.name)
            log.error("order %s is unreadable (%s); kept in %s", path.name, exc, self.failed_dir)
            return
        try:
            outcome = self.intake(event, None)
        except Exception:
            log.exception("order %s: intake attempt %d/%d failed", path.name, attempt, self.attempts)
            if attempt >= self.attempts:
                os.replace(path, self.failed_dir / path.name)
                log.error("order %s: the intake failed %d times; kept in %s", path.name, self.attempts,
                          self.failed_dir)
                return
            wait = self.first_pause if pause is None else pause
            retry = threading.Timer(wait, self._retry, (path, attempt + 1, min(wait * 2, self.longest_pause)))
            retry.daemon = True
            retry.start()
            return
        path.unlink(missing_ok=True)
        log.info("order %s: %s", path.name, outcome)

    def _retry(self, path: Path, attempt: int, pause: float) -> None:
        if self.pool is not None and not self.stopping.is_set():
            try:
                self.pool.submit(self._deliver, path, attempt, pause)
            except RuntimeError:  # the pool is shut down: the order stays on disk for the next start
                pass

    @property
    def pending(self) -> int:
        return sum(1 for _ in self.dir.glob("*.json"))

    def stop(self) -> None:
        self.stopping.set()
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


class OrderRouter:
    """SMTP router: orders go to the intake (through ``spool`` when given, else at once), everything
    else to the inbox."""

    def __init__(self, inbox: Callable, intake: Intake, orders_addresses: Iterable[str],
                 spool: OrderSpool | None = None):
        self.inbox, self.intake, self.spool = inbox, intake, spool
        self.orders = {a.lower() for a in orders_addresses}

    def __call__(self, raw: bytes, mail_from: str, rcpt_tos: list[str]):
        orders = [r for r in rcpt_tos if r.lower() in self.orders]
        others = [r for r in rcpt_tos if r.lower() not in self.orders]
        if orders:
            event = sns_event(json.dumps(ses_notification(raw, mail_from, orders)))
            if self.spool is not None:
                path = self.spool.put(event)
                log.info("order mail to %s: spooled as %s", ", ".join(orders), path.name)
            else:
                outcome = self.intake(event, None)
                log.info("order mail to %s: %s", ", ".join(orders), outcome)
        if others:
            return self.inbox(raw, mail_from, others)
        return None
