"""The hub process (``python -m local hub``): JupyterHub (``local/hub.py``) at a lower CPU
priority than the platform.

It lowers its own CPU priority (``WOD_HUB_NICE``, default nice 10, and the ``wod-hub`` CPU cgroup
of ``WOD_HUB_CPU_WEIGHT``, default half a platform process: see ``local.part.lower_cpu_priority``)
before starting JupyterHub, so
the hub, its proxy and every student server and kernel it spawns inherit it: in the opening
minute of an event the registrations, the embedded AWS and the task workers come first. It stops JupyterHub with its
whole tree on SIGTERM, and exits when JupyterHub does, so the supervisor restarts both (a
JupyterHub left by a killed process is reaped by the next start).
"""
from __future__ import annotations

import logging

log = logging.getLogger("wod.local.hub")


def main() -> int:
    from chalicelib.adapters.secrets import get_secret
    from chalicelib.settings import get_settings
    from local import part
    from local.hub import Hub

    config = part.setup("hub")
    stopping = part.Stopping()
    priority = part.lower_cpu_priority(config.hub_nice, config.hub_cpu_weight)
    log.info("JupyterHub and the student servers run at %s", priority)
    settings = get_settings()
    # what students must not reach: the embedded AWS, mail, the task workers and the app itself
    blocked = (config.aws_port, config.smtp_port, config.inbox_port, config.workers_port, config.app_port)
    hub = Hub(state_dir=config.state_dir / "hub", log_file=config.state_dir / "logs" / "jupyterhub.log",
              token=get_secret(settings, "hub_token"), port=config.hub_port, api_port=config.hub_api_port,
              proxy_api_port=config.hub_proxy_api_port, aws_endpoint=config.aws_endpoint,
              students_table=settings.table_name("students"), spawner=config.hub_spawner,
              region=settings.region, host=config.host,
              env={"WOD_HUB_BLOCKED_PORTS": ",".join(str(port) for port in blocked),
                   "WOD_EVENTS_URL": f"{settings.callback_url or settings.public_url}/api/events",
                   "WOD_EVENTS_KEY": get_secret(settings, "events_key")})
    from local.orphans import stop_left_behind

    for stopped in stop_left_behind(config.state_dir, kinds=("culler",)):  # a killed JupyterHub's
        log.warning("stopped %s", stopped)
    try:
        stopping.interrupting = True  # a stop while JupyterHub starts must not wait for it
        hub.start()
        stopping.interrupting = False
        part.ready(pid=hub.proc.pid if hub.proc else None, priority=priority)
        while not stopping.wait(1):
            if not hub.running:
                code = hub.proc.returncode if hub.proc else None
                log.error("JupyterHub exited with code %s", code)
                return 1
    except KeyboardInterrupt:
        log.info("stopped while JupyterHub was starting")
    finally:
        hub.stop()
    return 0
