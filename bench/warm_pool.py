"""Register -> credentials email, cold path against a warm pool, on a fresh local stack.

    python bench/warm_pool.py [--n 3] [--pool 3]

Two workshops: one without a pool, one with ``warm_pool: --pool``. Once the pool is warm,
``--n`` participants register one after another in each, and the time from the POST to
the credentials email in the inbox is measured. Prints each figure, the medians and
their ratio.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402
import requests  # noqa: E402

from tests.hubtools import remove_linux_user  # noqa: E402
from tests.stack import LocalStack, write_workshop  # noqa: E402


def warm_students(stack) -> int:
    table = boto3.resource("dynamodb", endpoint_url=stack.aws_url, region_name="us-east-1",
                           aws_access_key_id="bench", aws_secret_access_key="bench").Table("wod-students")
    return sum(1 for item in table.scan()["Items"] if item.get("warm"))


def register_to_credentials(stack, workshop: str, email: str) -> float:
    started = time.monotonic()
    response = requests.post(f"{stack.app_url}/api/registrations", timeout=120, json={
        "workshop": workshop, "email": email, "first_name": "B", "last_name": "M", "company": "C",
        "accept_terms": True})
    response.raise_for_status()
    stack.wait_for_message(lambda m: email in m["to"] and m["subject"].startswith("Your workshop is ready"),
                           timeout=180)
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=3)
    parser.add_argument("--pool", type=int, default=3)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="wod-warm-"))
    seats = max(args.n, args.pool) + 1
    write_workshop(tmp / "workshops", "WKSHP-COLD", students={"prefix": "cold", "from": 1, "to": seats})
    write_workshop(tmp / "workshops", "WKSHP-HOT", students={"prefix": "hot", "from": 1, "to": seats},
                   warm_pool=args.pool)
    figures: dict[str, list[float]] = {"cold": [], "warm": []}
    try:
        with LocalStack(tmp / "workshops", tmp / "state", tick_seconds=1) as stack:
            deadline = time.monotonic() + 180
            while warm_students(stack) < args.pool and time.monotonic() < deadline:
                time.sleep(1)
            print(f"pool warm: {warm_students(stack)} of {args.pool} students ready")
            for n in range(args.n):
                figures["cold"].append(register_to_credentials(stack, "WKSHP-COLD", f"cold{n}@example.com"))
                figures["warm"].append(register_to_credentials(stack, "WKSHP-HOT", f"hot{n}@example.com"))
                time.sleep(2)  # let the pool top up again
    finally:
        for prefix in ("cold", "hot"):
            for n in range(1, seats + 1):
                remove_linux_user(f"{prefix}{n}")
    for name, values in figures.items():
        print(f"{name:>5}: " + ", ".join(f"{v:.1f} s" for v in values) + f"   median {statistics.median(values):.1f} s")
    ratio = statistics.median(figures["cold"]) / statistics.median(figures["warm"])
    print(f"register -> credentials email: warm pool is {ratio:.1f}x faster than the cold path")
    return 0


if __name__ == "__main__":
    sys.exit(main())
