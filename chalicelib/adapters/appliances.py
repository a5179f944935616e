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
from typing import IO

import urllib3

from chalicelib.domain.errors import Unavailable


def appliance_port(appliance: dict, student_number: int, first: int) -> int:
    return int(appliance["port_base"]) + student_number - first


def _healthy(url: str) -> bool:
    try:
        response = urllib3.request("GET", url, timeout=2, retries=False)
    except urllib3.exceptions.HTTPError:
        return False
    return response.status < 500


class LocalAppliances:
    def __init__(self, workshops_dir: str | Path, log_dir: str | Path | None = None, host: str = "127.0.0.1"):
        self.workshops_dir, self.host = Path(workshops_dir), host
        self.log_dir = Path(log_dir) if log_dir else None
        self.running: dict[str, subprocess.Popen] = {}
        self.lock = threading.Lock()

    def url(self, student: str, port: int) -> str:
        return f"http://{self.host}:{port}"

    def start(self, workshop_id: str, student: str, appliance: dict, port: int) -> None:
        """Start it unless it already runs (a retried task must not start a second one)."""
        with self.lock:
            current = self.running.get(student)
            if current and current.poll() is None:
                return
            command = [part.replace("{python}", sys.executable).replace("{port}", str(port))
                       for part in appliance["command"]]
            log: int | IO[bytes] = subprocess.DEVNULL
            if self.log_dir:
                self.log_dir.mkdir(parents=True, exist_ok=True)
                log = open(self.log_dir / f"appliance-{student}.log", "ab")
            try:
                self.running[student] = subprocess.Popen(
                    command, cwd=self.workshops_dir / workshop_id, stdout=log, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, start_new_session=True)
            except OSError as exc:
                raise Unavailable(f"appliance of {student} did not start: {exc}") from exc

    def ready(self, student: str, appliance: dict, port: int) -> bool:
        return _healthy(self.url(student, port) + appliance.get("health_path", "/"))

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


class EcsAppliances:
    """On AWS: one ECS task per student, from the task definition ``<prefix>-<workshop>``.

    Fargate tasks in private subnets; the task learns its port from ``APPLIANCE_PORT`` and is
    reached as ``<student>.<domain>`` (a Cloud Map namespace). It is found again by its
    ``startedBy`` (the student), so a retried start or a stop needs no stored state.
    """

    def __init__(self, client_factory, cluster: str, subnets: list[str], security_groups: list[str],
                 prefix: str = "wod-appliance", domain: str = "appliances.internal"):
        self.client_factory, self.cluster, self.prefix, self.domain = client_factory, cluster, prefix, domain
        self.network = {"awsvpcConfiguration": {"subnets": subnets, "securityGroups": security_groups,
                                                "assignPublicIp": "DISABLED"}}

    def task_definition(self, workshop_id: str) -> str:
        return f"{self.prefix}-{workshop_id.lower()}"

    def _tasks(self, student: str) -> list[str]:
        """ARNs of the student's tasks that are meant to run."""
        return self.client_factory().list_tasks(cluster=self.cluster, startedBy=student,
                                                desiredStatus="RUNNING")["taskArns"]

    def url(self, student: str, port: int) -> str:
        return f"http://{student}.{self.domain}:{port}"

    def ready(self, student: str, appliance: dict, port: int) -> bool:
        return bool(self._tasks(student)) and _healthy(self.url(student, port) + appliance.get("health_path", "/"))

    def start(self, workshop_id: str, student: str, appliance: dict, port: int) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        if self._tasks(student):
            return
        try:
            response = self.client_factory().run_task(
                cluster=self.cluster, taskDefinition=self.task_definition(workshop_id), startedBy=student, count=1,
                launchType="FARGATE", networkConfiguration=self.network,
                overrides={"containerOverrides": [{"name": "appliance", "environment": [
                    {"name": "APPLIANCE_PORT", "value": str(port)}, {"name": "STUDENT", "value": student}]}]})
        except (BotoCoreError, ClientError) as exc:
            raise Unavailable(f"the appliance task of {student} did not start: {exc}") from exc
        if response.get("failures"):
            raise Unavailable(f"the appliance task of {student} did not start: {response['failures']}")

    def stop(self, student: str) -> None:
        client = self.client_factory()
        for arn in self._tasks(student):
            client.stop_task(cluster=self.cluster, task=arn, reason="workshop cleanup")

    def stop_all(self) -> None:
        """Tasks outlive this process on AWS; nothing to do at shutdown."""
