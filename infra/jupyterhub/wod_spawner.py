"""The isolated local spawner: each student's server runs as the student's own Linux user
(``LocalProcessSpawner``) within resource limits, so one participant cannot exhaust the machine
for the others. The limits are rlimits set before the server starts, inherited by everything it
starts (kernels, terminals), each process counted on its own except the process count, which is
per Linux user (each student is one). CPU: each student's server gets a CPU cgroup of its own
under the hub's (``local/part.py``, where all students together weigh less than the platform),
capped at ``cpus`` cores (cgroup v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``), so one student's busy
loop cannot take more than that from the others.
"""
from __future__ import annotations

import logging
import os
import resource
from pathlib import Path

from jupyterhub.spawner import LocalProcessSpawner
from traitlets import Float, Integer

MB = 1024 * 1024
CGROUP_ROOT = Path("/sys/fs/cgroup")
PERIOD_US = 100_000
log = logging.getLogger(__name__)


def cpu_cgroup(root: Path = CGROUP_ROOT, proc: Path = Path("/proc/self/cgroup")) -> tuple[Path, bool] | None:
    """This process's CPU cgroup directory and whether it is cgroup v2; None without one."""
    try:
        lines = proc.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "cpu" in controllers.split(","):
            for mount in (root / controllers, root / "cpu", root / "cpu,cpuacct"):
                if (mount / "cpu.cfs_quota_us").exists():
                    return mount / path.lstrip("/"), False
    if (root / "cgroup.controllers").exists():
        path = next((line.split(":", 2)[2] for line in lines if line.startswith("0::")), None)
        if path is not None and "cpu" in (root / "cgroup.controllers").read_text().split():
            return root / path.lstrip("/"), True
    return None


def cap_cpu(group: Path, v2: bool, cpus: float) -> None:
    """Create ``group`` (a child of this process's CPU cgroup) capped at ``cpus`` cores."""
    group.mkdir(exist_ok=True)
    quota = max(1000, round(cpus * PERIOD_US))
    if v2:
        (group / "cpu.max").write_text(f"{quota} {PERIOD_US}")
    else:
        (group / "cpu.cfs_period_us").write_text(str(PERIOD_US))
        (group / "cpu.cfs_quota_us").write_text(str(quota))


class LimitedSpawner(LocalProcessSpawner):
    max_processes = Integer(256, config=True, help="Processes (and threads) one student may run at once.")
    memory_mb = Integer(2048, config=True, help="Memory one process of a student may allocate (RLIMIT_DATA).")
    file_mb = Integer(1024, config=True, help="Largest file a student may write.")
    open_files = Integer(4096, config=True, help="Files one process of a student may hold open.")
    cpus = Float(1.0, config=True, help="Cores one student's server and kernels may use together (0: no cap).")

    def cpu_group(self) -> Path | None:
        """The student's capped CPU cgroup, made ready before the server starts; None when the
        machine has no CPU cgroup to nest it in (the rlimits still apply)."""
        if self.cpus <= 0:
            return None
        found = self.cpu_group_path()
        if found is None:
            log.warning("no CPU cgroup: %s's server runs without a CPU cap", self.user.name)
            return None
        group, v2 = found
        try:
            if v2:
                (group.parent / "cgroup.subtree_control").write_text("+cpu")
            cap_cpu(group, v2, self.cpus)
        except OSError as exc:
            log.warning("%s's server runs without a CPU cap (%s: %s)", self.user.name, group, exc)
            return None
        return group

    def rlimits(self) -> list[tuple[int, int]]:
        return [(resource.RLIMIT_NPROC, self.max_processes), (resource.RLIMIT_DATA, self.memory_mb * MB),
                (resource.RLIMIT_FSIZE, self.file_mb * MB), (resource.RLIMIT_NOFILE, self.open_files)]

    def make_preexec_fn(self, name):
        become = super().make_preexec_fn(name)
        limits = self.rlimits()
        group = self.cpu_group()
        procs = str(group / "cgroup.procs").encode() if group else None

        def preexec():
            if procs:  # into the student's capped CPU cgroup, with everything it will start
                fd = os.open(procs, os.O_WRONLY)
                try:
                    os.write(fd, str(os.getpid()).encode())
                finally:
                    os.close(fd)
            for kind, value in limits:  # as root, before becoming the student: soft = hard, not raisable
                resource.setrlimit(kind, (value, value))
            become()

        return preexec

    async def stop(self, now=False):
        await super().stop(now=now)
        found = self.cpu_group_path()
        if found is not None:
            try:
                found[0].rmdir()  # empty once the server and its kernels are gone
            except OSError:
                pass

    def cpu_group_path(self) -> tuple[Path, bool] | None:
        """Where the student's CPU cgroup is (or goes), and whether it is cgroup v2."""
        found = cpu_cgroup()
        return (found[0] / f"student-{self.user.name}", found[1]) if found else None
