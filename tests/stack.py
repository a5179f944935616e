"""Run the single-machine stack (``python -m local``) as a child process, for tests and benchmarks.

Not a test module. Typical use::

    root = tmp / "workshops"
    write_workshop(root, "WKSHP-E2E", seats=2, beta=True)
    with LocalStack(root, tmp / "state") as stack:
        requests.get(f"{stack.app_url}/api/workshops")
        stack.wait_for_message(lambda m: m["subject"].startswith("You're registered"), timeout=20)

Every port is picked free at start; if another process grabs one before the
child binds it, the start is retried on fresh ports.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
PORT_VARS = ("WOD_APP_PORT", "WOD_INBOX_PORT", "WOD_SMTP_PORT", "WOD_AWS_PORT", "WOD_HUB_PORT", "WOD_HUB_API_PORT",
             "WOD_HUB_PROXY_API_PORT", "WOD_WORKERS_PORT")
PARTS = ("aws", "workers", "mail", "hub", "web")  # the stack's processes (local/stack.py)
# What a part that lost the race for its port prints (Python, gunicorn, JupyterHub's check).
_PORT_CLASH = ("Address already in use", "Connection in use", "already in use")
# Inherited variables that would make the child talk to something other than itself.
_SCRUBBED_PREFIXES = ("WOD_", "AWS_ENDPOINT_URL", "AWS_PROFILE")


class StackError(RuntimeError):
    """The stack did not start (or stop) cleanly; the message carries its output and log tail."""


def free_port(host: str = HOST) -> int:
    """A TCP port that is free right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _free_ports(count: int, host: str = HOST) -> list[int]:
    """``count`` distinct free ports: all sockets are held open until every port is chosen."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _tail(path: Path, lines: int = 60) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"(cannot read {path}: {exc})"
    return "\n".join(text.splitlines()[-lines:])


class LocalStack:
    """``python -m local`` in a subprocess on free ports; a context manager.

    Attributes once started: ``app_url``, ``inbox_url``, ``aws_url``, ``ports``
    (name -> port), ``process``.
    """

    def __init__(
        self,
        workshops_dir: str | os.PathLike,
        state_dir: str | os.PathLike,
        *,
        tick_seconds: float = 60,
        start_timeout: float = 120,
        stop_timeout: float = 60,
        env: dict[str, str] | None = None,
        host: str = HOST,
        start_attempts: int = 3,
    ):
        self.workshops_dir = Path(workshops_dir).resolve()
        self.state_dir = Path(state_dir).resolve()
        self.tick_seconds = tick_seconds
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.extra_env = dict(env or {})
        self.host = host
        self.start_attempts = start_attempts
        self.process: subprocess.Popen | None = None
        self.ports: dict[str, int] = {}
        self._output_file: Path | None = None  # the child's stdout+stderr (appended across starts)
        self._output_start = 0  # where this start's output begins in it
        self._session = requests.Session()

    # -- URLs -------------------------------------------------------------------------------
    @property
    def app_url(self) -> str:
        return f"http://{self.host}:{self.ports['WOD_APP_PORT']}"

    @property
    def inbox_url(self) -> str:
        return f"http://{self.host}:{self.ports['WOD_INBOX_PORT']}"

    @property
    def aws_url(self) -> str:
        return f"http://{self.host}:{self.ports['WOD_AWS_PORT']}"

    @property
    def hub_url(self) -> str:
        return f"http://{self.host}:{self.ports['WOD_HUB_PORT']}"

    def secret(self, name: str) -> str:
        import json

        return json.loads((self.state_dir / "secrets.json").read_text())[name]

    def participant_path(self, registration_id: str, api: bool = True) -> str:
        """The path of a participant's own registration (their status page, or its API), which
        carries their action token, not the bare registration id."""
        from chalicelib.domain.links import action_token

        token = action_token(self.secret("link_key").encode(), registration_id)
        return f"/api/registrations/{token}" if api else f"/registrations/{token}"

    def registration(self, email: str) -> dict:
        """The newest registration of an address as its status API shows it (id, status, student,
        position...), found through the admin API: the registration POST answers without it."""
        response = self._session.get(f"{self.app_url}/api/admin/registrations", params={"q": email}, timeout=30,
                                     headers={"Authorization": f"Bearer {self.secret('admin_token')}"})
        response.raise_for_status()
        found = [r for r in response.json()["registrations"] if r["email"].lower() == email.lower()]
        assert found, f"no registration for {email}"
        status = self._session.get(self.app_url + self.participant_path(found[0]["id"]), timeout=30)
        status.raise_for_status()
        return status.json()

    def confirmation_link(self, email: str, timeout: float = 20) -> str:
        """The link of the newest "Confirm your seat" email to ``email``."""
        import re

        message = self.wait_for_message(lambda m: m["subject"].startswith("Confirm your seat"), timeout, to=email)
        return re.search(r"\S+/confirm/[A-Za-z0-9_.-]+", message["text"]).group(0)

    def confirm(self, email: str) -> dict:
        """Confirm a registration as its owner does (the emailed link, then its button's POST); the
        registration as its status API shows it."""
        response = self._session.post(self.confirmation_link(email), timeout=30, allow_redirects=False,
                                      headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert response.status_code == 303, response.text
        return self.registration(email)

    @property
    def log_file(self) -> Path:
        return self.state_dir / "logs" / "stack.log"

    def part_log(self, part: str) -> Path:
        return self.state_dir / "logs" / f"{part}.log"

    def part_pids(self) -> dict[str, int]:
        """The pid of each part process (``aws``, ``workers``, ``mail``, ``hub``, ``web``) right now."""
        import json

        try:
            return json.loads((self.state_dir / "run" / "parts.json").read_text())
        except (OSError, ValueError):
            return {}

    # -- diagnostics ------------------------------------------------------------------------
    def output(self) -> str:
        """Everything the current child printed so far (stdout and stderr)."""
        if self._output_file is None:
            return ""
        try:
            with open(self._output_file, "rb") as handle:
                handle.seek(self._output_start)
                return handle.read().decode("utf-8", errors="replace")
        except OSError as exc:
            return f"(cannot read {self._output_file}: {exc})"

    def diagnostics(self, lines: int = 60) -> str:
        rc = None if self.process is None else self.process.poll()
        parts = "".join(f"--- tail of {self.part_log(p)} ---\n{_tail(self.part_log(p), lines // 3)}\n"
                        for p in (*PARTS, "jupyterhub") if self.part_log(p).exists())
        return (
            f"--- python -m local (pid {getattr(self.process, 'pid', None)}, exit code {rc}, "
            f"ports {self.ports}) output ---\n{self.output()[-8000:]}\n"
            f"--- tail of {self.log_file} ---\n{_tail(self.log_file, lines)}\n{parts}"
        )

    # -- life cycle -------------------------------------------------------------------------
    def _environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED_PREFIXES)}
        env.update(
            WOD_STATE_DIR=str(self.state_dir),
            WOD_HOST=self.host,
            WOD_WORKSHOPS=str(self.workshops_dir),
            WOD_TICK_SECONDS=str(self.tick_seconds),
            WOD_RATE_LIMIT_PER_MINUTE="0",  # every test participant comes from 127.0.0.1
            WOD_CONFIRM_MINUTES="0",  # tests about email confirmation turn it on (``env``)
            PYTHONUNBUFFERED="1",
            PYTHONIOENCODING="utf-8",
            **{name: str(port) for name, port in self.ports.items()},
        )
        env.update(self.extra_env)
        return env

    def _spawn(self) -> None:
        self.ports = dict(zip(PORT_VARS, _free_ports(len(PORT_VARS), self.host), strict=True))
        # Appending, so reading it while the child writes never moves the child's offset.
        self._output_file = self.state_dir / "python-m-local.out"
        with open(self._output_file, "ab") as out:
            self._output_start = out.tell()
            out.write(f"=== python -m local, ports {self.ports} ===\n".encode())
            out.flush()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "local"],
                cwd=ROOT,
                env=self._environment(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C in the terminal stops us; we stop the child
            )

    def _wait_ready(self) -> bool:
        """True once the API answers; False if the child died of a port clash (retryable)."""
        deadline = time.monotonic() + self.start_timeout
        url = f"{self.app_url}/api/workshops"
        last_error = "no attempt yet"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                if any(clash in self.output() for clash in _PORT_CLASH):
                    return False
                raise StackError(f"python -m local exited with code {self.process.returncode} "
                                 f"before it was ready\n{self.diagnostics()}")
            try:
                response = self._session.get(url, timeout=5)
                if response.status_code == 200 and "Ready." in self.output():
                    inbox = self._session.get(f"{self.inbox_url}/api/messages", timeout=5)
                    if inbox.status_code == 200:
                        return True
                last_error = f"GET {url} -> {response.status_code}"
            except requests.RequestException as exc:
                last_error = f"GET {url}: {type(exc).__name__}"
            time.sleep(0.2)
        raise StackError(f"python -m local was not ready within {self.start_timeout:.0f}s "
                         f"({last_error})\n{self.diagnostics()}")

    def start(self) -> LocalStack:
        if self.process is not None:
            raise StackError("already started")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        for _ in range(1, self.start_attempts + 1):
            self._spawn()
            try:
                if self._wait_ready():
                    return self
            except BaseException:
                self._terminate()
                raise
            # A port was taken between picking and binding: try again on fresh ports.
            failed = self.diagnostics()
            self._terminate()
            self.process = None
        raise StackError(f"python -m local could not bind its ports in {self.start_attempts} attempts\n{failed}")

    def _terminate(self) -> int | None:
        """SIGTERM, wait, then SIGKILL; returns the exit code (None if it had to be killed)."""
        proc = self.process
        if proc is None:
            return None
        if proc.poll() is not None:
            return proc.returncode
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(self.stop_timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
            return None

    def stop(self) -> None:
        """Stop the child; raise :class:`StackError` if it had to be killed or failed."""
        if self.process is None:
            return
        try:
            already_dead = self.process.poll() is not None
            rc = self._terminate()
            if already_dead:
                raise StackError(f"python -m local died while in use (exit code {rc})\n{self.diagnostics()}")
            if rc is None:
                raise StackError(f"python -m local ignored SIGTERM for {self.stop_timeout:.0f}s and was killed\n"
                                 f"{self.diagnostics()}")
            if rc != 0:
                raise StackError(f"python -m local stopped with exit code {rc}\n{self.diagnostics()}")
        finally:
            self._session.close()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.stop()
            return
        # Already failing: stop without masking the error, and attach the stack's side of it.
        try:
            self.stop()
            stopped = "stopped cleanly"
        except StackError as stop_error:
            stopped = str(stop_error).splitlines()[0]
        if isinstance(exc, Exception) and not isinstance(exc, StackError):
            exc.add_note(f"[LocalStack {stopped}]\n{self.diagnostics(40)}")

    def assert_alive(self) -> None:
        if self.process is None or self.process.poll() is not None:
            raise StackError(f"python -m local is not running\n{self.diagnostics()}")

    # -- mail -------------------------------------------------------------------------------
    def messages(self, to: str | None = None) -> list[dict]:
        """Inbox messages, newest first; only those to ``to`` when given."""
        params = {"to": to} if to else None
        response = self._session.get(f"{self.inbox_url}/api/messages", params=params, timeout=10)
        response.raise_for_status()
        return response.json()

    def wait_for_message(self, predicate: Callable[[dict], bool], timeout: float = 20,
                         to: str | None = None) -> dict:
        """The newest message for which ``predicate`` is true; polls until ``timeout``."""
        deadline = time.monotonic() + timeout
        seen: Iterable[dict] = []
        while True:
            seen = self.messages(to)
            for message in seen:
                if predicate(message):
                    return message
            if time.monotonic() >= deadline:
                break
            self.assert_alive()
            time.sleep(0.2)
        summary = "\n".join(f"  {m['to']} {m['subject']!r}" for m in seen) or "  (none)"
        raise StackError(f"no matching message within {timeout:.0f}s; the inbox has:\n{summary}\n{self.diagnostics()}")
