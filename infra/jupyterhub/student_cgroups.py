"""Each student's processes in cgroups of their own, limited together and killed as a whole.

A student's server and everything it starts (kernels, terminals, whatever a student detaches with
``setsid``, ``nohup`` or a fork chain under a child subreaper) stay in the student's cgroups: only
root may move a process out. So ending a session kills the whole group (cgroup v2 ``cgroup.kill``,
or cgroup v1's freezer: frozen, every member killed, thawed) and waits until the group is empty,
which a kill by uid (a snapshot of pids while the chain keeps forking) never proved.

The same groups carry the student's limits: memory (``memory.max`` / ``memory.limit_in_bytes``;
tmpfs pages count for whoever wrote them, so files in the student's private /tmp and /dev/shm are
counted), processes (``pids.max``) and CPU (``cpu.max`` / ``cpu.cfs_quota_us``). Each limit is
taken from cgroup v2 when its controller is there, else from the cgroup v1 hierarchy that has it
(a "hybrid" machine); :meth:`StudentGroups.problems` names what can be had nowhere, so the hub
refuses to start rather than run students unlimited or unkillable.

Groups are named ``wod-<hub id>-<student>`` (the hub id is made once per hub state) and nested in
the hub's own cgroup of each hierarchy, so two hubs on one machine never share or remove each
other's groups. In the CPU controller's hierarchy they sit together in ``wod-<hub id>-students``,
whose weight is the least there is: the hub and its proxy, beside it, get the CPU they ask for
first, however many servers they are spawning; the students share what is left (a group's weight
only counts when others want the CPU too).
"""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

PERIOD_US = 100_000
LEAST_SHARES, LEAST_WEIGHT = 2, 1  # the students' CPU parent: cgroup v1 cpu.shares, v2 cpu.weight
MB = 1024 * 1024
CONTROLLERS = ("memory", "pids", "cpu")


def _mounts(mountinfo: Path) -> tuple[Path | None, dict[str, Path]]:
    """The cgroup v2 mount point, and controller -> cgroup v1 mount point."""
    v2, v1 = None, {}
    for line in mountinfo.read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields, rest = left.split(), right.split()
        if len(fields) < 5 or len(rest) < 3:
            continue
        point, fstype, options = Path(fields[4].replace("\\040", " ")), rest[0], rest[2].split(",")
        if fstype == "cgroup2" and v2 is None:
            v2 = point
        elif fstype == "cgroup":
            for option in options:
                if option in ("memory", "pids", "cpu", "freezer"):
                    v1.setdefault(option, point)
    return v2, v1


def own_groups(proc_cgroup: Path = Path("/proc/self/cgroup"),
               mountinfo: Path = Path("/proc/self/mountinfo")) -> tuple[Path | None, dict[str, Path]]:
    """This process's cgroup v2 directory, and controller -> its cgroup v1 directory."""
    v2_mount, v1_mounts = _mounts(mountinfo)
    v2, v1 = None, {}
    for line in proc_cgroup.read_text().splitlines():
        hierarchy, controllers, path = line.split(":", 2)
        if hierarchy == "0" and controllers == "" and v2_mount is not None:
            v2 = v2_mount / path.lstrip("/")
        for controller in controllers.split(","):
            if controller in v1_mounts:
                v1[controller] = v1_mounts[controller] / path.lstrip("/")
    return v2, v1


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


class StudentGroups:
    """The cgroups of one hub's students. ``memory_mb``, ``pids`` and ``cpus`` of 0 turn that
    limit off; the kill is never off."""

    def __init__(self, hub_id: str, memory_mb: int = 0, pids: int = 0, cpus: float = 0.0,
                 found: tuple[Path | None, dict[str, Path]] | None = None):
        self.hub_id, self.memory_mb, self.pids, self.cpus = hub_id, memory_mb, pids, cpus
        self.v2, self.v1 = found if found is not None else own_groups()
        v2_has = set(_read(self.v2 / "cgroup.controllers").split()) if self.v2 else set()
        wanted = {"memory": memory_mb > 0, "pids": pids > 0, "cpu": cpus > 0}
        # where each limit lives: "v2", "v1", or None (nowhere: a problem if wanted)
        self.place = {name: "v2" if name in v2_has else "v1" if name in self.v1 else None for name in CONTROLLERS}
        self.wanted = [name for name in CONTROLLERS if wanted[name]]
        if "cpu" not in self.wanted and self.place["cpu"] is not None:
            self.wanted.append("cpu")  # no cap, but the students' low CPU priority all the same
        can_kill = self.v2 is not None and self._v2_can_kill()
        self.killer = "v2" if can_kill else "freezer" if "freezer" in self.v1 else None

    def _v2_can_kill(self) -> bool:
        probe = self.v2 / f"wod-{self.hub_id}-probe"
        try:
            probe.mkdir(exist_ok=True)
            return (probe / "cgroup.kill").exists()
        except OSError:
            return False
        finally:
            try:
                probe.rmdir()
            except OSError:
                pass

    def problems(self) -> list[str]:
        """What the students would run without: each a reason to refuse to start."""
        found = [] if self.killer else ["no cgroup v2 (cgroup.kill, Linux 5.14+) and no cgroup v1 freezer: a "
                                        "student's processes could outlive their session"]
        knob = {"memory": "WOD_STUDENT_MEMORY_MB", "pids": "WOD_STUDENT_PROCESSES", "cpu": "WOD_STUDENT_CPUS"}
        found += [f"no cgroup {name} controller (v1 or v2) for {knob[name]} (0 turns that limit off)"
                  for name in self.wanted if self.place[name] is None]
        return found

    def name(self, student: str) -> str:
        return f"wod-{self.hub_id}-{student}"

    def _base(self, hierarchy: str) -> Path:
        """Where a hierarchy's student groups go: the hub's own group, or, for the hierarchy of the
        CPU controller, the students' low-priority parent in it."""
        base = self.v2 if hierarchy == "v2" else self.v1[hierarchy]
        assert base is not None
        if (hierarchy, self.place["cpu"]) in (("v2", "v2"), ("cpu", "v1")):
            return base / f"wod-{self.hub_id}-students"
        return base

    def _hierarchies(self) -> list[str]:
        return (["v2"] if self.v2 is not None else []) + sorted(self.v1)

    def directories(self, student: str) -> list[Path]:
        """The directories a new group of the student's is made of: the v2 group (membership, kill,
        v2 limits) and a v1 group per limit v2 lacks (and the freezer without v2's kill)."""
        dirs = [self._base("v2") / self.name(student)] if self.v2 is not None else []
        v1 = {c for c in self.wanted if self.place[c] == "v1"} | ({"freezer"} if self.killer == "freezer" else set())
        return dirs + [self._base(c) / self.name(student) for c in sorted(v1)]

    def existing(self, student: str) -> list[Path]:
        """Every directory of the student's groups there is now, in any hierarchy (whatever
        limits the hub that made them had)."""
        found = []
        for hierarchy in self._hierarchies():
            base = self._base(hierarchy)
            for directory in (base / self.name(student), base.parent / self.name(student)):
                if directory.is_dir():
                    found.append(directory)
        return found

    def _students_parent(self) -> None:
        """The students' CPU parent, at the least weight (made once)."""
        hierarchy = "v2" if self.place["cpu"] == "v2" else "cpu"
        parent = self._base(hierarchy)
        if parent.is_dir():
            return
        parent.mkdir(exist_ok=True)
        if hierarchy == "v2":
            (parent / "cpu.weight").write_text(str(LEAST_WEIGHT))
            controllers = [c for c in self.wanted if self.place[c] == "v2"]
            (parent / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in controllers))
        else:
            (parent / "cpu.shares").write_text(str(LEAST_SHARES))

    def prepare(self, student: str) -> list[Path]:
        """Create the student's groups with their limits; the ``cgroup.procs`` files a new process
        writes its pid to (before it becomes the student). Raises OSError when a group cannot be made."""
        v2_limits = [c for c in self.wanted if self.place[c] == "v2"]
        if v2_limits:
            self._enable_v2(v2_limits)
        if self.place["cpu"] is not None:
            self._students_parent()
        for directory in self.directories(student):
            directory.mkdir(exist_ok=True)
        group = self.name(student)
        if self.memory_mb > 0:
            limit = str(self.memory_mb * MB)
            if self.place["memory"] == "v2":
                (self._base("v2") / group / "memory.max").write_text(limit)
                if (self._base("v2") / group / "memory.swap.max").exists():
                    (self._base("v2") / group / "memory.swap.max").write_text("0")
            else:
                (self.v1["memory"] / group / "memory.limit_in_bytes").write_text(limit)
                swap = self.v1["memory"] / group / "memory.memsw.limit_in_bytes"
                if swap.exists():  # memory and swap together: swapping does not stretch the limit
                    swap.write_text(limit)
        if self.pids > 0:
            base = self._base("v2") if self.place["pids"] == "v2" else self.v1["pids"]
            (base / group / "pids.max").write_text(str(self.pids))
        if self.cpus > 0:
            quota = max(1000, round(self.cpus * PERIOD_US))
            if self.place["cpu"] == "v2":
                (self._base("v2") / group / "cpu.max").write_text(f"{quota} {PERIOD_US}")
            else:
                (self._base("cpu") / group / "cpu.cfs_period_us").write_text(str(PERIOD_US))
                (self._base("cpu") / group / "cpu.cfs_quota_us").write_text(str(quota))
        return [directory / "cgroup.procs" for directory in self.directories(student)]

    def _enable_v2(self, controllers: list[str]) -> None:
        """Let the hub's v2 group hand ``controllers`` to its children. cgroup v2 allows that only to
        a group without processes of its own: the hub's (and its parent process's) move to a leaf."""
        control = self.v2 / "cgroup.subtree_control"
        missing = [c for c in controllers if c not in _read(control).split()]
        if not missing:
            return
        members = [p for p in _read(self.v2 / "cgroup.procs").split() if p.strip()]
        if members and (self.v2 / "cgroup.type").exists():  # not the root group, which may have both
            leaf = self.v2 / f"wod-{self.hub_id}-hub"
            leaf.mkdir(exist_ok=True)
            for pid in members:
                try:
                    (leaf / "cgroup.procs").write_text(pid)
                except OSError:
                    pass  # gone meanwhile
        control.write_text(" ".join(f"+{c}" for c in missing))

    def members(self, student: str) -> list[int]:
        pids = set()
        for directory in self.existing(student):
            pids.update(int(p) for p in _read(directory / "cgroup.procs").split())
        return sorted(pids)

    def kill(self, student: str, timeout: float = 20.0) -> None:
        """Kill every process of the student's groups, wait until they are empty, remove them.
        RuntimeError (the groups kept) if something is still there at ``timeout``."""
        directories = self.existing(student)
        if not directories:
            return
        deadline = time.monotonic() + timeout
        while True:
            left = self.members(student)
            if not left:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(left)} process(es) of {student} survived the kill of {self.name(student)}")
            self._kill_once(student, left)
            time.sleep(0.05)
        for directory in directories:
            try:
                directory.rmdir()
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise RuntimeError(f"cannot remove {directory}: {exc}") from exc

    def _kill_once(self, student: str, left: list[int]) -> None:
        group = self.name(student)
        killers = [d / "cgroup.kill" for d in self.existing(student) if (d / "cgroup.kill").exists()]
        if self.killer == "v2" and killers:
            killers[0].write_text("1")
            return
        freezer = self.v1["freezer"] / group if "freezer" in self.v1 else None
        if freezer is None or not freezer.is_dir():  # a group without the kill file: one by one, repeatedly
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            return
        (freezer / "freezer.state").write_text("FROZEN")  # nobody forks while we kill
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        (freezer / "freezer.state").write_text("THAWED")  # a killed process dies only once thawed

    def remove_empty(self) -> list[str]:
        """Remove this hub's student groups that nothing runs in (left by a hub that was killed);
        the names of those removed."""
        prefix, removed = f"wod-{self.hub_id}-", set()
        bases = {self._base(h) for h in self._hierarchies()} | {self._base(h).parent for h in self._hierarchies()}
        for base in bases:
            try:
                found = [p for p in base.iterdir() if p.is_dir() and p.name.startswith(prefix)]
            except OSError:
                continue
            for group in found:
                kept = group.name in (f"{prefix}hub", f"{prefix}students")
                if not kept and not _read(group / "cgroup.procs").split():
                    try:
                        group.rmdir()
                        removed.add(group.name[len(prefix):])
                    except OSError:
                        pass
        return sorted(removed)
