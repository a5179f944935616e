"""Per-student appliances: a process on its own port in local mode (an ECS task on AWS).

A workshop declares ``appliance: {command, port_base, health_path}``; student N
of the range gets ``port_base + (N - from)``. ``{python}`` and ``{port}`` in the
command are replaced; the process runs in the workshop folder.
"""
from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import urllib3

from chalicelib.domain.errors import Unavailable


def appliance_port(appliance: dict, student_number: int, first: int) -> int:
    return int(appliance["port_base"]) + student_number - first


class LocalAppliances:
    def __init__(self, workshops_dir: str | Path, log_dir: str | Path | None = None, host: str = "127.0.0.1"):
        self.workshops_dir, self.host = Path(workshops_dir), host
        self.log_dir = Path(log_dir) if log_dir else None
        self.running: dict[str, subprocess.Popen] = {}
        self.lock = threading.Lock()

    def url(self, port: int) -> str:
        return f"http://{self.host}:{port}"

    def start(self, workshop_id: str, student: str, appliance: dict, port: int) -> None:
        """Start it unless it already runs (a retried task must not start a second one)."""
        with self.lock:
            current = self.running.get(student)
            if current and current.poll() is None:
                return
            command = [part.replace("{python}", sys.executable).replace("{port}", str(port))
                       for part in appliance["command"]]
            log = subprocess.DEVNULL
            if self.log_dir:
                self.log_dir.mkdir(parents=True, exist_ok=True)
                log = open(self.log_dir / f"appliance-{student}.log", "ab")  # noqa: SIM115 (owned by the child)
            try:
                self.running[student] = subprocess.Popen(
                    command, cwd=self.workshops_dir / workshop_id, stdout=log, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, start_new_session=True)
            except OSError as exc:
                raise Unavailable(f"appliance of {student} did not start: {exc}") from exc

    def healthy(self, appliance: dict, port: int) -> bool:
        try:
            response = urllib3.request("GET", self.url(port) + appliance.get("health_path", "/"), timeout=2,
                                       retries=False)
        except urllib3.exceptions.HTTPError:
            return False
        return response.status < 500

    def stop(self, student: str) -> None:
        with self.lock:
            process = self.running.pop(student, None)
        if process and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()

    def stop_all(self) -> None:
        for student in list(self.running):
            self.stop(student)
