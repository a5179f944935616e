"""Idle participants' servers stop: jupyterhub-idle-culler as a hub-managed service (both configs).

A participant's server that has seen no traffic for WOD_IDLE_MINUTES is stopped. The hub user
(the seat's account), the student's Linux user or volume and their home stay; their next login
starts the server again (the hub spawns on login), with their files. Users are never culled.

Only members of the hub group PARTICIPANTS are culled: the platform adds a student when it hands
out credentials (``HubClient.mark_participant``, which also restarts the idle clock), and
deleting the hub user at cleanup drops the membership. The warm pool's servers (free students,
idle by design until claimed) are not in the group and keep running.

"No traffic" is the hub's ``last_activity``: requests through the proxy (an open JupyterLab tab
polls its server) and the single-user server's own activity reports, both refreshed every
5 minutes, so the timeout is only meaningful above ~6 minutes in production.

Environment:
  WOD_IDLE_MINUTES        idle minutes before a participant's server stops (default 20;
                          decimals allowed; 0 turns culling off)
  WOD_IDLE_CHECK_SECONDS  how often the culler looks (default: half the timeout, at most 60 s)

No JupyterHub import: the unit tests load this file from the platform's venv.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

PARTICIPANTS = "wod-participants"  # chalicelib/adapters/hub.py PARTICIPANTS_GROUP names it too
SERVICE = "wod-idle-culler"
DEFAULT_MINUTES = 20.0
# What jupyterhub-idle-culler needs (its README), and only for the participants' group.
CULLER_SCOPES = [f"{scope}!group={PARTICIPANTS}"
                 for scope in ("list:users", "read:users:activity", "read:servers", "delete:servers")]
# The platform's role adds these: it puts participants into the group.
PLATFORM_SCOPES = [f"groups!group={PARTICIPANTS}"]


def timing(env: Mapping[str, str]) -> tuple[int, int] | None:
    """(timeout, check period) in seconds, or None when culling is off (WOD_IDLE_MINUTES=0)."""
    raw = (env.get("WOD_IDLE_MINUTES") or "").strip()
    try:
        minutes = float(raw) if raw else DEFAULT_MINUTES
    except ValueError:
        raise SystemExit(f"WOD_IDLE_MINUTES={raw!r} is not a number of minutes") from None
    if not math.isfinite(minutes) or minutes < 0:
        raise SystemExit(f"WOD_IDLE_MINUTES={raw!r}: use 0 (never stop idle servers) or more")
    if minutes == 0:
        return None
    timeout = max(1, round(minutes * 60))
    raw_every = (env.get("WOD_IDLE_CHECK_SECONDS") or "").strip()
    try:
        every = int(raw_every) if raw_every else min(60, max(1, timeout // 2))
    except ValueError:
        raise SystemExit(f"WOD_IDLE_CHECK_SECONDS={raw_every!r} is not a whole number of seconds") from None
    if every < 1:
        raise SystemExit(f"WOD_IDLE_CHECK_SECONDS={raw_every!r}: at least 1")
    return timeout, every


def service(python: str, env: Mapping[str, str]) -> dict | None:
    """The managed service for ``c.JupyterHub.services``, or None when culling is off."""
    timed = timing(env)
    if timed is None:
        return None
    timeout, every = timed
    return {
        "name": SERVICE,
        "command": [python, "-m", "jupyterhub_idle_culler", f"--timeout={timeout}", f"--cull-every={every}",
                    "--cull-users=False", "--remove-named-servers=False"],
    }


def role() -> dict:
    return {"name": SERVICE, "description": "Stop participants' servers idle for WOD_IDLE_MINUTES.",
            "scopes": CULLER_SCOPES, "services": [SERVICE]}


def configure(c, python: str, env: Mapping[str, str]) -> str:
    """Add the group (always: the platform's contract), and the culler service and its role
    unless culling is off. Call after ``c.JupyterHub.services`` / ``load_roles`` are set.
    Returns a line for the hub's log."""
    hub = c.JupyterHub

    def current(name, empty):
        return hub[name] if name in hub else empty  # unset: traitlets would hand a lazy value

    hub.load_groups = {**current("load_groups", {}), PARTICIPANTS: {}}
    culler = service(python, env)
    if culler is None:
        return "idle servers are never stopped (WOD_IDLE_MINUTES=0)"
    hub.services = [*current("services", []), culler]
    hub.load_roles = [*current("load_roles", []), role()]
    timeout, every = timing(env) or (0, 0)
    return (f"participants' servers idle for {timeout} s stop (checked every {every} s); "
            "their files stay and the next login starts them again")
