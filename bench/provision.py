"""Register -> credentials email on a fresh local stack (with JupyterHub), cold and warm, one at
a time and 20 at once; a 300-registration burst into a 100-seat workshop; memory of the stack.

    python bench/provision.py [--one 5] [--burst 300] [--seats 100]

Every figure is the time from the POST to the credentials email in the local inbox. The
memory is the resident set of the stack's whole process tree (app, embedded AWS, JupyterHub,
proxy, student servers, kernels, appliances). It removes the Linux users it created.
"""
from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import boto3
import requests

from tests.factory import write_workshop
from tests.hubtools import remove_linux_user
from tests.stack import LocalStack

WORKSHOPS = {  # id -> (prefix, seats, warm pool)
    "WKSHP-COLD": ("cold", 6, 0), "WKSHP-HOT": ("hot", 6, 5),
    "WKSHP-COLD20": ("c20-", 20, 0), "WKSHP-HOT20": ("h20-", 20, 20),
}


def p(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of ``values``; NaN when there are none (``--one 0``, nobody arrived)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def servers() -> int:
    """Student servers running on this machine."""
    count = 0
    for entry in Path("/proc").iterdir():
        try:
            count += entry.name.isdigit() and b"jupyterhub-singleuser" in (entry / "cmdline").read_bytes()
        except OSError:
            continue
    return count


def rss_mb(root_pid: int) -> float:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    total, todo = 0, [root_pid]
    while todo:
        pid = todo.pop()
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
        todo.extend(children.get(pid, []))
    return total / 1024


class Bench:
    def __init__(self, stack: LocalStack):
        self.stack, self.n = stack, 0

    def register(self, workshop: str) -> tuple[str, float]:
        self.n += 1
        email, started = f"b{self.n}@example.com", time.time()
        response = requests.post(f"{self.stack.app_url}/api/registrations", timeout=300, json={
            "workshop": workshop, "email": email, "first_name": "B", "last_name": "M", "company": "C",
            "accept_terms": True})
        response.raise_for_status()
        return email, started

    def credentials(self, email: str, started: float, timeout: float = 900) -> float:
        """Seconds from the POST to the email's arrival in the inbox (its received time)."""
        message = self.stack.wait_for_message(
            lambda m: email in m["to"] and m["subject"].startswith("Your workshop is ready"), timeout=timeout)
        return datetime.fromisoformat(message["date"]).timestamp() - started

    def one(self, workshop: str) -> float:
        return self.credentials(*self.register(workshop))

    def at_once(self, workshop: str, count: int) -> list[float]:
        with ThreadPoolExecutor(max_workers=count) as pool:
            return list(pool.map(lambda _: self.one(workshop), range(count)))

    def warm(self, count: int, timeout: float = 600) -> None:
        table = boto3.resource("dynamodb", endpoint_url=self.stack.aws_url, region_name="us-east-1",
                               aws_access_key_id="b", aws_secret_access_key="b").Table("wod-students")
        deadline = time.monotonic() + timeout
        while sum(1 for i in table.scan()["Items"] if i.get("warm")) < count and time.monotonic() < deadline:
            time.sleep(1)


def line(name: str, values: list[float]) -> str:
    return f"{name:<32} p50 {p(values, .5):6.1f} s   p95 {p(values, .95):6.1f} s   (n={len(values)})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--one", type=int, default=5, help="participants one at a time, per path")
    parser.add_argument("--burst", type=int, default=300)
    parser.add_argument("--seats", type=int, default=100)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="wod-provision-"))
    workshops = dict(WORKSHOPS, **{"WKSHP-BURST": ("burst", args.seats, 0)})
    for workshop_id, (prefix, seats, pool) in workshops.items():
        write_workshop(tmp / "workshops", workshop_id, students={"prefix": prefix, "from": 1, "to": seats},
                       warm_pool=pool)
    results: dict[str, list[float]] = {}
    try:
        with LocalStack(tmp / "workshops", tmp / "state", tick_seconds=1, start_timeout=300,
                        stop_timeout=300) as stack:
            bench = Bench(stack)
            bench.warm(5 + 20)
            time.sleep(3)
            print(f"memory at rest: {rss_mb(stack.process.pid):.0f} MB with {servers()} warm student servers",
                  flush=True)
            results["cold, one at a time"] = [bench.one("WKSHP-COLD") for _ in range(args.one)]
            results["warm, one at a time"] = []
            for _ in range(args.one):
                results["warm, one at a time"].append(bench.one("WKSHP-HOT"))
                bench.warm(5 + 20 - len(results["warm, one at a time"]), timeout=60)
            results["cold, 20 at once"] = bench.at_once("WKSHP-COLD20", 20)
            results["warm, 20 at once"] = bench.at_once("WKSHP-HOT20", 20)
            for name, values in results.items():
                print(line(name, values), flush=True)

            if args.burst < 1:
                return 0  # no burst asked for (--burst 0): the figures above are the run
            started = time.time()
            with ThreadPoolExecutor(max_workers=50) as pool:
                sent = dict(pool.map(lambda _: bench.register("WKSHP-BURST"), range(args.burst)))
            seated = min(args.burst, args.seats)
            arrived: dict[str, float] = {}
            memory_50, deadline = None, time.monotonic() + 1800
            while len(arrived) < seated and time.monotonic() < deadline:
                for message in stack.messages():
                    email = (message["to"] or [""])[0]
                    if email in sent and message["subject"].startswith("Your workshop is ready"):
                        arrived.setdefault(email, datetime.fromisoformat(message["date"]).timestamp())
                if memory_50 is None and len(arrived) >= 50:
                    memory_50 = rss_mb(stack.process.pid), servers()
                time.sleep(2)
            latencies = [arrival - sent[email] for email, arrival in arrived.items()]
            last = max(arrived.values()) - started if arrived else float("nan")
            print(f"burst of {args.burst} into {args.seats} seats: {len(arrived)} of {seated} seated participants "
                  f"had their credentials {last:.0f} s after the burst began "
                  f"(per participant p50 {p(latencies, .5):.0f} s, p95 {p(latencies, .95):.0f} s)")
            if memory_50 is not None:
                print(f"memory once 50 of the burst were active: {memory_50[0]:.0f} MB with {memory_50[1]} student "
                      f"servers running (the earlier sections' included)")
    finally:
        for prefix, seats, _ in workshops.values():
            for n in range(1, seats + 1):
                remove_linux_user(f"{prefix}{n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
