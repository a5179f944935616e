"""The rehearsal's function processes (``local/function_host.py``) and its hub (``local/rehearsal_hub.py``)
do not outlive the rehearsal that started them, even one killed outright: they would keep serving,
as root for the hub, and holding memory for good."""
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
        from local.rehearsal_iam import Functions
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
    deadline = time.monotonic() + 30
    while alive(host) and time.monotonic() < deadline:
        time.sleep(0.1)
    if alive(host):
        os.kill(host, signal.SIGKILL)
        raise AssertionError("the function process outlived its killed rehearsal")


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().split(") ", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_the_hub_ends_with_the_rehearsal_even_one_killed(tmp_path):
    """The hub's keeper stops what it runs (here a stand-in for bootstrap.sh and its hub) when the
    rehearsal that started it is gone."""
    (tmp_path / "hub").mkdir()
    spec = {"prefix": str(tmp_path / "hub"), "log": str(tmp_path / "hub.log"), "port": 1, "api_port": 2,
            "proxy_api_port": 3, "chain": f"WOD-IMDS-T{os.getpid() % 100000}",
            "env": {"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            "command": [sys.executable, "-c", "import time; time.sleep(600)"]}
    (tmp_path / "keeper.json").write_text(json.dumps(spec))
    rehearsal = textwrap.dedent(f"""
        import subprocess, sys, time
        keeper = subprocess.Popen([sys.executable, "-m", "local.rehearsal_hub", {str(tmp_path / "keeper.json")!r}],
                                  stdin=subprocess.PIPE)
        print(keeper.pid, flush=True)
        time.sleep(600)
    """)
    parent = subprocess.Popen([sys.executable, "-c", rehearsal], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    hub = None
    try:
        assert parent.stdout is not None
        keeper = int(parent.stdout.readline())
        deadline = time.monotonic() + 30
        while not children(keeper) and time.monotonic() < deadline:
            time.sleep(0.1)
        [hub] = children(keeper)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    deadline = time.monotonic() + 30
    while (alive(hub) or alive(keeper)) and time.monotonic() < deadline:
        time.sleep(0.1)
    if alive(hub):
        os.kill(hub, signal.SIGKILL)
        raise AssertionError("the hub outlived its killed rehearsal")
    assert not alive(keeper)
