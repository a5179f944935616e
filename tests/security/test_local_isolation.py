"""Local isolation is not optional: in isolated mode a hub that cannot fence students off the
platform's ports (no iptables) refuses to start and says why, instead of starting unfenced."""
from __future__ import annotations

import secrets

import pytest

from local.hub import HUB_VENV, NODE_BIN, Hub
from tests.hubtools import free_ports

pytestmark = pytest.mark.timeout(120)


def test_the_hub_refuses_to_start_without_the_student_firewall(tmp_path, embedded_aws):
    port, api_port, proxy_api_port = free_ports(3)
    hub = Hub(state_dir=tmp_path / "state", log_file=tmp_path / "hub.log", token=secrets.token_hex(32),
              port=port, api_port=api_port, proxy_api_port=proxy_api_port, aws_endpoint=embedded_aws.endpoint,
              students_table="none", spawner="isolated", region="us-east-1",
              env={"PATH": f"{HUB_VENV}/bin:{NODE_BIN}:/usr/bin:/bin",  # no /usr/sbin: no iptables
                   "WOD_HUB_BLOCKED_PORTS": str(embedded_aws.port)})
    try:
        with pytest.raises(RuntimeError, match="JupyterHub exited"):
            hub.start(timeout=60)
    finally:
        hub.stop()
    log = (tmp_path / "hub.log").read_text()
    assert "needs the student firewall" in log and "iptables is not installed" in log
