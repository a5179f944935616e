"""Keep students' processes off the platform's local ports (local mode, isolated spawner).

On one machine the embedded AWS, the SMTP server, the inbox, the task workers, the app and the
hub's proxy API listen on 127.0.0.1, where any local process could reach them. Every student
account is in the ``wod-students`` group; an iptables chain rejects TCP from that group to those
ports, over IPv4 and IPv6 alike (a part bound to ``localhost`` may listen on ::1). Each hub has a
chain of its own (named after its proxy API port, which no other running hub has), rebuilt at its
start and removed at its stop, so stacks side by side never unfence each other's ports. The chain's
rule names the process that made it; a hub starting removes the chains whose process is gone (a
hub killed before its stop), which would otherwise keep fencing ports a later stack may be given.

Each workshop appliance (a per-student service on a local port) is fenced too: in a chain of the
stack's appliances (``WOD-APPLIANCES-<proxy API port>``, kept by whoever starts the appliances, so
it outlives a restart of the hub), one rule per appliance rejects every student but its own.
The rule is added when the appliance starts and removed when it stops.
"""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Callable

PREFIX = "WOD-STUDENTS"
STUDENTS_GROUP = "wod-students"  # every student account is in it (wod_authenticator.py)
OWNER = "wod-hub-pid"  # the comment on a chain's rule: the process that made it


def chain_for(proxy_api_port: int) -> str:
    return f"{PREFIX}-{proxy_api_port}"  # at most 28 characters, as iptables wants


def rules(ports: list[int], group: str, chain: str = PREFIX, owner: int | None = None) -> list[list[str]]:
    """The iptables commands (without the leading ``iptables``), in order; ``owner``: the pid named
    on the rule (default: this process)."""
    spec = ",".join(str(p) for p in sorted(set(ports)))
    return [
        ["-N", chain],
        ["-F", chain],
        ["-A", chain, "-p", "tcp", "-m", "multiport", "--dports", spec, "-m", "owner", "--gid-owner", group,
         "--suppl-groups", "-m", "comment", "--comment", f"{OWNER} {owner or os.getpid()}",
         "-j", "REJECT", "--reject-with", "tcp-reset"],
        ["-C", "OUTPUT", "-o", "lo", "-j", chain],
        ["-I", "OUTPUT", "-o", "lo", "-j", chain],
    ]


def _tools() -> list[str]:
    """iptables, and ip6tables where the machine has IPv6 tables."""
    found = [shutil.which("iptables")]
    ip6tables = shutil.which("ip6tables")
    if ip6tables and subprocess.run([ip6tables, "-S", "OUTPUT"], capture_output=True).returncode == 0:
        found.append(ip6tables)
    return [tool for tool in found if tool]


def remove(chain: str) -> None:
    """Take a hub's chain away (its jump, its rules, the chain); nothing if it is not there."""
    for tool in _tools():
        while subprocess.run([tool, "-D", "OUTPUT", "-o", "lo", "-j", chain], capture_output=True).returncode == 0:
            pass
        subprocess.run([tool, "-F", chain], capture_output=True)
        subprocess.run([tool, "-X", chain], capture_output=True)


def _alive(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}")


def orphaned(listing: str, alive: Callable[[int], bool] = _alive) -> list[str]:
    """The students' chains in an ``iptables -S`` listing whose rule names a process that is gone."""
    found = []
    for line in listing.splitlines():
        words = shlex.split(line)
        if len(words) > 2 and words[0] == "-A" and words[1].startswith(f"{PREFIX}-") and "--comment" in words:
            owner = words[words.index("--comment") + 1].split()
            if len(owner) == 2 and owner[0] == OWNER and owner[1].isdigit() and not alive(int(owner[1])):
                found.append(words[1])
    return found


def sweep() -> list[str]:
    """Remove the chains of hubs that are gone; which."""
    gone = sorted({chain for tool in _tools()
                   for chain in orphaned(subprocess.run([tool, "-S"], capture_output=True, text=True).stdout)})
    for chain in gone:
        remove(chain)
    return gone


def install(ports: list[int], group: str, chain: str = PREFIX, owner: int | None = None) -> str | None:
    """Apply the rules (after removing the chains of hubs that are gone); return a problem to warn
    about, or None when students are fenced off."""
    if not ports:
        return None
    if not shutil.which("iptables"):
        return "iptables is not installed: students can reach the platform's local ports"
    subprocess.run(["groupadd", "-f", group], check=True)
    sweep()
    commands = rules(ports, group, chain, owner)
    for tool in _tools():
        subprocess.run([tool, *commands[0]], capture_output=True)  # the chain may exist already
        for command in commands[1:3]:
            done = subprocess.run([tool, *command], capture_output=True, text=True)
            if done.returncode:
                return f"{tool} {' '.join(command)} failed: {done.stderr.strip()}"
        if subprocess.run([tool, *commands[3]], capture_output=True).returncode:
            subprocess.run([tool, *commands[4]], check=True)
    return None


APPLIANCES = "WOD-APPLIANCES"


def appliance_chain_for(proxy_api_port: int) -> str:
    return f"{APPLIANCES}-{proxy_api_port}"


def appliance_rule(port: int, uid: int, group: str) -> list[str]:
    """Students other than ``uid`` are refused on ``port``; root and the platform are not students."""
    return ["-p", "tcp", "--dport", str(port), "-m", "owner", "--gid-owner", group, "--suppl-groups",
            "!", "--uid-owner", str(uid), "-j", "REJECT", "--reject-with", "tcp-reset"]


class ApplianceFence:
    """The appliances' chain (IPv4 and IPv6: an appliance may listen on ``::``): ``allow_only(port,
    uid)`` when an appliance starts, ``remove(port)`` when it stops, ``clear()`` when the stack
    stops. Raises :class:`RuntimeError` when iptables cannot do it (an appliance must not run
    unfenced)."""

    def __init__(self, chain: str, group: str = STUDENTS_GROUP):
        self.chain, self.group = chain, group

    def _iptables(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run([tool, "-w", *args], capture_output=True, text=True)
        if check and done.returncode:
            raise RuntimeError(f"{tool} {' '.join(args)} failed: {done.stderr.strip()}")
        return done

    @staticmethod
    def _tools() -> list[str]:
        if not shutil.which("iptables"):
            raise RuntimeError("iptables is not installed: appliances cannot be fenced")
        return _tools()

    def _ensure_chain(self) -> None:
        for tool in self._tools():
            self._iptables(tool, "-N", self.chain, check=False)  # it may exist already
            if self._iptables(tool, "-C", "OUTPUT", "-o", "lo", "-j", self.chain, check=False).returncode:
                self._iptables(tool, "-I", "OUTPUT", "-o", "lo", "-j", self.chain)

    def remove(self, port: int) -> None:
        """Every rule of ``port`` (also one left by an appliance of a stack that died)."""
        for tool in self._tools():
            listing = self._iptables(tool, "-S", self.chain, check=False)
            for line in listing.stdout.splitlines() if listing.returncode == 0 else []:
                words = shlex.split(line)
                if words[:2] == ["-A", self.chain] and f" --dport {port} " in f"{line} ":
                    self._iptables(tool, "-D", *words[1:], check=False)

    def allow_only(self, port: int, uid: int) -> None:
        self._ensure_chain()
        self.remove(port)
        for tool in self._tools():
            self._iptables(tool, "-A", self.chain, *appliance_rule(port, uid, self.group))

    def clear(self) -> None:
        remove(self.chain)
