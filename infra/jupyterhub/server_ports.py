"""Ports for participants' single-user servers, away from the kernel's ephemeral range.

JupyterHub picks a server's port by binding port 0 (an ephemeral port), closes it and starts the
server a few seconds later on that number. Every other program that binds port 0 or connects out
meanwhile draws from the same range, and the one that takes the number first wins: the hub then
routes the participant to whatever answers there. Drawing from a range the kernel never hands
out by itself (``WOD_HUB_SERVER_PORTS``, default 20000-29999) leaves only another server of this
kind to race with, and a port found bound is skipped.
"""
from __future__ import annotations

import random
import socket
from pathlib import Path

DEFAULT = (20000, 29999)
EPHEMERAL = Path("/proc/sys/net/ipv4/ip_local_port_range")


def parse(text: str | None) -> tuple[int, int]:
    """``"LOW-HIGH"`` (inclusive); empty means the default. Raises ValueError saying what is wrong."""
    if not text or not text.strip():
        return DEFAULT
    low, sep, high = text.strip().partition("-")
    if not sep or not low.strip().isdigit() or not high.strip().isdigit():
        raise ValueError(f"WOD_HUB_SERVER_PORTS={text!r} is not a range like 20000-29999")
    first, last = int(low), int(high)
    if not 1024 <= first <= last <= 65535 or last - first < 100:
        raise ValueError(f"WOD_HUB_SERVER_PORTS={text!r}: want 1024 <= LOW, LOW + 100 <= HIGH <= 65535")
    return first, last


def ephemeral() -> tuple[int, int] | None:
    try:
        low, high = EPHEMERAL.read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return None


def overlap(span: tuple[int, int]) -> str | None:
    """Why ``span`` is not safe from ephemeral ports, or None."""
    kernel = ephemeral()
    if kernel and span[0] <= kernel[1] and kernel[0] <= span[1]:
        return f"ports {span[0]}-{span[1]} overlap the ephemeral range {kernel[0]}-{kernel[1]}"
    return None


def free(port: int) -> bool:
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        try:
            with socket.socket(family) as sock:
                sock.bind((host, port))
        except OSError as exc:
            if family == socket.AF_INET6 and exc.errno in (97, 99):  # no IPv6 here
                continue
            return False
    return True


def pick(span: tuple[int, int], tries: int = 200) -> int:
    for _ in range(tries):
        port = random.randint(*span)
        if free(port):
            return port
    raise RuntimeError(f"no free port for a server among {span[0]}-{span[1]} after {tries} tries")


def hook(span: tuple[int, int]):
    """A ``Spawner.pre_spawn_hook``: a fresh port from ``span`` at every start of a server."""

    def choose_port(spawner) -> None:
        spawner.port = pick(span)

    return choose_port
