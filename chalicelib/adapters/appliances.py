"""Per-student appliances: a process on its own port in local mode (an ECS task on AWS).

A workshop declares ``appliance: {command, port_base, health_path}``; student N
of the range gets ``port_base + (N - from)``. ``{python}`` and ``{port}`` in the
command are replaced; the process runs in the workshop folder.

Each appliance has a token of its own, random, made when it starts: the appliance finds it in
``APPLIANCE_TOKEN`` (its environment, which only its owner and root can read; never its command
line, which every local user can), the student's notebooks as ``{{ appliance_token }}``. Run as
students, an appliance counts as ready only when its port is served by its student's user alone.

It is then the platform's process outside the student's cgroups, so the
student must not be able to run code in it: its primary group is ``wod-appliances``, not the
student's (the kernel lets a process trace, or read the memory of, another only when their uids
and gids all match), and it loads nothing from the student's home (``PYTHONNOUSERSITE``).
"""
from __future__ import annotations

import grp
import json
import os
import pwd
import secrets
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Protocol

import urllib3

from chalicelib.domain.errors import Unavailable

TOKEN_VARIABLE = "APPLIANCE_TOKEN"
# What the local stack finds a dead stack's appliances by (local/orphans.py); paths, no secret.
MARKS = ("WOD_SECRETS_FILE", "WOD_WORKSHOPS_DIR")
APPLIANCES_GROUP = "wod-appliances"  # the primary group of appliances run as students


def appliance_port(appliance: dict, student_number: int, first: int) -> int:
    return int(appliance["port_base"]) + student_number - first


def new_token() -> str:
    return secrets.token_urlsafe(24)


def _healthy(url: str) -> bool:
    try:
        response = urllib3.request("GET", url, timeout=2, retries=False)
    except urllib3.exceptions.HTTPError:
        return False
    return response.status < 500


def listeners(port: int, tables: tuple[str, ...] = ("/proc/net/tcp", "/proc/net/tcp6")) -> list[tuple[int, str]]:
    """(user, socket inode) of every socket listening on TCP ``port`` (any address), as the kernel lists them."""
    found = []
    for table in tables:
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rpartition(":")[2], 16) == port:
                found.append((int(fields[7]), fields[9]))
    return found


def listener_uids(port: int, tables: tuple[str, ...] = ("/proc/net/tcp", "/proc/net/tcp6")) -> set[int]:
    """The users whose sockets listen on TCP ``port`` (any address)."""
    return {uid for uid, _ in listeners(port, tables)}


class Fence(Protocol):
    """Who may connect to an appliance's port: its student (and the platform) alone."""

    def allow_only(self, port: int, uid: int) -> None: ...

    def remove(self, port: int) -> None: ...

    def clear(self) -> None: ...


class LocalAppliances:
    """Appliances as child processes of this one.

    ``run_as_students``: each runs as its student's Linux user (uid, gid, groups, home), which must
    exist (the hub creates it with the hub user), with ``python`` (an interpreter students may run)
    for ``{python}``; ``fence`` keeps the other students off its port. ``state_dir`` (0700) keeps
    each running appliance's token and port, so an appliance started again (the stack restarted)
    keeps the token its student's notebooks carry; stopping an appliance forgets them.
    """

    def __init__(self, workshops_dir: str | Path, log_dir: str | Path | None = None, host: str = "127.0.0.1", *,
                 state_dir: str | Path | None = None, run_as_students: bool = False, python: str | None = None,
                 fence: Fence | None = None):
        self.workshops_dir, self.host = Path(workshops_dir), host
        self.log_dir = Path(log_dir) if log_dir else None
        self.state_dir = Path(state_dir) if state_dir else None
        self.run_as_students, self.python, self.fence = run_as_students, python or sys.executable, fence
        self.running: dict[str, subprocess.Popen] = {}
        self.kept: dict[str, dict] = {}  # student -> {"token", "port"} (and on disk with a state_dir)
        self.lock = threading.Lock()

    def url(self, student: str, port: int) -> str:
        return f"http://{self.host}:{port}"

    # ---- token and port, kept while the appliance runs -----------------------------------------
    def _file(self, student: str) -> Path | None:
        return self.state_dir / f"{student}.json" if self.state_dir else None

    def _kept(self, student: str) -> dict | None:
        if student not in self.kept and (path := self._file(student)) and path.exists():
            try:
                self.kept[student] = json.loads(path.read_text())
            except (OSError, ValueError):
                return None
        return self.kept.get(student)

    def _keep(self, student: str, token: str, port: int) -> None:
        self.kept[student] = {"token": token, "port": port}
        path = self._file(student)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)
        fd = os.open(path.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(self.kept[student], handle)
        os.replace(path.with_suffix(".tmp"), path)

    def _forget(self, student: str) -> dict | None:
        kept = self._kept(student)
        self.kept.pop(student, None)
        if (path := self._file(student)) is not None:
            path.unlink(missing_ok=True)
        return kept

    def token(self, student: str) -> str:
        """The token of the student's appliance (what their notebooks are rendered with)."""
        with self.lock:
            kept = self._kept(student)
        if not kept:
            raise Unavailable(f"the appliance of {student} has not been started")
        return str(kept["token"])

    # ---- processes -------------------------------------------------------------------------------
    def _account(self, student: str) -> pwd.struct_passwd:
        try:
            return pwd.getpwnam(student)
        except KeyError as exc:
            raise Unavailable(f"the appliance of {student} cannot start: there is no Linux user {student}") from exc

    def _environment(self, student: str, port: int, token: str, home: str) -> dict[str, str]:
        """Nothing of the platform's environment but the marks its orphans are found by."""
        env = {name: os.environ[name] for name in (*MARKS, "LANG", "LC_ALL") if name in os.environ}
        return env | {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": home, "USER": student, "LOGNAME": student,
                      "STUDENT": student, "APPLIANCE_PORT": str(port), TOKEN_VARIABLE: token,
                      "PYTHONNOUSERSITE": "1"}  # no module or .pth file of the student's home

    @staticmethod
    def _group() -> int:
        """The appliances' primary group (made if missing): a student's processes, in the student's
        group, cannot trace the appliance nor read its memory."""
        try:
            return grp.getgrnam(APPLIANCES_GROUP).gr_gid
        except KeyError:
            done = subprocess.run(["groupadd", "-f", "--system", APPLIANCES_GROUP], capture_output=True, text=True)
            if done.returncode:
                raise Unavailable(f"no group {APPLIANCES_GROUP} for the appliances: {done.stderr.strip()}") from None
            return grp.getgrnam(APPLIANCES_GROUP).gr_gid

    def start(self, workshop_id: str, student: str, appliance: dict, port: int) -> None:
        """Start it unless it already runs (a retried task must not start a second one)."""
        with self.lock:
            current = self.running.get(student)
            if current and current.poll() is None:
                return
            kept = self._kept(student)
            token = str(kept["token"]) if kept and kept.get("port") == port else new_token()
            self._keep(student, token, port)
            command = [part.replace("{python}", self.python).replace("{port}", str(port))
                       for part in appliance["command"]]
            identity: dict = {}
            home = os.path.expanduser("~")
            if self.run_as_students:
                account = self._account(student)
                home = account.pw_dir
                identity = {"user": account.pw_uid, "group": self._group(),
                            "extra_groups": os.getgrouplist(student, account.pw_gid), "umask": 0o077}
                if listener_uids(port) - {account.pw_uid}:
                    raise Unavailable(f"the appliance port {port} of {student} is taken by another user")
            if self.fence is not None:
                try:
                    self.fence.allow_only(port, identity.get("user", os.getuid()))
                except (OSError, RuntimeError) as exc:
                    raise Unavailable(f"the appliance port of {student} could not be fenced: {exc}") from exc
            log: int | IO[bytes] = subprocess.DEVNULL
            if self.log_dir:
                self.log_dir.mkdir(parents=True, exist_ok=True)
                log = open(self.log_dir / f"appliance-{student}.log", "ab")
            try:
                self.running[student] = subprocess.Popen(
                    command, cwd=self.workshops_dir / workshop_id, stdout=log, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, start_new_session=True,
                    env=self._environment(student, port, token, home), **identity)
            except OSError as exc:
                raise Unavailable(f"appliance of {student} did not start: {exc}") from exc
            finally:
                if not isinstance(log, int):
                    log.close()

    def ready(self, student: str, appliance: dict, port: int) -> bool:
        """Healthy, and (as students) served by the student's own user alone: any local user may
        listen on a free port, and a squatter would receive the student's token and requests.
        An appliance that exited is reported (Unavailable, with its log's last line), not waited for."""
        with self.lock:
            process = self.running.get(student)
        if process is not None and process.poll() is not None:
            raise Unavailable(f"the appliance of {student} exited with code {process.returncode}: "
                              f"{self._last_words(student)}")
        if self.run_as_students and listener_uids(port) != {self._account(student).pw_uid}:
            return False
        return _healthy(self.url(student, port) + appliance.get("health_path", "/"))

    def _last_words(self, student: str) -> str:
        if self.log_dir is None:
            return "no log"
        try:
            lines = (self.log_dir / f"appliance-{student}.log").read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no log"
        return lines[-1][-300:] if lines else "nothing logged"

    def _end(self, student: str) -> None:
        with self.lock:
            process = self.running.pop(student, None)
        if process and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()

    def stop(self, student: str) -> None:
        """Stop it, unfence its port and forget its token: the seat's next holder gets new ones."""
        self._end(student)
        with self.lock:
            kept = self._forget(student)
        if kept and self.fence is not None:
            try:
                self.fence.remove(int(kept["port"]))
            except (OSError, RuntimeError) as exc:
                raise Unavailable(f"the appliance port of {student} could not be unfenced: {exc}") from exc

    def stop_all(self) -> None:
        """At shutdown: every appliance stops and the fence goes; the tokens stay on disk for the
        appliances the next start brings back."""
        for student in list(self.running):
            self._end(student)
        if self.fence is not None:
            self.fence.clear()


class EcsAppliances:
    """On AWS: one ECS task per student, from the task definition ``<prefix>-<workshop>``.

    Fargate tasks in private subnets; the task learns its port from ``APPLIANCE_PORT`` and is
    reached as ``<student>.<domain>`` (a Cloud Map namespace). It is found again by its
    ``startedBy`` (the student), so a retried start or a stop needs no stored state. Its token is
    in the task's environment (``APPLIANCE_TOKEN``), where :meth:`token` reads it back.
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
                    {"name": "APPLIANCE_PORT", "value": str(port)}, {"name": "STUDENT", "value": student},
                    {"name": TOKEN_VARIABLE, "value": new_token()}]}]})
        except (BotoCoreError, ClientError) as exc:
            raise Unavailable(f"the appliance task of {student} did not start: {exc}") from exc
        if response.get("failures"):
            raise Unavailable(f"the appliance task of {student} did not start: {response['failures']}")

    def token(self, student: str) -> str:
        tasks = self._tasks(student)
        described = self.client_factory().describe_tasks(cluster=self.cluster, tasks=tasks)["tasks"] if tasks else []
        for task in described:
            for container in (task.get("overrides") or {}).get("containerOverrides", []):
                for variable in container.get("environment", []):
                    if variable.get("name") == TOKEN_VARIABLE:
                        return str(variable["value"])
        raise Unavailable(f"the appliance task of {student} is not running")

    def stop(self, student: str) -> None:
        client = self.client_factory()
        for arn in self._tasks(student):
            client.stop_task(cluster=self.cluster, task=arn, reason="workshop cleanup")

    def stop_all(self) -> None:
        """Tasks outlive this process on AWS; nothing to do at shutdown."""
