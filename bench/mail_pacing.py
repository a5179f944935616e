"""How fast the outbox drains a backlog at SES's rate, and in what order.

    python bench/mail_pacing.py [--rate 14] [--waitlisted 80] [--seated 20] [--senders 2]

Runs against the embedded AWS (moto's server, in this process) on a free port. It registers
``--seated`` participants who get a seat (each owes a welcome email and a CREATE order) after
``--waitlisted`` who do not (each owes a waitlist email), all while mail is down, so the
waitlist emails are the oldest in the outbox. Then ``--senders`` time checks drain it at once,
each with its own context (as two Lambda invocations), through one fake SES that takes
``--rate`` emails per wall second and throttles past that, and whose ``GetSendQuota`` tells the
pacer that rate. It prints the sends per second, SES's throttles and where the orders went.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import boto3

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1",
                  POWERTOOLS_LOG_LEVEL="ERROR", POWERTOOLS_METRICS_DISABLED="true")

from chalicelib.adapters.mail import SesMailer, SesQuota
from chalicelib.adapters.workshop_folders import load_catalog
from chalicelib.observability import metrics
from chalicelib.services import bootstrap as ctx
from chalicelib.services import outbox, registrations
from chalicelib.services.catalog import sync_workshop
from chalicelib.services.pacing import Pacer
from chalicelib.settings import Settings
from local import dynamo_index
from local.aws import EmbeddedAws
from local.config import ensure_secrets
from local.tables import create_tables
from tests.factory import Clock, RecordingMailer, write_workshop
from tests.mailtools import ThrottlingSes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=int, default=14, help="SES's emails per second (14: its default)")
    parser.add_argument("--waitlisted", type=int, default=80)
    parser.add_argument("--seated", type=int, default=20)
    parser.add_argument("--senders", type=int, default=2)
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    dynamo_index.install()
    aws = EmbeddedAws("127.0.0.1", 0).start()
    tmp = Path(tempfile.mkdtemp(prefix="wod-mail-"))
    ensure_secrets(tmp / "secrets.json")
    settings = Settings(aws_endpoint=aws.endpoint, secrets_file=str(tmp / "secrets.json"))
    clock = Clock()
    down = RecordingMailer()
    down.failing = True
    setup = ctx.build(settings, mailer=down, clock=clock)
    create_tables(boto3.client("dynamodb", endpoint_url=aws.endpoint, region_name="us-east-1"), "wod")
    write_workshop(tmp / "w", "WKSHP-FULL", seats=1)
    write_workshop(tmp / "w", "WKSHP-OPEN", seats=args.seated)
    for workshop in load_catalog(tmp / "w", ["local"])[0]:
        sync_workshop(setup, workshop)
    setup.stores.tables.workshops("WKSHP-FULL").update(actions=[setup.stores.tables.workshops.seats_free.set(0)])

    def register(workshop: str, n: int) -> None:
        registrations.register(setup, {"workshop": workshop, "email": f"p{n}@example.com", "first_name": "P",
                                       "last_name": str(n), "company": "C", "accept_terms": True})
        clock.advance(seconds=1)

    for n in range(args.waitlisted):
        register("WKSHP-FULL", n)
    for n in range(args.seated):
        register("WKSHP-OPEN", 100_000 + n)
    clock.advance(minutes=30)

    ses = ThrottlingSes(SimpleNamespace(now=time.time), args.rate)
    senders = []
    for _ in range(args.senders):
        sender = ctx.build(settings, mailer=SesMailer(lambda: ses, "noreply@wod.local"), clock=clock)
        sender.pacer = Pacer(SesQuota(lambda: ses).rate, settings.mail_bulk_share, settings.mail_max_wait_seconds)
        senders.append(sender)
    handled = [0] * args.senders

    def drain(i: int) -> None:
        handled[i] = outbox.deliver_due(senders[i], drain_seconds=120)

    started = time.time()
    threads = [threading.Thread(target=drain, args=(i,)) for i in range(args.senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.time() - started
    left = sum(1 for r in setup.stores.tables.customers.scan() if r.outbox)
    aws.stop()

    metrics.clear_metrics()
    subjects = ses.subjects()
    orders = [i for i, s in enumerate(subjects) if s.startswith("CREATE")]
    waitlist = [i for i, s in enumerate(subjects) if "waitlist" in s]
    per_second = ses.per_second_counts()
    full = [count for second, count in sorted(per_second.items())][1:-1] or list(per_second.values())
    print(f"{len(subjects)} emails ({len(orders)} orders, {len(waitlist)} waitlist) by {args.senders} senders "
          f"in {elapsed:.1f}s: {len(subjects) / elapsed:.1f}/s overall, {sum(full) / len(full):.1f}/s in full "
          f"seconds, at most {max(per_second.values())} in one second (SES takes {args.rate}); "
          f"SES throttles: {ses.throttled}; quota reads: {ses.quota_reads}")
    first_waitlist = waitlist[0] if waitlist else "-"
    print(f"orders sent at positions {orders[0]}..{orders[-1]}; first waitlist email at {first_waitlist}; "
          f"left in the outbox: {left}; "
          f"outboxes leased: {sum(handled)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
