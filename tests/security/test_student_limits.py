"""A student's server runs within resource limits (processes per student, memory and open files
per process, file size), which its kernels inherit: read from the running server's
``/proc/<pid>/limits``; and in a CPU cgroup of its own, named after its hub, capped at one core
(``/proc/<pid>/cgroup``)."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.hubtools import new_name

pytestmark = pytest.mark.timeout(400)


def server_pid(name: str) -> int:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(b"jupyterhub-singleuser" in part for part in argv[:2]) and f"JUPYTERHUB_USER={name}".encode() in environ:
            return int(entry.name)
    raise AssertionError(f"no server process for {name}")


def limits(pid: int) -> dict[str, tuple[str, str]]:
    rows = {}
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines()[1:]:
        parts = line.split()
        name_end = next(i for i, part in enumerate(parts) if part[0].isdigit() or part == "unlimited")
        rows[" ".join(parts[:name_end])] = (parts[name_end], parts[name_end + 1])
    return rows


def running_server(hub) -> tuple[str, int]:
    """A new student's running server: (name, pid)."""
    name = new_name()
    hub.created.append(name)
    hub.api.create_user(name)
    hub.api.start_server(name)
    hub.api.wait_ready(name)
    return name, server_pid(name)


def test_a_student_server_runs_within_limits(hub):
    name, pid = running_server(hub)
    assert os.stat(f"/proc/{pid}").st_uid != 0  # the student's own user
    found = limits(pid)
    assert found["Max processes"] == ("256", "256")
    assert found["Max data size"] == (str(2048 * 1024 * 1024),) * 2
    assert found["Max file size"] == (str(1024 * 1024 * 1024),) * 2
    assert found["Max open files"] == ("4096", "4096")


def cpu_cgroup(pid: int) -> tuple[Path, bool] | None:
    """The CPU cgroup directory of a process, and whether it is cgroup v2."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "cpu" in controllers.split(","):
            for mount in ("cpu", "cpu,cpuacct", controllers):
                if (Path("/sys/fs/cgroup", mount) / "cpu.cfs_quota_us").exists():
                    return Path("/sys/fs/cgroup", mount) / path.lstrip("/"), False
        if controllers == "" and (Path("/sys/fs/cgroup") / "cgroup.controllers").exists():
            return Path("/sys/fs/cgroup") / path.lstrip("/"), True
    return None


def test_a_student_server_is_capped_at_its_cores_in_a_cgroup_of_its_own(hub):
    name, pid = running_server(hub)
    found = cpu_cgroup(pid)
    assert found is not None, "the server is in no CPU cgroup"
    group, v2 = found
    hub_id = (hub.state_dir / "hub_id").read_text().strip()
    assert group.name == f"wod-{hub_id}-{name}"  # this hub's: another hub's student of that name has its own
    if v2:
        assert (group / "cpu.max").read_text().split() == ["100000", "100000"]
    else:
        assert (group / "cpu.cfs_quota_us").read_text().strip() == "100000"
        assert (group / "cpu.cfs_period_us").read_text().strip() == "100000"
    hub.api.delete_user(name)  # the server stops, and its empty cgroup goes with it
    deadline = time.monotonic() + 30
    while group.exists() and time.monotonic() < deadline:
        time.sleep(0.25)
    assert not group.exists()
