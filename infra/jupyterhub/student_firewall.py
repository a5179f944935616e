"""Keep students' processes off the platform's local ports (local mode, isolated spawner).

On one machine the embedded AWS, the SMTP server, the inbox, the task workers, the app and the
hub's proxy API listen on 127.0.0.1, where any local process could reach them. Every student
account is in the ``wod-students`` group; an iptables chain rejects TCP from that group to those
ports. Each hub has a chain of its own (named after its proxy API port, which no other running hub
has), rebuilt at its start and removed at its stop, so stacks side by side never unfence each
other's ports.
"""
from __future__ import annotations

import shutil
import subprocess

PREFIX = "WOD-STUDENTS"


def chain_for(proxy_api_port: int) -> str:
    return f"{PREFIX}-{proxy_api_port}"  # at most 28 characters, as iptables wants


def rules(ports: list[int], group: str, chain: str = PREFIX) -> list[list[str]]:
    """The iptables commands (without the leading ``iptables``), in order."""
    spec = ",".join(str(p) for p in sorted(set(ports)))
    return [
        ["-N", chain],
        ["-F", chain],
        ["-A", chain, "-p", "tcp", "-m", "multiport", "--dports", spec, "-m", "owner", "--gid-owner", group,
         "--suppl-groups", "-j", "REJECT", "--reject-with", "tcp-reset"],
        ["-C", "OUTPUT", "-o", "lo", "-j", chain],
        ["-I", "OUTPUT", "-o", "lo", "-j", chain],
    ]


def remove(chain: str) -> None:
    """Take a hub's chain away (its jump, its rules, the chain); nothing if it is not there."""
    iptables = shutil.which("iptables")
    if not iptables:
        return
    while subprocess.run([iptables, "-D", "OUTPUT", "-o", "lo", "-j", chain], capture_output=True).returncode == 0:
        pass
    subprocess.run([iptables, "-F", chain], capture_output=True)
    subprocess.run([iptables, "-X", chain], capture_output=True)


def install(ports: list[int], group: str, chain: str = PREFIX) -> str | None:
    """Apply the rules; return a problem to warn about, or None when students are fenced off."""
    if not ports:
        return None
    iptables = shutil.which("iptables")
    if not iptables:
        return "iptables is not installed: students can reach the platform's local ports"
    subprocess.run(["groupadd", "-f", group], check=True)
    commands = rules(ports, group, chain)
    subprocess.run([iptables, *commands[0]], capture_output=True)  # the chain may exist already
    for command in commands[1:3]:
        done = subprocess.run([iptables, *command], capture_output=True, text=True)
        if done.returncode:
            return f"iptables {' '.join(command)} failed: {done.stderr.strip()}"
    if subprocess.run([iptables, *commands[3]], capture_output=True).returncode:
        subprocess.run([iptables, *commands[4]], check=True)
    return None
