"""A seat is never handed over dirty: nothing of a participant outlives their account, and the next
holder of a seat gets a uid nobody had.

A real JupyterHub (isolated spawner) with small limits; each participant acts from their own kernel:

* a detached process that makes itself a child subreaper and keeps forking (each parent exits) is
  gone once the account is removed, and the next account's uid was never anyone's;
* 0600 files in /tmp, /var/tmp and /dev/shm, and a System V shared-memory segment, are private to
  their writer's session and gone with it;
* memory is limited per participant, their /dev/shm files counted; processes per participant; the
  home has a fixed size."""
from __future__ import annotations

import json
import os
import pwd
import secrets
import time
from pathlib import Path

import pytest

from tests.hubtools import login, new_name, processes_of, run_in_kernel, running_hub

pytestmark = pytest.mark.timeout(400)
MEMORY_MB, PROCESSES, DISK_MB = 512, 128, 64


@pytest.fixture(scope="module")
def hub(embedded_aws, tmp_path_factory):
    env = {"WOD_STUDENT_MEMORY_MB": str(MEMORY_MB), "WOD_STUDENT_PROCESSES": str(PROCESSES),
           "WOD_STUDENT_DISK_MB": str(DISK_MB)}
    with running_hub(embedded_aws, tmp_path_factory.mktemp("handover"), env=env) as started:
        yield started


def participant(hub) -> tuple[str, object]:
    """A new participant with a running server, logged in: (name, session)."""
    name, password = new_name(), secrets.token_urlsafe(12)
    hub.created.append(name)
    hub.api.create_user(name)
    hub.students.put(name, password)
    hub.api.start_server(name)
    hub.api.wait_ready(name)
    session, response = login(hub.url, name, password)
    assert response.status_code == 200, response.url
    return name, session


def run(hub, name, session, code: str, timeout: float = 60) -> dict:
    return json.loads(run_in_kernel(hub, session, name, code, timeout).split("RESULT:", 1)[1])


FORK_CHAIN = r"""
import subprocess, sys
chain = '''
import ctypes, os, time
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
while True:
    if os.fork():
        os._exit(0)  # the parent goes, the child carries on under a new pid
    time.sleep(0.02)
'''
subprocess.Popen([sys.executable, "-c", chain], start_new_session=True, stdin=subprocess.DEVNULL,
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
import os, json
print("RESULT:" + json.dumps({"uid": os.getuid()}))
"""


def teardown(hub, name) -> None:
    """What the platform's cleanup does (its hub client): stop the server, wait for it to stop,
    delete the hub user."""
    from chalicelib.adapters.hub import HubClient

    HubClient(hub.url, hub.token, timeout=30).delete_user(name)
    response = hub.api.http.get(f"{hub.api_url}/users/{name}", timeout=30)
    assert response.status_code == 404, response.text


def test_nothing_of_a_participant_outlives_their_account_and_no_uid_is_handed_out_twice(hub):
    first, session = participant(hub)
    uid = run(hub, first, session, FORK_CHAIN)["uid"]
    deadline = time.monotonic() + 10
    while not processes_of(uid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_of(uid), "the forking process never started"
    teardown(hub, first)
    assert processes_of(uid) == [], "a process of the removed participant survived"
    hub_id = (hub.state_dir / "hub_id").read_text().strip()
    assert not [p for p in Path("/sys/fs/cgroup").rglob(f"wod-{hub_id}-{first}")], "its cgroups are left"
    with pytest.raises(KeyError):
        pwd.getpwnam(first)

    second = new_name()
    hub.created.append(second)
    hub.api.create_user(second)
    assert pwd.getpwnam(second).pw_uid > uid  # upwards, never the removed one's
    time.sleep(0.5)  # a survivor would have had time to fork on
    assert processes_of(uid) == []


LEAVE_FILES = r"""
import ctypes, json, os
libc = ctypes.CDLL(None, use_errno=True)
for folder in ("/tmp", "/var/tmp", "/dev/shm"):
    fd = os.open(os.path.join(folder, "left-by-" + NAME), os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"my answers")
    os.close(fd)
segment = libc.shmget(0x5EA7, 4096, 0o1600)  # IPC_CREAT | 0600
print("RESULT:" + json.dumps({"segment": segment, "seen": sorted(
    f for folder in ("/tmp", "/var/tmp", "/dev/shm") for f in os.listdir(folder) if f.startswith("left-by-"))}))
"""

LOOK = r"""
import json, os, ctypes
libc = ctypes.CDLL(None, use_errno=True)
print("RESULT:" + json.dumps({"segment": libc.shmget(0x5EA7, 0, 0), "seen": sorted(
    f for folder in ("/tmp", "/var/tmp", "/dev/shm") for f in os.listdir(folder) if f.startswith("left-by-"))}))
"""


def owner(path: Path) -> int | None:
    try:
        return path.lstat().st_uid
    except FileNotFoundError:  # another process's file, gone meanwhile
        return None


def test_files_and_shared_memory_outside_the_home_are_private_and_go_with_their_session(hub):
    writer, session = participant(hub)
    left = run(hub, writer, session, f"NAME = {writer!r}\n" + LEAVE_FILES)
    assert left["segment"] >= 0 and left["seen"] == [f"left-by-{writer}"] * 3
    other, other_session = participant(hub)
    assert run(hub, other, other_session, LOOK) == {"segment": -1, "seen": []}  # meanwhile: private
    uid = pwd.getpwnam(writer).pw_uid
    teardown(hub, writer)
    for folder in ("/tmp", "/var/tmp", "/dev/shm"):  # nothing of the uid on the machine
        assert not [p for p in Path(folder).iterdir() if p.name == f"left-by-{writer}" or owner(p) == uid]
    later, later_session = participant(hub)
    assert run(hub, later, later_session, LOOK) == {"segment": -1, "seen": []}


LIMITS = r"""
import errno, json, os, subprocess, sys
found = {}
# memory: per participant, /dev/shm included
# each holder offers itself to the OOM killer first (oom_score_adj 1000), so the kernel running this survives
hold = ("import time; open('/proc/self/oom_score_adj', 'w').write('1000'); b = bytearray(%d); "
        "b[::4096] = b'x' * len(b[::4096]); print('held', flush=True); time.sleep(60)")
with open("/dev/shm/ballast", "wb") as f:
    f.write(b"x" * (150 << 20))
procs = [subprocess.Popen([sys.executable, "-c", hold % (150 << 20)], stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL) for _ in range(3)]
found["held"] = sum(p.stdout.readline() == b"held\n" for p in procs)
for p in procs:
    p.kill()
os.unlink("/dev/shm/ballast")
# disk: the home has a fixed size
try:
    for n in range(2):
        with open(os.path.expanduser(f"~/big{n}"), "wb") as f:
            for _ in range(40):
                f.write(b"x" * (1 << 20))
    found["disk"] = "both written"
except OSError as exc:
    found["disk"] = errno.errorcode.get(exc.errno, str(exc.errno))
for n in range(2):
    try:
        os.unlink(os.path.expanduser(f"~/big{n}"))
    except FileNotFoundError:
        pass
cgroups = open("/proc/self/cgroup").read()
print("RESULT:" + json.dumps(dict(found, cgroups=cgroups)))
"""


def group_file(cgroups: str, controller: str, knob: str) -> str:
    for line in cgroups.splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return (Path("/sys/fs/cgroup", controller) / path.lstrip("/") / knob).read_text().strip()
    for line in cgroups.splitlines():  # cgroup v2
        if line.startswith("0::") and (Path("/sys/fs/cgroup") / "cgroup.controllers").exists():
            path = Path("/sys/fs/cgroup") / line[3:].lstrip("/")
            return (path / knob.replace("limit_in_bytes", "max")).read_text()
    raise AssertionError(f"no {controller} cgroup in {cgroups}")


def test_memory_processes_and_disk_are_limited_per_participant(hub):
    name, session = participant(hub)
    found = run(hub, name, session, LIMITS, timeout=120)
    # 150 MB in /dev/shm and three processes of 150 MB each: over 512 MB together, so not all three
    assert found["held"] < 3, "the memory limit is not per participant, or does not count /dev/shm"
    assert found["disk"] == "ENOSPC"  # 2 x 40 MB in a 64 MB home
    assert int(group_file(found["cgroups"], "memory", "memory.limit_in_bytes")) == MEMORY_MB << 20
    assert int(group_file(found["cgroups"], "pids", "pids.max")) == PROCESSES
    assert os.statvfs(pwd.getpwnam(name).pw_dir).f_blocks * os.statvfs(pwd.getpwnam(name).pw_dir).f_frsize \
        <= DISK_MB << 20
