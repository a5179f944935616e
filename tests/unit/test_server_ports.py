"""Ports of participants' servers (infra/jupyterhub/server_ports.py), loaded by path like the hub does.

A real hub's servers listening in the range: tests/integration/test_hub_bootstrap.py."""
from __future__ import annotations

import importlib.util
import socket
import sys
from pathlib import Path

import pytest

HUB_DIR = Path(__file__).resolve().parents[2] / "infra" / "jupyterhub"
spec = importlib.util.spec_from_file_location("wod_hub_server_ports", HUB_DIR / "server_ports.py")
server_ports = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = server_ports
spec.loader.exec_module(server_ports)


@pytest.mark.parametrize(("text", "span"), [
    (None, (20000, 29999)), ("", (20000, 29999)), (" 15000-15999 ", (15000, 15999)), ("1024-1124", (1024, 1124)),
])
def test_a_range_is_read_or_defaulted(text, span):
    assert server_ports.parse(text) == span


@pytest.mark.parametrize("text", ["20000", "20000-", "a-b", "-5-10", "29999-20000", "80-1000", "60000-70000",
                                  "20000-20050", "20000:29999"])
def test_a_bad_range_is_refused_with_its_text(text):
    with pytest.raises(ValueError, match="WOD_HUB_SERVER_PORTS"):
        server_ports.parse(text)


def test_the_default_range_stays_out_of_the_kernels_ephemeral_ports():
    kernel = server_ports.ephemeral()
    assert kernel is not None
    assert server_ports.overlap(server_ports.DEFAULT) is None
    crossing = server_ports.overlap((kernel[0] - 50, kernel[0] + 50))
    assert crossing is not None and "ephemeral" in crossing


def test_a_bound_port_is_never_picked():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        span = (port, port + 100) if port + 100 <= 65535 else (port - 100, port)
        picked = {server_ports.pick(span) for _ in range(200)}
    assert port not in picked
    assert all(span[0] <= p <= span[1] for p in picked)


def test_no_free_port_says_so():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        with pytest.raises(RuntimeError, match=f"no free port for a server among {port}-{port}"):
            server_ports.pick((port, port), tries=5)


class Spawner:
    port = 0


def test_the_hook_gives_every_start_a_port_in_the_range():
    hook = server_ports.hook((21000, 21999))
    spawner = Spawner()
    hook(spawner)
    assert 21000 <= spawner.port <= 21999
