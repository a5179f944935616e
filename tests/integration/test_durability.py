"""The local stack killed with SIGKILL mid-provisioning comes back with every workshop,
registration, student and seat; what was in flight ends active or cleanly failed, seat back."""
from __future__ import annotations

import time

import requests

from tests.factory import write_workshop
from tests.hubtools import remove_linux_user
from tests.stack import LocalStack

ENV = {"WOD_STUCK_MINUTES": "1", "WOD_CLEANUP_RETRY_MINUTES": "1"}


def register(stack, n):
    response = requests.post(f"{stack.app_url}/api/registrations", timeout=60, json={
        "workshop": "WKSHP-DURA", "email": f"d{n}@example.com", "first_name": "D", "last_name": str(n),
        "company": "C", "accept_terms": True})
    assert response.status_code == 201, response.text
    return response.json()


def test_sigkill_mid_provisioning_loses_nothing(tmp_path):
    write_workshop(tmp_path / "workshops", "WKSHP-DURA", students={"prefix": "dura", "from": 1, "to": 3})
    first = LocalStack(tmp_path / "workshops", tmp_path / "state", tick_seconds=1, env=ENV).start()
    try:
        created = [register(first, n) for n in range(4)]
        assert [c["status"] for c in created] == ["pending"] * 3 + ["waitlisted"]
        time.sleep(2)  # the snapshot follows the writes within a second
        first.process.kill()  # SIGKILL: no shutdown code runs
        first.process.wait(timeout=30)

        with LocalStack(tmp_path / "workshops", tmp_path / "state", tick_seconds=1, env=ENV) as again:
            assert "items restored from disk" in again.output()
            ids = [c["id"] for c in created]
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline:
                states = [requests.get(f"{again.app_url}/api/registrations/{i}", timeout=30).json() for i in ids]
                seats = requests.get(f"{again.app_url}/api/workshops", timeout=30).json()[0]
                settled = all(s["status"] in ("active", "failed", "waitlisted") for s in states)
                failed = sum(s["status"] == "failed" for s in states)
                active = sum(s["status"] == "active" for s in states)
                if settled and seats["seats_free"] == 3 - active and active + failed == 4 - (
                        states[3]["status"] == "waitlisted"):
                    break
                time.sleep(2)
            else:
                raise AssertionError(f"not settled: {states} seats {seats}\n{again.diagnostics()}")
            assert seats["seats_total"] == 3
            students = {s["student"] for s in states if s["status"] == "active"}
            assert len(students) == active  # no student twice
    finally:
        for n in range(1, 4):
            remove_linux_user(f"dura{n}")
