"""The local stack killed with SIGKILL mid-provisioning comes back with every workshop,
registration, student and seat: what was in flight is provisioned again and ends active (seat
kept), and nothing the dead stack started keeps running (the target: every in-flight
registration active within 2 minutes of the restart, no orphan process)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from local.hub import _descendants, _start_time
from tests.factory import write_workshop
from tests.hubtools import remove_linux_user
from tests.stack import ROOT, LocalStack

# A stuck deadline well past the target: a registration that is not active in time fails the
# test as "not active", not as "stuck".
ENV = {"WOD_STUCK_MINUTES": "5", "WOD_CLEANUP_RETRY_MINUTES": "1",
       "WOD_SNAPSHOT_SECONDS": "1"}  # the test moves deadlines in the snapshot taken during provisioning
TARGET_SECONDS = 120
APPLIANCE = ROOT / "workshops" / "WKSHP-API101" / "appliance" / "server.py"


def register(stack, n):
    email = f"d{n}@example.com"
    response = requests.post(f"{stack.app_url}/api/registrations", timeout=60, json={
        "workshop": "WKSHP-DURA", "email": email, "first_name": "D", "last_name": str(n),
        "company": "C", "accept_terms": True})
    assert response.status_code == 202, response.text
    return stack.registration(email)


def free_port_base(count: int) -> int:
    """``count`` consecutive ports that are free now."""
    for base in range(23000 + os.getpid() % 5000, 29000, count + 1):
        sockets = []
        try:
            for port in range(base, base + count):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError("no free port range")


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def running(pid: int, started: str) -> bool:
    """The same process (pid and start time), not a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[19] == started and fields[0] not in ("Z", "X")


def wait_for_a_server(stack, timeout: float = 90) -> None:
    """Until a student's server runs (provisioning is under way), so the kill leaves one behind."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any("jupyterhub-singleuser" in cmdline(pid) for pid, _ in _descendants(stack.process.pid)):
            return
        time.sleep(0.2)


def kill_platform(stack) -> dict[int, tuple[str, str]]:
    """SIGKILL the stack's own processes (the supervisor and its ``python -m local`` parts), as a
    crash would: nothing gets to clean up. Returns every process the stack had, by pid."""
    tree = {pid: (started, cmdline(pid)) for pid, started in _descendants(stack.process.pid)}
    tree[stack.process.pid] = (_start_time(stack.process.pid) or "", cmdline(stack.process.pid))
    platform = [pid for pid, (_, line) in tree.items() if "-m local" in line]
    for sig in (signal.SIGSTOP, signal.SIGKILL):  # frozen first: none sees the others die
        for pid in platform:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
    stack.process.wait(timeout=30)
    return tree


def in_provisioning(data: dict) -> list[dict]:
    return [item for table, items in data.items() if table.endswith("customers") for item in items
            if item.get("due_state", {}).get("S") == "provisioning"]


def wait_for_the_snapshot(state_dir: Path, timeout: float = 60) -> None:
    """Until the snapshot on disk holds a registration in provisioning (one is taken seconds after
    a write): the test moves its deadline there."""
    deadline = time.monotonic() + timeout
    while not in_provisioning(json.loads((state_dir / "dynamodb.json").read_text())):
        assert time.monotonic() < deadline, "no snapshot holds a registration in provisioning"
        time.sleep(0.5)


def backdate_deadlines(state_dir: Path) -> list[str]:
    """As if the machine had stayed down past every stuck deadline: the restarted stack's first
    time check would fail them all, unless recovery holds them first. Returns the registrations
    that were in flight."""
    path = state_dir / "dynamodb.json"
    data = json.loads(path.read_text())
    past = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.%f+0000")
    moved = []
    for item in in_provisioning(data):
        item["due_at"] = {"S": past}
        moved.append(item["id"]["S"])
    path.write_text(json.dumps(data))
    return moved


@pytest.fixture
def readable(tmp_path):
    """A folder every local user may read (the appliances run as their students; pytest's own
    temporary folders are private to root)."""
    path = Path(tempfile.mkdtemp(prefix="wod-durability-", dir="/tmp"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_sigkill_mid_provisioning_keeps_every_seat_and_leaves_no_process(tmp_path, readable):
    base = free_port_base(3)
    folder = write_workshop(readable / "workshops", "WKSHP-DURA", students={"prefix": "dura", "from": 1, "to": 3},
                            appliance={"command": ["{python}", "appliance/server.py", "--port", "{port}"],
                                       "port_base": base, "health_path": "/health"})
    (folder / "appliance").mkdir()
    shutil.copy(APPLIANCE, folder / "appliance" / "server.py")
    first = LocalStack(readable / "workshops", tmp_path / "state", tick_seconds=1, env=ENV).start()
    try:
        created = [register(first, n) for n in range(4)]
        seated = ("pending", "provisioning")  # read back after the answer: the backend may have begun
        assert [c["status"] in seated for c in created] == [True] * 3 + [False]
        assert created[3]["status"] == "waitlisted"
        wait_for_a_server(first)  # every write is in the journal before its answer: kill at once
        wait_for_the_snapshot(tmp_path / "state")  # what the restart replays the journal on
        left = kill_platform(first)
        assert any("jupyterhub-singleuser" in line for _, line in left.values()), left
        in_flight = backdate_deadlines(tmp_path / "state")
        assert in_flight, "nothing was in flight at the kill"

        restarted = time.monotonic()
        with LocalStack(readable / "workshops", tmp_path / "state", tick_seconds=1, env=ENV) as again:
            ready = time.monotonic() - restarted
            assert "items restored from disk" in again.output()
            ids = [c["id"] for c in created]
            while True:
                states = [requests.get(again.app_url + again.participant_path(i), timeout=30).json() for i in ids]
                if all(s["status"] == "active" for s in states[:3]):
                    break
                assert not any(s["status"] == "failed" for s in states), f"{states}\n{again.diagnostics()}"
                if time.monotonic() - restarted > TARGET_SECONDS:
                    raise AssertionError(f"not all active {TARGET_SECONDS}s after the restart: {states}\n"
                                         f"{again.diagnostics()}")
                time.sleep(1)
            active_after = time.monotonic() - restarted
            print(f"\nrestart -> ready {ready:.1f}s, -> all {len(in_flight)} in-flight active {active_after:.1f}s")

            assert states[3]["status"] == "waitlisted"
            workshop = requests.get(f"{again.app_url}/api/workshops", timeout=30).json()[0]
            assert workshop["seats_total"] == 3 and workshop["seats_free"] == 0
            assert len({s["student"] for s in states[:3]}) == 3  # every seat held once

            survivors = {pid: line for pid, (started, line) in left.items() if running(pid, started)}
            assert survivors == {}, f"processes of the killed stack still run: {survivors}"
            for state in states[:3]:  # a new appliance answers on the port the orphan held
                if state["id"] not in in_flight:
                    continue  # active at the kill: its appliance is restart_appliances' (the workers')
                port = base + int(state["student"].removeprefix("dura")) - 1
                assert requests.get(f"http://127.0.0.1:{port}/health", timeout=10).status_code == 200
            assert "stopped" in again.output()  # what was left behind, reported at start
    finally:
        if first.process.poll() is None:  # failed before the kill: stopped, not left running
            first.stop()
        for n in range(1, 4):
            remove_linux_user(f"dura{n}")
