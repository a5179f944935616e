"""Memory of a running local stack, sampled in a thread: the platform's processes apart from
JupyterHub, its proxy and the student servers (``bench/event_day.py``)."""
from __future__ import annotations

import grp
import os
import pwd
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from chalicelib.adapters.appliances import listeners

STUDENT_GROUP = "wod-students"


def argv_of(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode("utf-8", "replace").split("\0")
    except OSError:
        return []


def _ppid(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def _is_stack(argv: list[str]) -> bool:
    """``python -m local ...`` or one of its ``python -m local.<part>`` processes."""
    return any(a == "-m" and i + 1 < len(argv) and (argv[i + 1] == "local" or argv[i + 1].startswith("local."))
               for i, a in enumerate(argv))


def find_stack(port: int) -> int | None:
    """The root of the stack serving ``port``: from the process that listens on it, the highest
    ancestor that is a ``python -m local`` process (else the listener itself)."""
    inodes = {f"socket:[{inode}]" for _, inode in listeners(port)}
    if not inodes:
        return None
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            links = {os.readlink(fd) for fd in (entry / "fd").iterdir()}
        except OSError:
            continue
        if links & inodes:
            pid, root = int(entry.name), int(entry.name)
            while pid > 1:
                if _is_stack(argv_of(pid)):
                    root = pid
                pid = _ppid(pid)
            return root
    return None


def mem_available_kb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1])
    return 0


def _is_hub(argv: list[str]) -> bool:
    return any(os.path.basename(a) == "jupyterhub" for a in argv[:3])


@dataclass
class Sample:
    at: float
    platform_kb: int = 0
    hub_kb: int = 0  # JupyterHub, its proxy, student servers and kernels
    servers: int = 0  # jupyterhub-singleuser processes among them
    foreign_students: int = 0  # processes of wod-students users that are not this stack's
    available_kb: int = 0


@dataclass
class Memory:
    """Samples the stack's process tree in a thread: platform vs JupyterHub + student servers."""

    root: int
    interval: float
    students: set[str] = field(default_factory=set)  # this run's student names (orphan servers count)
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @staticmethod
    def _student_uids() -> dict[int, str]:
        try:
            group = grp.getgrnam(STUDENT_GROUP)
        except KeyError:
            return {}
        return {u.pw_uid: u.pw_name for u in pwd.getpwall()
                if u.pw_gid == group.gr_gid or u.pw_name in group.gr_mem}

    def sample(self) -> Sample:
        procs: dict[int, tuple[int, int, int]] = {}  # pid -> (ppid, uid, rss kB)
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                status = (entry / "status").read_text()
            except OSError:
                continue
            values = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
            if "VmRSS" not in values:
                continue  # a kernel thread, or a zombie
            procs[int(entry.name)] = (int(values["PPid"]), int(values["Uid"].split()[0]),
                                      int(values["VmRSS"].split()[0]))
        children: dict[int, list[int]] = {}
        for pid, (ppid, _, _) in procs.items():
            children.setdefault(ppid, []).append(pid)

        def subtree(top: int) -> list[int]:
            found, todo = [], [top]
            while todo:
                pid = todo.pop()
                found.append(pid)
                todo.extend(children.get(pid, []))
            return found

        tree = set(subtree(self.root)) if self.root in procs else set()
        hub_side: set[int] = set()
        for pid in tree:
            if pid not in hub_side and _is_hub(argv_of(pid)):
                hub_side.update(subtree(pid))
        student_uids = self._student_uids()
        result = Sample(time.time())
        for pid, (_, uid, rss) in procs.items():
            if pid in tree:
                if pid in hub_side or uid in student_uids:
                    result.hub_kb += rss
                    result.servers += any("jupyterhub-singleuser" in a for a in argv_of(pid)[:3])
                else:
                    result.platform_kb += rss
            elif uid in student_uids:
                if student_uids[uid] in self.students:  # this stack's, left outside its tree
                    result.hub_kb += rss
                    result.servers += any("jupyterhub-singleuser" in a for a in argv_of(pid)[:3])
                else:
                    result.foreign_students += 1
        result.available_kb = mem_available_kb()
        return result

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append(self.sample())
            except Exception:  # a sample is best effort; the run goes on
                traceback.print_exc()
            self._stop.wait(self.interval)

    def start(self) -> Memory:
        self._thread = threading.Thread(target=self._run, name="memory", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(30)
