"""The hub's relay (infra/jupyterhub/wod_events.py, run in the hub's venv): what it signs, the
platform takes; its sequence only grows; one student cannot send more than the bucket allows."""
from __future__ import annotations

import json
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

from chalicelib.domain import live
from chalicelib.domain.orders import verify_signed_json
from local.hub import HUB_VENV

RELAY = """
import json, sys
sys.path.insert(0, "infra/jupyterhub")
import wod_events
bodies = [wod_events.signed("student7", [{"kind": "hand", "at": 1.5}], "k" * 40, source="kern-1") for _ in range(3)]
bucket = wod_events.Bucket(rate=1, burst=3)
taken = [bucket.take("student7", now=0) for _ in range(5)]
taken += [bucket.take("student7", now=2), bucket.take("other", now=0)]
print(json.dumps({"bodies": [[b.decode(), s] for b, s in bodies], "taken": taken}))
"""


def relay() -> dict:
    done = subprocess.run([str(HUB_VENV / "bin" / "python"), "-c", RELAY], capture_output=True, text=True,
                          timeout=120, check=True, cwd=Path(__file__).resolve().parents[2])
    return json.loads(done.stdout)


def test_what_the_relay_signs_the_platform_takes_in_order_and_a_flood_is_held_off():
    out = relay()
    seqs = []
    for body, signature in out["bodies"]:
        data = verify_signed_json(body.encode(), signature, b"k" * 40, time.time(), 300)
        student, seq, source, events = live.parse_batch(data, datetime.now(UTC))
        assert (student, source, [e.kind for e in events]) == ("student7", "kern-1", ["hand"])
        seqs.append(seq)
    assert seqs == sorted(seqs) and len(set(seqs)) == 3
    assert out["taken"] == [True, True, True, False, False, True, True]
