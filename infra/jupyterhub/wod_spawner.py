"""The isolated local spawner: each student's server runs as the student's own Linux user
(``LocalProcessSpawner``) within resource limits, so one participant cannot exhaust the machine
for the others. The limits are rlimits set before the server starts, inherited by everything it
starts (kernels, terminals), each process counted on its own except the process count, which is
per Linux user (each student is one). CPU is shared through the hub's CPU cgroup
(``local/part.py``), where all students together weigh less than the platform.
"""
from __future__ import annotations

import resource

from jupyterhub.spawner import LocalProcessSpawner
from traitlets import Integer

MB = 1024 * 1024


class LimitedSpawner(LocalProcessSpawner):
    max_processes = Integer(256, config=True, help="Processes (and threads) one student may run at once.")
    memory_mb = Integer(2048, config=True, help="Memory one process of a student may allocate (RLIMIT_DATA).")
    file_mb = Integer(1024, config=True, help="Largest file a student may write.")
    open_files = Integer(4096, config=True, help="Files one process of a student may hold open.")

    def rlimits(self) -> list[tuple[int, int]]:
        return [(resource.RLIMIT_NPROC, self.max_processes), (resource.RLIMIT_DATA, self.memory_mb * MB),
                (resource.RLIMIT_FSIZE, self.file_mb * MB), (resource.RLIMIT_NOFILE, self.open_files)]

    def make_preexec_fn(self, name):
        become = super().make_preexec_fn(name)
        limits = self.rlimits()

        def preexec():
            for kind, value in limits:  # as root, before becoming the student: soft = hard, not raisable
                resource.setrlimit(kind, (value, value))
            become()

        return preexec
