"""The rehearsal's function processes (``infra/function_host.py``) do not outlive the rehearsal that
started them, even one killed outright: they would keep serving and holding memory for good."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_function_process_ends_with_the_rehearsal_even_one_killed(tmp_path):
    spec = {"logical": "Echo", "name": "echo", "handler": "json.dumps", "timeout": 5, "region": "eu-west-1",
            "account": "123456789012", "policy": {"Statement": []}, "record": str(tmp_path / "calls.jsonl"),
            "env": {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}}
    rehearsal = textwrap.dedent(f"""
        import json, pathlib, sys, time
        from infra.rehearsal_iam import Functions
        functions = Functions(pathlib.Path({str(tmp_path)!r}), "eu-west-1", "123456789012",
                              pathlib.Path({str(tmp_path / "calls.jsonl")!r}))
        functions.start([json.loads({json.dumps(json.dumps(spec))})])
        print(functions.hosts["echo"].process.pid, flush=True)
        time.sleep(600)
    """)
    parent = subprocess.Popen([sys.executable, "-c", rehearsal], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        host = int(parent.stdout.readline())
        assert alive(host)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    deadline = time.monotonic() + 15
    while alive(host) and time.monotonic() < deadline:
        time.sleep(0.1)
    if alive(host):
        os.kill(host, signal.SIGKILL)
        raise AssertionError("the function process outlived its killed rehearsal")
