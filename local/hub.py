"""JupyterHub for the single-machine platform, as a subprocess of the hub venv (.venv-hub).

    hub = Hub(state_dir=..., log_file=..., token=..., aws_endpoint=...).start()
    ... hub.url, hub.api_url ...
    hub.stop()   # the hub, its configurable-http-proxy and every student server / kernel

The hub runs ``.venv-hub/bin/jupyterhub -f infra/jupyterhub/jupyterhub_config.py`` in its own
session, with ``node_modules/.bin`` on PATH for configurable-http-proxy. Configuration goes
through WOD_HUB_* variables (see the config file). Its idle culler (a child of the hub, stopped
with it) reads WOD_IDLE_MINUTES and WOD_IDLE_CHECK_SECONDS from this process's environment or
``env=`` (infra/jupyterhub/idle_culler.py).
"""
from __future__ import annotations

import importlib.util
import logging
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HUB_VENV = ROOT / ".venv-hub"
HUB_CONFIG = ROOT / "infra" / "jupyterhub" / "jupyterhub_config.py"
NODE_BIN = ROOT / "node_modules" / ".bin"

log = logging.getLogger("wod.local.hub")


class HubNotInstalled(FileNotFoundError):
    """.venv-hub or configurable-http-proxy is missing."""


def _start_time(pid: int) -> str | None:
    """Field 22 of /proc/<pid>/stat: tells a process apart from a later one with the same pid."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()[19]


def _descendants(root: int) -> list[tuple[int, str]]:
    """(pid, start time) of every live descendant of ``root`` (Linux /proc scan)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], list(children.get(root, []))
    while todo:
        pid = todo.pop()
        started = _start_time(pid)
        if started is not None:
            found.append((pid, started))
        todo.extend(children.get(pid, []))
    return found


def _kill(pid: int, started: str | None, sig: int) -> None:
    if started is not None and _start_time(pid) != started:
        return  # gone, or the pid now belongs to someone else
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def hub_module(name: str) -> Any:
    """A module of ``infra/jupyterhub/`` (the hub's own, not a package of ours)."""
    spec = importlib.util.spec_from_file_location(f"wod_{name}", HUB_CONFIG.parent / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def student_firewall() -> Any:
    return hub_module("student_firewall")


class Hub:
    def __init__(self, *, state_dir: os.PathLike | str, log_file: os.PathLike | str, token: str,
                 port: int = 8001, api_port: int = 8081, proxy_api_port: int = 8002,
                 aws_endpoint: str | None = None, students_table: str = "wod-students",
                 spawner: str = "isolated", region: str | None = None,
                 env: Mapping[str, str] | None = None, host: str = "127.0.0.1"):
        self.state_dir = Path(state_dir).resolve()
        self.log_file = Path(log_file)
        self.token = token
        self.host, self.port, self.api_port, self.proxy_api_port = host, port, api_port, proxy_api_port
        self.aws_endpoint, self.students_table = aws_endpoint, students_table
        self.spawner, self.region = spawner, region
        self.extra_env = dict(env or {})
        self.proc: subprocess.Popen | None = None

    # ---- addresses ---------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/hub/api"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # ---- lifecycle ---------------------------------------------------------------------
    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "PATH": os.pathsep.join([str(HUB_VENV / "bin"), str(NODE_BIN), env.get("PATH", "/usr/bin:/bin")]),
            "WOD_HUB_PORT": str(self.port),
            "WOD_HUB_API_PORT": str(self.api_port),
            "WOD_HUB_PROXY_API_PORT": str(self.proxy_api_port),
            "WOD_HUB_STATE_DIR": str(self.state_dir),
            "WOD_HUB_TOKEN": self.token,
            "WOD_HUB_SPAWNER": self.spawner,
            "WOD_STUDENTS_TABLE": self.students_table,
        })
        if self.aws_endpoint:
            env["WOD_AWS_ENDPOINT"] = self.aws_endpoint
        if self.region:
            env["AWS_DEFAULT_REGION"] = self.region
        env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
        env.pop("VIRTUAL_ENV", None)
        env.pop("PYTHONPATH", None)  # the platform's paths mean nothing to the hub venv
        env.update(self.extra_env)
        return env

    def _check_installed(self) -> Path:
        jupyterhub = HUB_VENV / "bin" / "jupyterhub"
        if not jupyterhub.exists():
            raise HubNotInstalled(f"{jupyterhub} is missing: create the hub venv "
                                  f"(/usr/bin/python3.11 -m venv .venv-hub && .venv-hub/bin/pip install "
                                  f"-r infra/jupyterhub/requirements.txt)")
        if not (NODE_BIN / "configurable-http-proxy").exists() and "WOD_HUB_PROXY_CMD" not in self.extra_env:
            raise HubNotInstalled(f"{NODE_BIN / 'configurable-http-proxy'} is missing: run npm install")
        return jupyterhub

    def _port_busy(self, port: int) -> bool:
        with socket.socket() as sock:
            sock.settimeout(0.5)
            return sock.connect_ex((self.host, port)) == 0

    def _log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "hub.pid"

    def _kill_stale_proxy(self) -> None:
        """A proxy left behind by a hub that died holds the public port."""
        try:
            pid = int((self.state_dir / "proxy.pid").read_text().strip())
            if b"configurable-http-proxy" in Path(f"/proc/{pid}/cmdline").read_bytes():
                _kill(pid, None, signal.SIGKILL)
                time.sleep(0.3)
        except (OSError, ValueError):
            pass

    def _reap_stale(self) -> None:
        """A hub left running by a stack that was killed (SIGKILL, power loss), or the proxy
        of a hub that died, holds the ports and the state: stop them before starting again."""
        self._kill_stale_proxy()
        try:
            pid, started = self.pid_file.read_text().split()
        except (OSError, ValueError):
            return
        if _start_time(int(pid)) != started:
            return  # gone, or the pid is someone else's now
        log.warning("stopping JupyterHub pid %s left by an earlier run", pid)
        for child, child_started in _descendants(int(pid)):
            _kill(child, child_started, signal.SIGKILL)
        _kill(int(pid), started, signal.SIGKILL)
        time.sleep(0.5)
        self._remove_empty_groups()

    def _remove_empty_groups(self) -> None:
        """The students' cgroups a killed hub left, once nothing runs in them."""
        try:
            hub_id = (self.state_dir / "hub_id").read_text().strip()
        except OSError:
            return
        if self.spawner == "isolated" and os.geteuid() == 0:
            removed = hub_module("student_cgroups").StudentGroups(hub_id).remove_empty()
            if removed:
                log.info("removed the empty cgroups of %s", ", ".join(removed))

    def start(self, timeout: float = 60) -> Hub:
        if self.running:
            return self
        jupyterhub = self._check_installed()
        self._reap_stale()
        busy = [p for p in (self.port, self.api_port, self.proxy_api_port) if self._port_busy(p)]
        if busy:
            raise RuntimeError(f"cannot start JupyterHub: port(s) {busy} already in use on {self.host}")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.state_dir, 0o700)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as out:
            self.proc = subprocess.Popen(
                [str(jupyterhub), "-f", str(HUB_CONFIG)], cwd=self.state_dir, env=self.environment(),
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.pid_file.write_text(f"{self.proc.pid} {_start_time(self.proc.pid)}")
        log.info("JupyterHub pid %s starting on %s (log %s)", self.proc.pid, self.url, self.log_file)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.stop()
                raise RuntimeError(f"JupyterHub exited with {code} while starting:\n{self._log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.api_url}/", timeout=2) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"JupyterHub did not answer on {self.api_url}/ within {timeout}s:\n"
                                   f"{self._log_tail()}")
            time.sleep(0.2)

    def stop(self, timeout: float = 20) -> None:
        """Stop the hub gracefully (it stops the student servers and the proxy), then kill
        whatever of its process tree is left: the proxy and the servers run in sessions of
        their own, so a process-group kill alone would miss them."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        tree = _descendants(proc.pid) if proc.poll() is None else []
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)  # the hub is its session's (and group's) leader
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("JupyterHub did not stop within %ss, killing it", timeout)
        tree += [d for d in _descendants(proc.pid) if d not in tree] if proc.poll() is None else []
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        for pid, started in tree:
            _kill(pid, started, signal.SIGKILL)
        self._kill_stale_proxy()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        if self.spawner == "isolated" and os.geteuid() == 0:
            firewall = student_firewall()
            firewall.remove(firewall.chain_for(self.proxy_api_port))
        self._remove_empty_groups()

    def __enter__(self) -> Hub:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
