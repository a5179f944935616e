"""JupyterHub REST client: users, servers and the Jupyter Contents API, with the service token.

Transient failures (connection refused, timeouts, 5xx) raise :class:`HubUnavailable`
so the state machine's Retry can wait and try again; anything else is a
:class:`HubError` that goes straight to the compensation path.

The hub stops a participant's idle server (infra/jupyterhub/idle_culler.py): the Contents API
calls start it again and wait for it, so notebooks are still uploaded (RESET) and read
(completion at cleanup) after the participant has gone idle.
"""
from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any, NamedTuple
from urllib.parse import quote

import urllib3

from chalicelib.domain.errors import Unavailable, WodError


class HubError(WodError):
    """The hub refused a request in a way that retrying will not fix."""

    status = 502
    code = "hub_error"


class HubUnavailable(Unavailable):
    """The hub is down, slow or overloaded; retry later (after ``retry_after`` seconds when it said)."""

    code = "hub_unavailable"

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class ServerStopped(HubError):
    """A request for the student's server found it stopped (424): idle, culled by the hub."""


class Spawn(NamedTuple):
    """What asking for a server got: ``state`` ready, pending or throttled; a throttled one is asked
    again after ``retry_after`` seconds, when the hub said."""

    state: str
    retry_after: float | None = None


def retry_after(header: str | None) -> float | None:
    """A ``Retry-After`` in seconds (JupyterHub sends seconds; a date is not honoured)."""
    try:
        return max(0.0, float(header)) if header else None
    except ValueError:
        return None


# The hub group whose idle servers the hub stops (infra/jupyterhub/idle_culler.py PARTICIPANTS).
PARTICIPANTS_GROUP = "wod-participants"


class HubClient:
    def __init__(self, base_url: str, token: str, timeout: float = 10.0, retries: int = 2):
        self.base_url = base_url.rstrip("/")
        self.headers = {"Authorization": f"token {token}", "Content-Type": "application/json"}
        self.http = urllib3.PoolManager(
            maxsize=16,  # connections kept per host: the task threads of one process call it at once
            timeout=urllib3.Timeout(connect=min(timeout, 5.0), read=timeout),
            retries=urllib3.Retry(total=retries, connect=retries, read=0, backoff_factor=0.2,
                                  status_forcelist=(502, 503, 504), allowed_methods=None),
        )

    def _call(self, method: str, path: str, body: Any = None, ok: tuple[int, ...] = (200,)) -> tuple[int, Any]:
        url = self.base_url + path
        try:
            response = self.http.request(method, url, headers=self.headers,
                                         body=None if body is None else json.dumps(body).encode())
        except urllib3.exceptions.HTTPError as exc:
            raise HubUnavailable(f"JupyterHub at {self.base_url} did not answer {method} {path}: {exc}") from exc
        data = None
        if response.data:
            try:
                data = json.loads(response.data)
            except ValueError:
                data = response.data.decode(errors="replace")[:200]
        if response.status in ok:
            return response.status, data
        message = f"JupyterHub answered {response.status} to {method} {path}: {data}"
        if response.status >= 500 or response.status == 429:
            raise HubUnavailable(message, retry_after(response.headers.get("Retry-After")))
        if response.status == 424:
            raise ServerStopped(message)
        raise HubError(message)

    @staticmethod
    def _user(name: str) -> str:
        return quote(name, safe="")

    def ensure_user(self, name: str) -> None:
        self._call("POST", f"/hub/api/users/{self._user(name)}", ok=(201, 409))

    def delete_user(self, name: str, stop_timeout: float = 60.0) -> None:
        """Stop the user's server, then remove the user; an unknown user is already gone.

        The hub refuses to delete a user whose server is running or still spawning, so the
        server is stopped first (waiting out a spawn in progress).
        """
        user = f"/hub/api/users/{self._user(name)}"
        deadline = time.monotonic() + stop_timeout
        while True:
            status, data = self._call("GET", user, ok=(200, 404))
            if status == 404:
                return
            server = (data.get("servers") or {}).get("")
            if not server:
                break
            if time.monotonic() > deadline:
                raise HubUnavailable(f"the server of {name} did not stop within {stop_timeout:.0f} s")
            if server.get("pending") != "spawn":  # a spawn in progress cannot be stopped yet
                self._call("DELETE", f"{user}/server", ok=(202, 204, 400, 404))
            time.sleep(1)
        self._call("DELETE", user, ok=(204, 404))

    def start_server(self, name: str) -> Spawn:
        """Ask for the server: ``ready`` (up), ``pending`` (spawning) or ``throttled`` (the hub's
        concurrent-spawn limit said 429: ask again after ``retry_after`` seconds)."""
        try:
            status, _ = self._call("POST", f"/hub/api/users/{self._user(name)}/server", ok=(201, 202, 400))
        except HubUnavailable as exc:
            if "answered 429" not in exc.message:
                raise
            return Spawn("throttled", exc.retry_after)
        if status == 400:  # already running, or a spawn (or stop) already pending: which one, the user says
            return Spawn("ready" if self.server_state(name) == "ready" else "pending")
        return Spawn({201: "ready", 202: "pending"}[status])

    def server_state(self, name: str) -> str:
        """``ready``, ``pending`` (spawning or stopping) or ``none`` (not requested)."""
        _, user = self._call("GET", f"/hub/api/users/{self._user(name)}")
        server = (user or {}).get("servers", {}).get("")
        if not server:
            return "none"
        return "ready" if server.get("ready") else "pending"

    def mark_participant(self, name: str) -> None:
        """The student now holds the seat: into the group whose idle servers the hub stops (the
        warm pool's servers are not in it), with its idle clock restarted, so a warm server that
        waited longer than the idle timeout is not stopped the moment its participant gets it."""
        self._call("POST", f"/hub/api/groups/{PARTICIPANTS_GROUP}/users", {"users": [name]})
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        activity = f"/hub/api/users/{self._user(name)}/activity"
        status, _ = self._call("POST", activity, {"last_activity": now, "servers": {"": {"last_activity": now}}},
                               ok=(200, 400))
        if status == 400:  # no server was ever started: the user's clock only (a spawn sets the server's)
            self._call("POST", activity, {"last_activity": now})

    def ensure_running(self, name: str, wait: float = 45.0) -> None:
        """Start the student's server if it is stopped and wait until it answers; a spawn that
        takes longer raises :class:`HubUnavailable` (the state machine asks again later)."""
        deadline = time.monotonic() + wait
        while True:
            state = self.server_state(name)
            if state == "ready":
                return
            if state == "none":
                self.start_server(name)  # throttled too: asked again on the next turn
            if time.monotonic() > deadline:
                raise HubUnavailable(f"the server of {name} was stopped and did not start within {wait:.0f} s")
            time.sleep(1)

    def _contents(self, method: str, name: str, path: str, body: Any = None,
                  ok: tuple[int, ...] = (200,)) -> Any:
        """A Contents API call on the student's server, started again first if it was stopped."""
        url = f"/user/{self._user(name)}/api/contents/{path}"
        try:
            return self._call(method, url, body, ok=ok)[1]
        except ServerStopped:
            self.ensure_running(name)
            return self._call(method, url, body, ok=ok)[1]

    def put_contents(self, name: str, path: str, model: dict[str, Any]) -> None:
        """Jupyter Contents API PUT, through the proxy, as the service."""
        target = "/".join(quote(part, safe="") for part in path.split("/"))
        self._contents("PUT", name, target, model, ok=(200, 201))

    def get_contents(self, name: str, path: str = "") -> dict[str, Any]:
        target = "/".join(quote(part, safe="") for part in path.split("/") if part)
        return self._contents("GET", name, f"{target}?content=1")
