"""The local stack's appliances (``chalicelib.adapters.appliances.LocalAppliances``), set up for
the hub's spawner.

With the isolated spawner (as root) each appliance runs as its student's Linux user, with the
hub's interpreter (``.venv-hub``, which students may run, as their notebooks do) for
``{python}``, and its port is fenced so that no other student reaches it (the appliances' chain of
``infra/jupyterhub/student_firewall.py``, named after the hub's proxy API port like the hub's own).
Tokens and ports of running appliances are kept in ``<state>/appliances`` (0700).
"""
from __future__ import annotations

import os
from typing import Any

from chalicelib.adapters.appliances import LocalAppliances
from local.config import LocalConfig
from local.hub import HUB_VENV, student_firewall


def appliances_for(config: LocalConfig) -> LocalAppliances:
    options: dict[str, Any] = {}
    if config.hub_spawner == "isolated" and os.geteuid() == 0:
        firewall = student_firewall()
        options = {"run_as_students": True, "python": str(HUB_VENV / "bin" / "python"),
                   "fence": firewall.ApplianceFence(firewall.appliance_chain_for(config.hub_proxy_api_port))}
    return LocalAppliances(config.workshops, config.state_dir / "logs", config.host,
                           state_dir=config.state_dir / "appliances", **options)
