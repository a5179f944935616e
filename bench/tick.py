"""How long one time check takes, and how many registrations it reads, as the table grows.

    python bench/tick.py [--sizes 1000 10000 50000] [--due 10] [--moto-walk]

Runs against the embedded AWS (moto's server, in this process) on a free port, with
``local.dynamo_index`` installed as the local stack's AWS process installs it. Each size
adds registrations whose reminder is hours away, plus ``--due`` that owe one now; a tick
must read only those. moto alone answers an index query by walking (and sorting) the whole
table, so its time grows with the table (``--moto-walk`` shows it); with the key index, as in
DynamoDB, a query reads what it matches. The first tick also builds the index (one walk per
queried index). The "read" column is what the design promises.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1",
                  POWERTOOLS_LOG_LEVEL="WARNING")

from chalicelib.adapters.workshop_folders import load_catalog
from chalicelib.services import bootstrap as ctx
from chalicelib.services import time_checks
from chalicelib.services.catalog import sync_workshop
from chalicelib.settings import Settings
from local import dynamo_index
from local.aws import EmbeddedAws
from local.config import ensure_secrets
from local.tables import create_tables
from tests.factory import Clock, RecordingMailer, seed_active, write_workshop


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 50000])
    parser.add_argument("--due", type=int, default=10)
    parser.add_argument("--moto-walk", action="store_true", help="without local.dynamo_index (moto's table walk)")
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    if not args.moto_walk:
        dynamo_index.install()
    aws = EmbeddedAws("127.0.0.1", 0).start()
    tmp = Path(tempfile.mkdtemp(prefix="wod-tick-"))
    ensure_secrets(tmp / "secrets.json")
    clock = Clock()
    context = ctx.build(Settings(aws_endpoint=aws.endpoint, secrets_file=str(tmp / "secrets.json")),
                        mailer=RecordingMailer(), clock=clock)
    create_tables(boto3.client("dynamodb", endpoint_url=aws.endpoint, region_name="us-east-1"), "wod")
    write_workshop(tmp / "w", "WKSHP-TICK", seats=1)
    sync_workshop(context, load_catalog(tmp / "w", ["local"])[0][0])

    print(f"{'registrations':>14} {'due':>5} {'read':>6} {'tick ms':>9}   "
          f"({'moto walk' if args.moto_walk else 'key index'})")
    total, ok = 0, True
    for size in sorted(args.sizes):
        started = time.monotonic()
        seed_active(context.stores.tables, clock, due=args.due, not_due=size - total - args.due)
        total = size
        seeded = time.monotonic() - started
        started = time.monotonic()
        counts = time_checks.tick(context)
        elapsed = (time.monotonic() - started) * 1000
        ok &= counts["read"] == args.due and counts["reminders"] == args.due
        print(f"{size:>14} {args.due:>5} {counts['read']:>6} {elapsed:>9.0f}   (seeded in {seeded:.0f} s)")
    aws.stop()
    print("CORRECT: each tick read only the due registrations" if ok else "INCORRECT: a tick read more than was due")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
