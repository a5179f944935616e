"""Processes a dead local stack left behind, found and stopped before a new one starts.

A stack killed with SIGKILL (or whose supervisor died some other way) leaves running what it
started in sessions of their own: JupyterHub and its configurable-http-proxy, the students'
single-user servers (and their kernels), the workshops' appliances. They hold ports and memory,
and the servers keep sessions no registration backs any more. :func:`stop_orphans` finds those
of one state directory and stops them (SIGTERM, then SIGKILL after a grace):

* JupyterHub and its proxy: their environment names this state's hub directory
  (``WOD_HUB_STATE_DIR``, set by ``local/hub.py``; the proxy inherits it from the hub).
* single-user servers: the pids the hub's database (``hub/jupyterhub.sqlite``) records for its
  servers, when the process there is a ``jupyterhub-singleuser`` (or ``jupyter-labhub``) of that
  very user (``JUPYTERHUB_USER``) and no other stack's hub is its parent; and any such server
  below a stale hub of this state.
* appliances: their environment names this state's secrets file (``WOD_SECRETS_FILE``: the
  stack sets it for everything it starts), they run in a folder of the workshops directory,
  and their command line is that workshop's ``appliance.command``.

Each one's descendants (kernels, terminals) go with it. Never touched: the caller and its
descendants (the live stack's own processes), a process below a live process of a stack of
this state (one that holds no lock), and anything at all when another live process holds the
state directory.

:func:`stop_left_behind` is for a part of a live stack that was started again: what its dead
predecessor left and nobody manages is stopped, and nothing else of the stack (the workers: the
appliances, before those of the active participants are started again; the hub: the idle culler
of a killed JupyterHub).

**The lock**: ``<state>/stack.pid``, held with ``fcntl.flock`` by the live supervisor
(:func:`claim`) and holding its pid. The kernel releases it when that process dies, however it
dies, so a held lock means a live stack. :func:`stop_orphans` claims it first (the caller
becomes the state directory's live stack) and raises :class:`StackRunning` if another process
holds it. The descriptor is not inherited across exec, and a forked child closes its copy, so
processes the stack starts never keep the lock alive after the supervisor is gone.
"""
from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import re
import signal
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import yaml

from local.hub import _descendants, _kill, _start_time

log = logging.getLogger("wod.local.orphans")

LOCK_NAME = "stack.pid"
GRACE_SECONDS = 10.0
SINGLE_USER = ("jupyterhub-singleuser", "jupyter-labhub")


class StackRunning(OSError):
    """Another live process holds the state directory: a stack runs there."""


# ---- the lock ------------------------------------------------------------------------------
_held: dict[Path, int] = {}  # lock file -> descriptor, for this process's life


def _forget_in_child() -> None:
    """A forked child must not keep the supervisor's lock alive after the supervisor dies."""
    for fd in _held.values():
        try:
            os.close(fd)
        except OSError:
            pass
    _held.clear()


os.register_at_fork(after_in_child=_forget_in_child)


def lock_file(state_dir: os.PathLike | str) -> Path:
    return Path(state_dir).resolve() / LOCK_NAME


def holder(state_dir: os.PathLike | str) -> int | None:
    """The pid written in the lock file (whether or not it is still held)."""
    try:
        return int(lock_file(state_dir).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _locked(state_dir: os.PathLike | str) -> bool:
    """Whether some live process holds the lock (this one included)."""
    path = lock_file(state_dir)
    if path in _held:
        return True
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # also lets go of the shared lock just taken
    return False


def claim(state_dir: os.PathLike | str) -> Path:
    """Hold ``<state_dir>/stack.pid`` for the rest of this process's life (again: no-op).

    Raises :class:`StackRunning` when another live process holds it."""
    path = lock_file(state_dir)
    if path in _held:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise
        raise StackRunning(errno.EBUSY, f"a stack (pid {holder(state_dir) or '?'}) already runs on "
                                        f"{path.parent}") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    _held[path] = fd
    return path


def release(state_dir: os.PathLike | str) -> None:
    """Let go of the lock before this process ends (tests; a stack's exit does it anyway)."""
    fd = _held.pop(lock_file(state_dir), None)
    if fd is not None:
        os.close(fd)


# ---- processes -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Found:
    pid: int
    started: str
    what: str
    kind: str  # hub | proxy | single-user | appliance

    def __str__(self) -> str:
        return f"{self.what} (pid {self.pid})"


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return None


def _argv(pid: int) -> list[str]:
    raw = _read(f"/proc/{pid}/cmdline") or b""
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _environ(pid: int) -> dict[str, str]:
    raw = _read(f"/proc/{pid}/environ") or b""
    pairs = (part.decode(errors="replace").partition("=") for part in raw.split(b"\0") if part)
    return {name: value for name, _, value in pairs}


def _cwd(pid: int) -> Path | None:
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return None


def _parent(pid: int) -> int | None:
    raw = _read(f"/proc/{pid}/stat")
    try:
        return int(raw.decode().rsplit(")", 1)[1].split()[1]) if raw else None
    except (ValueError, IndexError):
        return None


def _alive(pid: int, started: str) -> bool:
    """Still this very process (same start time), and not a zombie waiting for its parent."""
    raw = _read(f"/proc/{pid}/stat")
    if raw is None:
        return False
    fields = raw.decode().rsplit(")", 1)[1].split()
    return fields[19] == started and fields[0] not in ("Z", "X")


def _pids() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def _same(value: str | None, path: Path) -> bool:
    return value is not None and value != "" and Path(value).resolve() == path


PARTS = ("aws", "workers", "mail", "hub", "web")


def _kind(argv: list[str]) -> str | None:
    """What a command line runs, among what a stack starts: its parts, and under the hub."""
    names = [Path(arg).name for arg in argv[:2]]
    if any(name in SINGLE_USER for name in names):
        return "single-user"
    if "configurable-http-proxy" in names:
        return "proxy"
    if "jupyterhub" in names:
        return "hub"
    if any(argv[i:i + 2] == ["-m", "jupyterhub_idle_culler"] for i in range(len(argv) - 1)):
        return "culler"
    if any(argv[i:i + 3] == ["-m", "local", part] for i in range(len(argv) - 2) for part in PARTS):
        return "part"
    return None


def _stack_of(pid: int) -> Path | None:
    """The state directory of a ``python -m local`` process (its WOD_STATE_DIR, else .wod in its
    working directory, as local/config.py reads it), or of a process the stack started (its
    WOD_SECRETS_FILE); None for anything else. /proc shows the environment a process started
    with, which is what the stack's children inherit."""
    argv, env = _argv(pid), _environ(pid)
    if env.get("WOD_SECRETS_FILE"):
        return Path(env["WOD_SECRETS_FILE"]).resolve().parent
    if any(argv[i:i + 2] == ["-m", "local"] for i in range(len(argv) - 1)):
        cwd = _cwd(pid) or Path("/")
        return (cwd / env.get("WOD_STATE_DIR", ".wod")).resolve()
    return None


def _under_live_stack(pid: int, state: Path, candidates: set[int]) -> bool:
    """Whether an ancestor of ``pid`` (other than init and the candidates themselves) is a live
    process of a stack of this state: then ``pid`` is that stack's, not an orphan (a stack that
    holds no lock, or whose lock was taken by someone else)."""
    parent = _parent(pid)
    for _ in range(64):  # deeper than any real process tree
        if parent is None or parent <= 1:
            return False
        if parent not in candidates and _stack_of(parent) == state:
            return True
        parent = _parent(parent)
    return False


def _hub_servers(hub_dir: Path) -> dict[int, str]:
    """pid -> user name of every server the hub's database says it started."""
    database = hub_dir / "jupyterhub.sqlite"
    if not database.exists():
        return {}
    try:
        with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)) as db:
            rows = db.execute("SELECT users.name, spawners.state FROM spawners "
                              "JOIN users ON users.id = spawners.user_id").fetchall()
    except sqlite3.Error as exc:
        log.warning("cannot read %s: %s", database, exc)
        return {}
    servers = {}
    for name, state in rows:
        try:
            pid = json.loads(state or "{}").get("pid")
        except (ValueError, AttributeError):
            continue
        if isinstance(pid, int) and pid > 0:
            servers[pid] = name
    return servers


def _appliance_pattern(folder: Path) -> re.Pattern[str] | None:
    """The command line a workshop folder's appliance runs as (``{python}``, ``{port}`` filled in)."""
    try:
        spec = yaml.safe_load((folder / "workshop.yaml").read_text())
        command = spec["appliance"]["command"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return None
    if not isinstance(command, list) or not command:
        return None
    parts = [re.escape(str(part)).replace(r"\{python\}", ".+").replace(r"\{port\}", r"\d+") for part in command]
    return re.compile("\0".join(parts))


def _tree(owner: int) -> set[int]:
    return {owner} | {pid for pid, _ in _descendants(owner)}


def find_orphans(state_dir: os.PathLike | str, owner: int | None = None) -> list[Found]:
    """What a dead stack of ``state_dir`` left running; never ``owner`` (the live stack's
    supervisor; by default the caller) or its descendants."""
    state = Path(state_dir).resolve()
    hub_dir, secrets = state / "hub", state / "secrets.json"
    ours = _tree(os.getpid() if owner is None else owner)
    servers = _hub_servers(hub_dir)
    patterns: dict[Path, re.Pattern[str] | None] = {}
    found: dict[int, Found] = {}
    other_hubs: set[int] = set()
    single_user: list[tuple[int, str]] = []  # pid, start time

    for pid in _pids():
        if pid in ours:
            continue
        argv = _argv(pid)
        started = _start_time(pid)
        if not argv or started is None:
            continue
        kind = _kind(argv)
        if kind == "single-user":
            single_user.append((pid, started))
            continue
        env = _environ(pid)
        if kind == "part":  # a part of a dead stack of this state, still running (its supervisor is gone)
            if _stack_of(pid) == state:
                found[pid] = Found(pid, started, f"{' '.join(argv[-2:])} part of a stopped stack", kind)
            continue
        if kind == "culler":  # the hub's idle culler, left when its JupyterHub was killed
            if _cwd(pid) == hub_dir:
                found[pid] = Found(pid, started, "idle culler of a stopped JupyterHub", kind)
            continue
        if kind in ("hub", "proxy"):
            if _same(env.get("WOD_HUB_STATE_DIR"), hub_dir):
                what = "JupyterHub" if kind == "hub" else "configurable-http-proxy"
                found[pid] = Found(pid, started, f"{what} of a stopped stack", kind)
            elif kind == "hub":
                other_hubs.add(pid)
            continue
        if not _same(env.get("WOD_SECRETS_FILE"), secrets):
            continue
        cwd, workshops = _cwd(pid), env.get("WOD_WORKSHOPS_DIR")
        if cwd is None or not workshops or cwd.parent != Path(workshops).resolve():
            continue
        if cwd not in patterns:
            patterns[cwd] = _appliance_pattern(cwd)
        pattern = patterns[cwd]
        if pattern is not None and pattern.fullmatch("\0".join(argv)):
            found[pid] = Found(pid, started, f"appliance of {cwd.name}: {' '.join(argv[1:])[-60:]}", "appliance")

    stale_hubs = [pid for pid, f in found.items() if f.kind == "hub"]
    below_stale = {pid for hub in stale_hubs for pid, _ in _descendants(hub)}
    for pid, started in single_user:
        user = _environ(pid).get("JUPYTERHUB_USER", "")
        if pid in below_stale or (user and servers.get(pid) == user and _parent(pid) not in other_hubs):
            found[pid] = Found(pid, started, f"single-user server of {user or '?'}", "single-user")
    candidates = set(found)
    for pid in list(found):
        if _under_live_stack(pid, state, candidates):
            del found[pid]
    return sorted(found.values(), key=lambda f: f.pid)


def _stop(roots: list[Found], ours: set[int], grace: float) -> list[str]:
    """SIGTERM each root, SIGKILL whatever of them and their descendants still runs after ``grace``."""
    if not roots:
        return []
    everything = {f.pid: f.started for f in roots}
    for root in roots:  # kernels, terminals: they go with their server
        everything.update({pid: started for pid, started in _descendants(root.pid) if pid not in ours})
    for root in roots:
        log.warning("stopping %s left by a stack that died", root)
        _kill(root.pid, root.started, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_alive(pid, started) for pid, started in everything.items()):
        time.sleep(0.1)
    for pid, started in everything.items():
        if _alive(pid, started):
            log.warning("pid %s did not stop within %ss: killing it", pid, grace)
            _kill(pid, started, signal.SIGKILL)
    children = len(everything) - len(roots)
    return [str(root) for root in roots] + ([f"{children} child process(es) of those"] if children else [])


def stop_orphans(state_dir: os.PathLike | str, grace: float = GRACE_SECONDS) -> list[str]:
    """Claim ``state_dir`` for this process, then stop what a dead stack of it left running:
    SIGTERM, and SIGKILL for whatever still runs after ``grace`` seconds. Returns what was
    stopped. Raises :class:`StackRunning` if a live stack holds the state directory."""
    claim(state_dir)
    return _stop(find_orphans(state_dir), _tree(os.getpid()), grace)


def stop_left_behind(state_dir: os.PathLike | str, grace: float = GRACE_SECONDS,
                     kinds: tuple[str, ...] = ("appliance",)) -> list[str]:
    """For a part of a live stack that was started again: stop what of ``kinds`` its dead
    predecessor left, which no one manages any more (the workers: appliances, before starting
    those of the active participants again; the hub: the idle culler of a killed JupyterHub).
    Only when this process's parent is the stack that holds ``state_dir``; nothing of that
    stack's other processes is touched."""
    supervisor = os.getppid()
    if holder(state_dir) != supervisor or not _locked(state_dir):
        return []
    roots = [f for f in find_orphans(state_dir, owner=supervisor) if f.kind in kinds]
    return _stop(roots, _tree(supervisor), grace)
