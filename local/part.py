"""What every part of the local stack does as a process of its own (``python -m local <part>``).

The supervisor (``local/supervisor.py``) starts each part with its stdout and stderr going to
``.wod/logs/<part>.log`` and, in ``WOD_READY_FD``, the write end of a pipe: the part writes
one JSON line there once it serves (:func:`ready`), which is how the supervisor learns it is
up and what it has to say (the embedded AWS tells the state machines' ARNs). A part also dies
with the supervisor (:func:`die_with_parent`), even when the supervisor is SIGKILLed.
"""
from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from local.config import LocalConfig

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
READY_FD = "WOD_READY_FD"
SUPERVISOR_PID = "WOD_SUPERVISOR_PID"
log = logging.getLogger("wod.local.part")


def die_with_parent(expect_parent: int | None, sig: int = signal.SIGTERM) -> None:
    """Ask Linux to send ``sig`` to this process when its parent dies (``PR_SET_PDEATHSIG``).

    Linux delivers it when the *thread* that forked us ends, so the supervisor starts its parts
    from its main thread. If the parent (``expect_parent``) died before the call, we are an
    orphan already: stop now.
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            log.warning("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
    if expect_parent is not None and os.getppid() != expect_parent:
        os.kill(os.getpid(), sig)


def ready(**details: Any) -> None:
    """Tell the supervisor this part serves (once); a part run by hand has no one to tell."""
    fd = os.environ.pop(READY_FD, None)
    if fd is None:
        return
    try:
        os.write(int(fd), (json.dumps(details) + "\n").encode())
    finally:
        os.close(int(fd))


def setup(part: str) -> LocalConfig:
    """Common start of a part: die with the supervisor, log to stderr (the part's log file),
    the app's JSON lines to ``stack.log``, the app's settings in the environment."""
    supervisor = os.environ.get(SUPERVISOR_PID)
    die_with_parent(int(supervisor) if supervisor else None)
    config = LocalConfig.from_env()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"%(asctime)s {part}[%(process)d] %(name)s %(levelname)s %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    ours = logging.getLogger("wod.local")  # below Chalice's app logger ("wod"), which it sets to ERROR
    ours.setLevel(logging.INFO)
    ours.addHandler(handler)
    ours.propagate = False
    for chatty in ("werkzeug", "mail.log", "botocore", "urllib3", "pynamodb"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    os.environ.update(config.app_environment())
    app_log_to(config.state_dir / "logs" / "stack.log")
    return config


def app_log_to(path: Path) -> None:
    """The app's structured (JSON) log lines go to the stack log (appended: every part writes
    whole lines to it), not to the part's console."""
    from chalicelib.observability import logger as app_logger

    path.parent.mkdir(parents=True, exist_ok=True)
    stream = open(path, "a", buffering=1)
    for handler in app_logger.handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(stream)
    app_logger._logger.propagate = False  # written once, in JSON


def install_context(config: LocalConfig):
    """This process's Context, built from the ``WOD_*`` environment with the stack's shared
    clock, and installed for the app's handlers."""
    from chalicelib.services import bootstrap
    from chalicelib.settings import get_settings
    from local.appliances import appliances_for

    get_settings.cache_clear()
    built = bootstrap.build(get_settings(), clock=config.clock(), appliances=appliances_for(config))
    built.stores.tables.connect()  # before the process serves anyone, not in its first burst
    bootstrap.install(built)
    return built


CGROUP_ROOT = Path("/sys/fs/cgroup")


def lower_cpu_priority(nice: int, weight: int, group: str = "wod-hub", root: Path = CGROUP_ROOT) -> str:
    """Make this process and everything it starts from now on yield the CPU: ``nice``, and a CPU
    cgroup ``group`` of ``weight`` (cgroup v2 units: 100 is what one process at nice 0 weighs)
    that it moves into. Returns what was done, for the log.

    Niceness alone is not enough on Linux with autogroup (``kernel.sched_autogroup_enabled``,
    the default of most distributions): CPU time is shared between sessions first, so a process
    that starts a session of its own (JupyterHub does, and so does every student server it
    spawns) is back at full weight, each of them as much as a platform process. In a cgroup,
    inherited across sessions and outside autogroup, they all weigh ``weight`` together: the
    platform's processes come first, yet JupyterHub and the servers being provisioned are never
    starved (at nice 10's weight, 11, they were, as soon as anything else kept both cores busy).
    As root with cgroup v1's or v2's ``cpu`` controller only; otherwise niceness is all there is.
    """
    os.nice(max(0, nice - os.nice(0)))
    done = f"nice {os.nice(0)}"
    v2 = (root / "cgroup.controllers").exists()
    base, knob = (root, "cpu.weight") if v2 else (root / "cpu", "cpu.shares")
    value = max(1, weight) if v2 else max(2, round(weight * 1024 / 100))  # v1: 1024 for one process
    try:
        if v2 and "cpu" not in (root / "cgroup.controllers").read_text().split():
            raise OSError("cgroup v2 without the cpu controller")
        if not (base / knob).exists() and not (base / "cgroup.procs").exists():
            raise OSError(f"no CPU cgroup at {base}")
        if v2:
            (root / "cgroup.subtree_control").write_text("+cpu")
        (base / group).mkdir(exist_ok=True)
        (base / group / knob).write_text(str(value))
        (base / group / "cgroup.procs").write_text(str(os.getpid()))
    except OSError as exc:
        log.warning("CPU cgroup %s not used (%s): with autogroup the niceness does not reach what runs "
                    "in sessions of its own", group, exc)
        return done
    return f"{done}, cgroup {base / group} {knob}={value}"


class Stopping:
    """SIGTERM and SIGINT set an event the part's main thread waits on; while ``interrupting``
    is true (a long start) they also raise KeyboardInterrupt in it."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.interrupting = False
        signal.signal(signal.SIGTERM, self._set)
        signal.signal(signal.SIGINT, self._set)

    def _set(self, signum: int, frame: Any) -> None:
        self.event.set()
        if self.interrupting:
            self.interrupting = False
            raise KeyboardInterrupt

    def wait(self, seconds: float) -> bool:
        return self.event.wait(seconds)

    def is_set(self) -> bool:
        return self.event.is_set()
