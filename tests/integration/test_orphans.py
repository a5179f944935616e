"""local/orphans.py on real processes: what a dead stack of this state directory left behind is
stopped; another state's processes, a live stack's and the caller's own are not; a state
directory a live process holds is refused."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from local import orphans

SLEEPER = "import time\nfor _ in range(600):\n    time.sleep(0.1)\n"


def detached(argv: list[str], env: dict[str, str], cwd: Path) -> int:
    """Start ``argv`` through a short-lived parent, so it is nobody's child (as after a crash)."""
    launcher = textwrap.dedent(f"""
        import subprocess, sys
        p = subprocess.Popen({argv!r}, env={env!r}, cwd={str(cwd)!r}, start_new_session=True,
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        print(p.pid)
    """)
    out = subprocess.run([sys.executable, "-c", launcher], capture_output=True, text=True, timeout=30, check=True)
    return int(out.stdout.strip())


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@pytest.fixture
def started():
    pids: list[int] = []
    yield pids
    for pid in pids:  # only what this test started
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture
def layout(tmp_path):
    state, workshops = tmp_path / "state", tmp_path / "workshops"
    folder = workshops / "WKSHP-ORPH"
    (folder / "appliance").mkdir(parents=True)
    (folder / "appliance" / "server.py").write_text(SLEEPER)
    (folder / "workshop.yaml").write_text(yaml.safe_dump({"id": "WKSHP-ORPH", "appliance": {
        "command": ["{python}", "appliance/server.py", "--port", "{port}"], "port_base": 9900}}))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "jupyterhub-singleuser").write_text(SLEEPER)
    (state / "hub").mkdir(parents=True)
    return state, workshops, folder, bin_dir


def record_servers(hub_dir: Path, servers: dict[str, int]) -> None:
    """The two tables of JupyterHub's database that say which server runs as which pid."""
    with sqlite3.connect(hub_dir / "jupyterhub.sqlite") as db:
        db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        db.execute("CREATE TABLE spawners (id INTEGER PRIMARY KEY, user_id INTEGER, state TEXT)")
        for n, (name, pid) in enumerate(servers.items(), 1):
            db.execute("INSERT INTO users VALUES (?, ?)", (n, name))
            db.execute("INSERT INTO spawners VALUES (?, ?, ?)", (n, n, json.dumps({"pid": pid})))


def test_only_what_a_dead_stack_of_this_state_left_is_stopped(layout, started):
    state, workshops, folder, bin_dir = layout
    ours = {"PATH": os.environ["PATH"], "WOD_SECRETS_FILE": str(state / "secrets.json"),
            "WOD_WORKSHOPS_DIR": str(workshops)}
    appliance = [sys.executable, "appliance/server.py", "--port", "9900"]
    server = [sys.executable, str(bin_dir / "jupyterhub-singleuser")]

    orphan_appliance = detached(appliance, ours, folder)
    orphan_server = detached(server, {"JUPYTERHUB_USER": "alice"}, bin_dir)
    other_state = detached(appliance, ours | {"WOD_SECRETS_FILE": "/elsewhere/secrets.json"}, folder)
    unknown_server = detached(server, {"JUPYTERHUB_USER": "bob"}, bin_dir)  # not in this hub's database
    # a live process of a stack of this state (one that holds no lock), with its appliance
    live_parent = detached([sys.executable, "-c", f"""
import subprocess, sys, time
subprocess.Popen({appliance!r}, cwd={str(folder)!r}, start_new_session=True)
{SLEEPER}"""], ours, folder.parent)
    own_child = subprocess.Popen(appliance, cwd=folder, env=ours)  # the caller's: a live stack's own
    started += [orphan_appliance, orphan_server, other_state, unknown_server, live_parent, own_child.pid]
    children = Path(f"/proc/{live_parent}/task/{live_parent}/children")
    deadline = time.monotonic() + 30
    while not children.read_text().split() and time.monotonic() < deadline:
        time.sleep(0.05)
    live_child = [int(p) for p in children.read_text().split()]
    assert len(live_child) == 1
    started += live_child
    record_servers(state / "hub", {"alice": orphan_server, "carol": live_child[0]})

    found = {f.pid: f.what for f in orphans.find_orphans(state)}
    assert set(found) == {orphan_appliance, orphan_server}, found
    assert found[orphan_server] == "single-user server of alice"

    try:
        stopped = orphans.stop_orphans(state, grace=5)
        assert len(stopped) == 2 and all("pid" in line for line in stopped)
        assert not alive(orphan_appliance) and not alive(orphan_server)
        assert all(alive(pid) for pid in (other_state, unknown_server, live_parent, live_child[0], own_child.pid))
        assert orphans.stop_orphans(state) == []  # twice: nothing left
    finally:
        orphans.release(state)
        own_child.kill()
        own_child.wait(10)


def test_a_state_directory_a_live_process_holds_is_refused(tmp_path):
    state = tmp_path / "state"
    holder = subprocess.Popen([sys.executable, "-c", f"""
import sys, time
sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
from local.orphans import claim
claim({str(state)!r})
print("held", flush=True)
{SLEEPER}"""], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(orphans.StackRunning, match=f"pid {holder.pid}"):
            orphans.stop_orphans(state)
        assert orphans.holder(state) == holder.pid
    finally:
        holder.kill()
        holder.wait(10)
    # the holder died (however it died): the lock is free, the state is this process's now
    try:
        assert orphans.stop_orphans(state) == []
        assert orphans.holder(state) == os.getpid()
    finally:
        orphans.release(state)


def test_a_restarted_part_stops_only_the_appliances_its_predecessor_left(layout, started):
    state, workshops, folder, _ = layout
    ours = {"PATH": os.environ["PATH"], "WOD_SECRETS_FILE": str(state / "secrets.json"),
            "WOD_WORKSHOPS_DIR": str(workshops)}
    appliance = [sys.executable, "appliance/server.py", "--port", "9901"]
    orphan = detached(appliance, ours, folder)  # its workers process died
    started.append(orphan)
    root = str(Path(__file__).resolve().parents[2])
    part = f"import json, sys; sys.path.insert(0, {root!r}); from local.orphans import stop_left_behind; " \
           f"print(json.dumps(stop_left_behind({str(state)!r}, grace=5)))"
    supervisor = subprocess.Popen([sys.executable, "-c", f"""
import json, subprocess, sys
sys.path.insert(0, {root!r})
from local.orphans import claim
claim({str(state)!r})
live = subprocess.Popen({appliance!r}, cwd={str(folder)!r}, env={ours!r}, start_new_session=True)
print(live.pid, flush=True)
print(subprocess.run([sys.executable, "-c", {part!r}], capture_output=True, text=True).stdout, flush=True)
{SLEEPER}"""], stdout=subprocess.PIPE, text=True)
    started.append(supervisor.pid)
    try:
        live = int(supervisor.stdout.readline())
        started.append(live)
        stopped = json.loads(supervisor.stdout.readline())
        assert len(stopped) == 1 and f"pid {orphan}" in stopped[0]
        assert not alive(orphan) and alive(live)
        assert orphans.stop_left_behind(state) == []  # not this test's supervisor: refused
    finally:
        supervisor.kill()
        supervisor.wait(10)


def test_a_dead_stacks_parts_and_idle_culler_are_stopped_not_another_states(layout, started, tmp_path):
    """A part whose supervisor was SIGKILLed (a workers process still finishing its tasks) and the
    idle culler of a killed JupyterHub are stopped; the same of another state directory is not."""
    state, _, _, _ = layout
    other = tmp_path / "other-state"
    (other / "hub").mkdir(parents=True)
    env = {"PATH": os.environ["PATH"]}
    part = [sys.executable, "-c", SLEEPER, "-m", "local", "workers"]  # the command line of a part
    culler = [sys.executable, "-c", SLEEPER, "-m", "jupyterhub_idle_culler", "--timeout=1200"]
    ours = [detached(part, env | {"WOD_STATE_DIR": str(state)}, tmp_path),
            detached(culler, env, state / "hub")]
    theirs = [detached(part, env | {"WOD_STATE_DIR": str(other)}, tmp_path),
              detached(culler, env, other / "hub")]
    started.extend(ours + theirs)
    stopped = orphans.stop_orphans(state, grace=5)
    assert any("workers part of a stopped stack" in line for line in stopped), stopped
    assert any("idle culler of a stopped JupyterHub" in line for line in stopped), stopped
    deadline = time.monotonic() + 30
    while any(alive(pid) for pid in ours) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(pid) for pid in ours)
    assert all(alive(pid) for pid in theirs)
    orphans.release(state)
