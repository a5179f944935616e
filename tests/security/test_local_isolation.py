"""Local isolation is not optional: in isolated mode a hub that cannot fence students off the
platform's ports (no iptables) refuses to start and says why, instead of starting unfenced; hubs
side by side (two stacks, or tests) fence their own ports without unfencing each other's; and the
fence of a hub that died is removed when the next hub starts."""
from __future__ import annotations

import secrets
import subprocess

import pytest

from local.hub import HUB_VENV, NODE_BIN, Hub
from tests.hubtools import CONNECT, free_ports, running_hub

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


def chain_rules() -> str:
    return subprocess.run(["iptables", "-S"], capture_output=True, text=True, check=True).stdout


def test_a_second_hub_never_unfences_the_first(hub, embedded_aws, tmp_path):
    """Each hub fences its own ports in a chain of its own: another hub starting and stopping
    beside it leaves the first hub's rules (and students fenced off its ports) as they were."""
    first = f"WOD-STUDENTS-{hub.proxy_api_port}"
    before = [line for line in chain_rules().splitlines() if first in line]
    assert any(str(embedded_aws.port) in line for line in before) and f"-A OUTPUT -o lo -j {first}" in before
    with running_hub(embedded_aws, tmp_path) as second:
        other = f"WOD-STUDENTS-{second.proxy_api_port}"
        assert f"-A OUTPUT -o lo -j {other}" in chain_rules()
        assert [line for line in chain_rules().splitlines() if first in line] == before
    assert other not in chain_rules()  # removed with its hub
    assert [line for line in chain_rules().splitlines() if first in line] == before



def test_the_fence_of_a_hub_that_died_is_removed_when_a_hub_starts():
    """A hub killed before its stop leaves its chain, which would keep fencing ports (its hub's
    port among them) that a later stack may be given: the next hub to start removes it, and
    leaves the chains of hubs still running."""
    from local.hub import student_firewall

    firewall = student_firewall()
    dead = subprocess.Popen(["true"])
    dead.wait()
    gone, live, mine = (firewall.chain_for(port) for port in free_ports(3))
    try:
        assert firewall.install([free_ports(1)[0]], "wod-students", live) is None  # this process: alive
        assert firewall.install([free_ports(1)[0]], "wod-students", gone, owner=dead.pid) is None
        assert f"-A OUTPUT -o lo -j {gone}" in chain_rules()
        assert firewall.install([free_ports(1)[0]], "wod-students", mine) is None
        rules = chain_rules()
        assert gone not in rules and f"-A OUTPUT -o lo -j {live}" in rules and f"-A OUTPUT -o lo -j {mine}" in rules
    finally:
        for chain in (gone, live, mine):
            firewall.remove(chain)


def test_only_the_chains_of_processes_that_are_gone_are_named_orphans():
    from local.hub import student_firewall

    firewall = student_firewall()
    listing = "\n".join([
        "-N WOD-STUDENTS-1", "-N WOD-STUDENTS-2", "-N WOD-STUDENTS-3",
        '-A WOD-STUDENTS-1 -p tcp -m multiport --dports 5,6 -m comment --comment "wod-hub-pid 11" -j REJECT',
        '-A WOD-STUDENTS-2 -p tcp -m multiport --dports 7 -m comment --comment "wod-hub-pid 22" -j REJECT',
        "-A WOD-STUDENTS-3 -p tcp -m multiport --dports 8 -j REJECT",  # no owner named: left alone
        '-A OUTPUT -m comment --comment "wod-hub-pid 11" -j ACCEPT'])
    assert firewall.orphaned(listing, alive=lambda pid: pid == 22) == ["WOD-STUDENTS-1"]


def test_students_are_fenced_off_the_platforms_ports_over_ipv6_too(tmp_path):
    """A part bound to ``localhost`` may listen on ::1 (whichever getaddrinfo gives first), and the
    student firewall must fence that address as it fences 127.0.0.1."""
    import json
    import socket

    from local.hub import HUB_VENV, student_firewall
    from tests.hubtools import new_name, remove_linux_user

    name = new_name()
    subprocess.run(["groupadd", "-f", "wod-students"], check=True)
    subprocess.run(["useradd", "--no-create-home", "--groups", "wod-students", "--shell", "/usr/sbin/nologin", name],
                   check=True)
    listeners = [socket.socket(socket.AF_INET), socket.socket(socket.AF_INET6)]
    for listener, host in zip(listeners, ("127.0.0.1", "::1"), strict=True):
        listener.bind((host, 0))
        listener.listen()
    targets = [("127.0.0.1", listeners[0].getsockname()[1]), ("::1", listeners[1].getsockname()[1])]
    firewall = student_firewall()
    chain = firewall.chain_for(free_ports(1)[0])
    try:
        assert firewall.install([port for _, port in targets], "wod-students", chain) is None
        done = subprocess.run(["runuser", "-u", name, "--", str(HUB_VENV / "bin" / "python"), "-c", CONNECT,
                               json.dumps(targets)], capture_output=True, text=True, timeout=60, cwd="/")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == ["ConnectionRefusedError"] * 2
    finally:
        firewall.remove(chain)
        for listener in listeners:
            listener.close()
        remove_linux_user(name)
    assert chain not in subprocess.run(["ip6tables", "-S"], capture_output=True, text=True).stdout
