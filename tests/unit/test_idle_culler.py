"""The hub's idle culler settings (infra/jupyterhub/idle_culler.py), loaded by path like the hub does.

The culler itself runs in tests/integration/test_idle_cull.py against a real hub.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from traitlets.config import Config

from chalicelib.adapters.hub import PARTICIPANTS_GROUP

HUB_DIR = Path(__file__).resolve().parents[2] / "infra" / "jupyterhub"
spec = importlib.util.spec_from_file_location("wod_hub_idle_culler", HUB_DIR / "idle_culler.py")
idle_culler = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = idle_culler
spec.loader.exec_module(idle_culler)


@pytest.mark.parametrize(("env", "expected"), [
    ({}, (1200, 60)),                                   # 20 minutes, looked at every minute
    ({"WOD_IDLE_MINUTES": ""}, (1200, 60)),
    ({"WOD_IDLE_MINUTES": "45"}, (2700, 60)),
    ({"WOD_IDLE_MINUTES": "0.5"}, (30, 15)),             # at most half the timeout by default
    ({"WOD_IDLE_MINUTES": "0.01"}, (1, 1)),
    ({"WOD_IDLE_MINUTES": "0.2", "WOD_IDLE_CHECK_SECONDS": "1"}, (12, 1)),
    ({"WOD_IDLE_MINUTES": "0"}, None),                  # off
])
def test_timing(env, expected):
    assert idle_culler.timing(env) == expected


@pytest.mark.parametrize("env", [{"WOD_IDLE_MINUTES": "soon"}, {"WOD_IDLE_MINUTES": "-1"},
                                 {"WOD_IDLE_MINUTES": "nan"}, {"WOD_IDLE_CHECK_SECONDS": "0"},
                                 {"WOD_IDLE_CHECK_SECONDS": "1.5"}])
def test_a_bad_setting_stops_the_hub_with_its_name(env):
    with pytest.raises(SystemExit, match=next(iter(env))):
        idle_culler.timing(env)


def test_the_culler_is_a_managed_service_that_only_stops_participants_servers():
    c = Config()
    c.JupyterHub.services = [{"name": "wod-platform", "api_token": "t"}]
    c.JupyterHub.load_roles = [{"name": "wod-platform", "scopes": ["admin:users"], "services": ["wod-platform"]}]
    line = idle_culler.configure(c, "/hub/python", {"WOD_IDLE_MINUTES": "20"})
    assert "1200 s" in line
    platform, culler = c.JupyterHub.services
    assert platform["name"] == "wod-platform"
    assert culler["command"][:3] == ["/hub/python", "-m", "jupyterhub_idle_culler"]
    assert {"--timeout=1200", "--cull-every=60", "--cull-users=False"} <= set(culler["command"])
    role = c.JupyterHub.load_roles[1]
    assert role["services"] == [culler["name"]]
    # what jupyterhub-idle-culler needs, only over the participants; never users themselves
    assert sorted(role["scopes"]) == sorted(f"{scope}!group={PARTICIPANTS_GROUP}" for scope in (
        "list:users", "read:users:activity", "read:servers", "delete:servers"))
    assert c.JupyterHub.load_groups == {PARTICIPANTS_GROUP: {}}


def test_off_keeps_the_group_the_platform_fills():
    c = Config()
    assert "never" in idle_culler.configure(c, "/hub/python", {"WOD_IDLE_MINUTES": "0"})
    assert c.JupyterHub.load_groups == {PARTICIPANTS_GROUP: {}}
    assert "services" not in c.JupyterHub and "load_roles" not in c.JupyterHub


def test_the_platform_may_only_fill_that_group():
    assert idle_culler.PARTICIPANTS == PARTICIPANTS_GROUP
    assert idle_culler.PLATFORM_SCOPES == [f"groups!group={PARTICIPANTS_GROUP}"]
