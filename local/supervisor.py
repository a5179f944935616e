"""Start, watch, restart and stop the processes of the local stack.

Each :class:`Child` is one process (``python -m local <part>``) in a session and process
group of its own, its stdout and stderr appended to ``<logs>/<name>.log``. It is ready when it
writes its JSON line to the pipe it gets in ``WOD_READY_FD`` (``local/part.py``), or, for a
server that cannot say so itself, when ``probe()`` succeeds. Children die with the supervisor
even when it is SIGKILLed (``PR_SET_PDEATHSIG``, set by the child), so the supervisor starts
them from its main thread only.

:class:`Supervisor` watches them (:meth:`Supervisor.watch_once`, called by the main loop):
a restartable child that stops is started again (with a growing pause if it keeps failing)
while the others stay watched; one that holds state the others need stops the stack, whose
exit code is then 1. Every event is printed and logged with the child's name.
"""
from __future__ import annotations

import json
import logging
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Protocol

from local.part import READY_FD, SUPERVISOR_PID

log = logging.getLogger("wod.local.supervisor")


class ChildFailed(RuntimeError):
    def __init__(self, name: str, message: str):
        super().__init__(f"{name} {message}")
        self.name = name


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


class Child:
    """One supervised process."""

    def __init__(self, name: str, command: list[str], *, log_dir: Path, env: dict[str, str] | None = None,
                 restartable: bool = True, probe: Callable[[], bool] | None = None,
                 start_timeout: float = 60.0, stop_timeout: float = 15.0, description: str = ""):
        self.name, self.command, self.restartable = name, command, restartable
        self.description = description or name
        self.log_file = log_dir / f"{name}.log"
        self.env = env
        self.probe = probe
        self.start_timeout, self.stop_timeout = start_timeout, stop_timeout
        self.proc: subprocess.Popen | None = None
        self.started_at = 0.0
        self.details: dict[str, Any] | None = None  # what it said when ready
        self._pipe: int | None = None
        self._buffer = b""
        self._last_probe = 0.0

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def spawn(self) -> None:
        """Start the process (from the main thread); :meth:`poll_ready` tells when it serves."""
        self.details, self._buffer = None, b""
        env = dict(os.environ if self.env is None else self.env)
        env[SUPERVISOR_PID] = str(os.getpid())
        pass_fds: tuple[int, ...] = ()
        read_end = write_end = None
        if self.probe is None:
            read_end, write_end = os.pipe()
            env[READY_FD] = str(write_end)
            pass_fds = (write_end,)
        else:
            env.pop(READY_FD, None)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(self.log_file, "ab") as out:
                out.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {' '.join(self.command)}\n".encode())
                out.flush()
                self.proc = subprocess.Popen(self.command, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                             stderr=subprocess.STDOUT, pass_fds=pass_fds, start_new_session=True)
        except BaseException:
            for fd in (read_end, write_end):
                if fd is not None:
                    os.close(fd)
            raise
        if write_end is not None:
            os.close(write_end)
        self._pipe = read_end
        self.started_at = time.monotonic()
        log.info("%s started, pid %s", self.name, self.proc.pid)

    def exit_code(self) -> int | None:
        """None while the process runs."""
        return None if self.proc is None else self.proc.poll()

    def poll_ready(self) -> dict[str, Any] | None:
        """Its ready message once it came (without waiting); raises ChildFailed if it cannot come."""
        if self.details is not None:
            return self.details
        if self.probe is not None:
            if time.monotonic() - self._last_probe >= 0.2:
                self._last_probe = time.monotonic()
                if self.probe():
                    self.details = {}
            return self.details
        if self._pipe is None:
            raise ChildFailed(self.name, "was not started")
        while select.select([self._pipe], [], [], 0)[0]:
            chunk = os.read(self._pipe, 65536)
            if not chunk:
                self._close_pipe()
                raise ChildFailed(self.name, "closed its ready pipe without a word")
            self._buffer += chunk
            if b"\n" in self._buffer:
                self.details = json.loads(self._buffer.split(b"\n", 1)[0] or b"{}")
                self._close_pipe()
                return self.details
        return None

    def _close_pipe(self) -> None:
        if self._pipe is not None:
            os.close(self._pipe)
            self._pipe = None

    def _signal_group(self, sig: int) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, sig)  # its session's group: the process and what it forked
        except (ProcessLookupError, PermissionError):
            pass

    def terminate(self) -> None:
        if self.exit_code() is None:
            self._signal_group(signal.SIGTERM)

    def kill_group(self) -> None:
        """SIGKILL to its group, without waiting (from any thread): the watch sees it stop."""
        self._signal_group(signal.SIGKILL)

    def kill(self) -> None:
        self._signal_group(signal.SIGKILL)
        if self.proc is not None:
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                log.error("%s (pid %s) did not die", self.name, self.proc.pid)
        self._close_pipe()

    def wait_stopped(self, deadline: float) -> int | None:
        """Wait for it to stop until ``deadline`` (monotonic), then kill what is left of its group."""
        if self.proc is None:
            return None
        try:
            code = self.proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop within %.0fs; killing it", self.name, self.stop_timeout)
            code = None
        self.kill()  # also the forks it left behind in its group
        return code

    def log_tail(self, lines: int = 15) -> str:
        return _tail(self.log_file, lines)


class Supervised(Protocol):
    """What the supervisor needs of a child (tests give fakes)."""

    name: str
    description: str
    restartable: bool
    start_timeout: float
    stop_timeout: float
    started_at: float

    def spawn(self) -> None: ...
    def exit_code(self) -> int | None: ...
    def poll_ready(self) -> dict[str, Any] | None: ...
    def kill(self) -> None: ...
    def terminate(self) -> None: ...
    def wait_stopped(self, deadline: float) -> int | None: ...


class Supervisor:
    """The running children, in start order, and what to do when one stops."""

    def __init__(self, state_dir: Path, *, out: IO[str] | None = None, err: IO[str] | None = None,
                 first_pause: float = 1.0, longest_pause: float = 30.0):
        self.state_dir = state_dir
        self.out, self.err = out, err
        self.children: list[Supervised] = []
        self.failed: str | None = None
        self.first_pause, self.longest_pause = first_pause, longest_pause
        self._state: dict[str, str] = {}  # name -> running | starting | waiting
        self._pause: dict[str, float] = {}
        self._next_try: dict[str, float] = {}
        self.restarts: dict[str, int] = {}

    def _print(self, message: str, error: bool = False) -> None:
        print(message, file=(self.err or sys.stderr) if error else (self.out or sys.stdout), flush=True)

    @property
    def pids_file(self) -> Path:
        return self.state_dir / "run" / "parts.json"

    def _write_pids(self) -> None:
        pids = {child.name: getattr(child, "pid", None) for child in self.children}
        self.pids_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.pids_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(pids))
        os.replace(tmp, self.pids_file)

    def start(self, child: Supervised, stopping: Callable[[], bool] = lambda: False) -> dict[str, Any]:
        """Start ``child`` and wait until it is ready (ChildFailed if it exits or times out
        first); it is watched from then on."""
        self.children.append(child)
        child.spawn()
        self._write_pids()
        while True:
            try:
                details = child.poll_ready()
            except ChildFailed:
                details = None
            if details is not None:
                self._state[child.name] = "running"
                return details
            code = child.exit_code()
            if code is not None:
                raise ChildFailed(child.name, f"exited with code {code} before it was ready")
            if time.monotonic() - child.started_at > child.start_timeout:
                child.kill()
                raise ChildFailed(child.name, f"was not ready within {child.start_timeout:.0f}s")
            if stopping():
                raise KeyboardInterrupt
            time.sleep(0.05)

    def running(self, name: str) -> bool:
        """Whether the child called ``name`` is up and ready (not starting, not waiting to start)."""
        return self._state.get(name, "running") == "running"

    def watch_once(self) -> bool:
        """Look at every child once; False when the stack must stop (``failed`` names why)."""
        now = time.monotonic()
        for child in self.children:
            state = self._state.get(child.name, "running")
            if state == "running":
                code = child.exit_code()
                if code is None:
                    continue
                if not child.restartable:
                    self.failed = child.name
                    log.error("%s (%s) stopped with exit code %s; stopping the stack", child.name,
                              child.description, code)
                    self._print(f"\n{child.name} ({child.description}) stopped unexpectedly (exit code {code}); "
                                f"stopping the platform (see {self.state_dir}/logs/{child.name}.log). "
                                "Its state is saved: `make run` brings it back.", error=True)
                    return False
                log.error("%s stopped with exit code %s; restarting it", child.name, code)
                self._print(f"{child.name} ({child.description}) stopped unexpectedly (exit code {code}); "
                            "restarting it ...")
                self._pause[child.name] = self.first_pause
                self._respawn(child, now)
            elif state == "starting":
                try:
                    ready = child.poll_ready()
                    problem = None if ready is not None or child.exit_code() is None else \
                        f"exited with code {child.exit_code()}"
                except ChildFailed as exc:
                    ready, problem = None, str(exc).removeprefix(child.name + " ")
                if ready is not None:
                    self._state[child.name] = "running"
                    self._pause[child.name] = self.first_pause
                    self.restarts[child.name] = self.restarts.get(child.name, 0) + 1
                    log.info("%s is back", child.name)
                    self._print(f"{child.name} is back.")
                    continue
                if problem is None and now - child.started_at > child.start_timeout:
                    problem = f"was not ready within {child.start_timeout:.0f}s"
                if problem is not None:
                    child.kill()
                    self._retry_later(child, now, problem)
            elif state == "waiting" and now >= self._next_try[child.name]:
                self._respawn(child, now)
        return True

    def _respawn(self, child: Supervised, now: float) -> None:
        try:
            child.kill()  # whatever is left of its process group
            child.spawn()
        except OSError as exc:
            self._retry_later(child, now, f"could not be started: {exc}")
            return
        self._state[child.name] = "starting"
        self._write_pids()

    def _retry_later(self, child: Supervised, now: float, problem: str) -> None:
        pause = self._pause.get(child.name, self.first_pause)
        log.error("%s %s; next try in %.0fs", child.name, problem, pause)
        self._print(f"{child.name} {problem}; next try in {pause:.0f}s")
        self._state[child.name] = "waiting"
        self._next_try[child.name] = now + pause
        self._pause[child.name] = min(pause * 2, self.longest_pause)

    def stop(self) -> None:
        """SIGTERM to every child's group, the last started first; ones that held state (not
        restartable) only once the others are gone; SIGKILL what did not stop in time."""
        children = list(reversed(self.children))
        for wave in ([c for c in children if c.restartable], [c for c in children if not c.restartable]):
            for child in wave:
                child.terminate()
            deadline = time.monotonic() + max((child.stop_timeout for child in wave), default=0.0)
            for child in wave:
                child.wait_stopped(deadline)
        if self.children:  # only what this supervisor wrote (a refused start leaves the live stack's)
            self.pids_file.unlink(missing_ok=True)
