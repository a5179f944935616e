"""Keep students' processes off the platform's local ports (local mode, isolated spawner).

On one machine the embedded AWS, the SMTP server, the inbox and the hub's own
APIs listen on 127.0.0.1, where any local process could reach them. Every
student account is in the ``wod-students`` group; an iptables chain rejects
TCP from that group to those ports. The chain is rebuilt at each hub start.
"""
from __future__ import annotations

import shutil
import subprocess

CHAIN = "WOD-STUDENTS"


def rules(ports: list[int], group: str) -> list[list[str]]:
    """The iptables commands (without the leading ``iptables``), in order."""
    spec = ",".join(str(p) for p in sorted(set(ports)))
    return [
        ["-N", CHAIN],
        ["-F", CHAIN],
        ["-A", CHAIN, "-p", "tcp", "-m", "multiport", "--dports", spec, "-m", "owner", "--gid-owner", group,
         "--suppl-groups", "-j", "REJECT", "--reject-with", "tcp-reset"],
        ["-C", "OUTPUT", "-o", "lo", "-j", CHAIN],
        ["-I", "OUTPUT", "-o", "lo", "-j", CHAIN],
    ]


def install(ports: list[int], group: str) -> str | None:
    """Apply the rules; return a problem to warn about, or None when students are fenced off."""
    if not ports:
        return None
    iptables = shutil.which("iptables")
    if not iptables:
        return "iptables is not installed: students can reach the platform's local ports"
    subprocess.run(["groupadd", "-f", group], check=True)
    commands = rules(ports, group)
    subprocess.run([iptables, *commands[0]], capture_output=True)  # the chain may exist already
    for command in commands[1:3]:
        done = subprocess.run([iptables, *command], capture_output=True, text=True)
        if done.returncode:
            return f"iptables {' '.join(command)} failed: {done.stderr.strip()}"
    if subprocess.run([iptables, *commands[3]], capture_output=True).returncode:
        subprocess.run([iptables, *commands[4]], check=True)
    return None
