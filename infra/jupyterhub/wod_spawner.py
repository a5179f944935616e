"""The isolated local spawner: each student's server runs as the student's own Linux user
(``LocalProcessSpawner``) within limits, so one participant can neither exhaust the machine nor
leave anything behind for the seat's next holder.

* **cgroups of their own** (``student_cgroups.py``): the server and everything it starts are in
  the student's groups, limited together (memory with the student's tmpfs files, processes, CPU)
  and killed as a whole when the server stops; a spawn whose groups cannot be made fails.
* **A private /tmp, /var/tmp, /dev/shm and /run/lock** (a mount namespace of the server's own,
  each a tmpfs of at most the student's memory, counted in it) and **private System V IPC** (an
  IPC namespace): nothing a student leaves there outlives their processes, and no other student
  sees it.
* **rlimits**, inherited by kernels and terminals: processes per Linux user, memory per process
  (``RLIMIT_DATA``), open files, file size.

Preparing the groups and removing them run off the hub's event loop (a thread); what runs between
fork and exec (joining the groups, the namespaces, the rlimits, becoming the student) is in the
child process.
"""
from __future__ import annotations

import asyncio
import ctypes
import os
import resource
import sys
from functools import cache
from pathlib import Path

from jupyterhub.spawner import LocalProcessSpawner
from traitlets import Float, Integer, Unicode

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
from student_accounts import SHARED_DIRS
from student_cgroups import StudentGroups

MB = 1024 * 1024
CLONE_NEWNS, CLONE_NEWIPC = 0x00020000, 0x08000000
MS_NOSUID, MS_NODEV, MS_REC, MS_PRIVATE = 2, 4, 16384, 1 << 18


@cache
def groups_for(hub_id: str, memory_mb: int, pids: int, cpus: float) -> StudentGroups:
    return StudentGroups(hub_id, memory_mb, pids, cpus)


def private_namespaces(size_mb: int):
    """A function for a child process (between fork and exec, still root): new mount and IPC
    namespaces, mounts made private, a fresh tmpfs on each shared world-writable directory. libc is
    loaded here, in the parent: loading a library after fork in a threaded process can hang."""
    libc = ctypes.CDLL(None, use_errno=True)
    unshare, mount = libc.unshare, libc.mount
    targets = [d.encode() for d in SHARED_DIRS if os.path.isdir(d) and not os.path.islink(d)]
    options = (f"size={size_mb}m,mode=1777" if size_mb > 0 else "mode=1777").encode()

    def enter():
        if unshare(CLONE_NEWNS | CLONE_NEWIPC) != 0:
            raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS | CLONE_NEWIPC)")
        if mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
            raise OSError(ctypes.get_errno(), "mount --make-rprivate /")
        for target in targets:
            if mount(b"tmpfs", target, b"tmpfs", MS_NOSUID | MS_NODEV, options) != 0:
                raise OSError(ctypes.get_errno(), f"mount tmpfs on {target.decode()}")

    return enter


class LimitedSpawner(LocalProcessSpawner):
    hub_id = Unicode("", config=True, help="This hub's id (made once per hub state): part of its cgroups' names.")
    max_processes = Integer(256, config=True, help="Processes (and threads) one student may run at once.")
    memory_mb = Integer(2048, config=True, help="""Memory one student may use, all processes and their /tmp,
        /dev/shm files together (cgroup); also the most one process may allocate (RLIMIT_DATA).""")
    file_mb = Integer(1024, config=True, help="Largest file a student may write.")
    open_files = Integer(4096, config=True, help="Files one process of a student may hold open.")
    cpus = Float(1.0, config=True, help="Cores one student's server and kernels may use together (0: no cap).")

    def groups(self) -> StudentGroups:
        return groups_for(self.hub_id, self.memory_mb, self.max_processes, self.cpus)

    def rlimits(self) -> list:
        """The per-process limits that are on (a limit of 0 is off)."""
        limits = [(resource.RLIMIT_NPROC, self.max_processes), (resource.RLIMIT_DATA, self.memory_mb * MB),
                  (resource.RLIMIT_FSIZE, self.file_mb * MB), (resource.RLIMIT_NOFILE, self.open_files)]
        return [(kind, value) for kind, value in limits if value > 0]

    async def start(self):
        # a server that exited on its own left its groups: they go before new ones are made
        await asyncio.to_thread(self.groups().kill, self.user.name)
        self._procs = await asyncio.to_thread(self.groups().prepare, self.user.name)
        return await super().start()

    def make_preexec_fn(self, name):
        become = super().make_preexec_fn(name)
        limits = self.rlimits()
        procs = [str(path).encode() for path in getattr(self, "_procs", [])]
        enter_namespaces = private_namespaces(self.memory_mb)

        def preexec():
            pid = str(os.getpid()).encode()
            for path in procs:  # into the student's groups, with everything it will start
                fd = os.open(path, os.O_WRONLY)
                try:
                    os.write(fd, pid)
                finally:
                    os.close(fd)
            enter_namespaces()
            for kind, value in limits:  # as root, before becoming the student: soft = hard, not raisable
                resource.setrlimit(kind, (value, value))
            become()

        return preexec

    async def stop(self, now=False):
        await super().stop(now=now)
        try:  # whatever the student left running goes with the server
            await asyncio.to_thread(self.groups().kill, self.user.name)
        except RuntimeError as exc:
            self.log.error("%s's processes outlived their server: %s (the account is kept until they are gone)",
                           self.user.name, exc)
