"""Memory per participant: a student's single-user server and kernel, idle, after running a cell,
and after the hub's idle culler stopped the server.

    .venv/bin/python bench/memory.py                      # its own hub, 3 students (root: Linux users)
    .venv/bin/python bench/memory.py --students 1 --idle-seconds 60
    .venv/bin/python bench/memory.py --running            # the students of the stack you run (`make run`)

Without ``--running`` it starts a JupyterHub like the tests do (``local.hub.Hub``, isolated
spawner, free ports, a temporary state directory, the idle culler timed in seconds), drives it
with the platform's own hub client and service token, and removes its students and stops the hub
when done. Figures come from ``/proc``: RSS, and PSS (``/proc/<pid>/smaps_rollup``: shared pages
divided among the processes sharing them, so the sum over processes is what they really cost).
A student's processes are those of a Linux user in the ``wod-students`` group (isolated spawner).

``student_memory()`` is the measuring function; other benches may import it.
"""
from __future__ import annotations

import argparse
import grp
import json
import pwd
import secrets
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

STUDENTS_GROUP = "wod-students"  # infra/jupyterhub/wod_authenticator.py STUDENTS_GROUP
OTHER = "other"  # a student's process that is neither the server nor a kernel (a terminal, their own)
CELL = """
import json, statistics
rows = [{"id": i, "name": f"item{i}", "price": i * 0.25} for i in range(20_000)]
print(len(json.dumps(rows)), statistics.mean(r["price"] for r in rows))
"""


# ---- measuring ---------------------------------------------------------------------------------------

@dataclass
class Proc:
    pid: int
    user: str
    role: str  # server | kernel | other
    rss_kb: int
    pss_kb: int | None


@dataclass
class Student:
    name: str
    procs: list[Proc] = field(default_factory=list)

    def rss_mb(self, role: str | None = None) -> float:
        return sum(p.rss_kb for p in self.procs if role in (None, p.role)) / 1024

    def pss_mb(self, role: str | None = None) -> float | None:
        chosen = [p for p in self.procs if role in (None, p.role)]
        if any(p.pss_kb is None for p in chosen):
            return None
        return sum(p.pss_kb or 0 for p in chosen) / 1024


def memory_kb(pid: int) -> tuple[int, int | None] | None:
    """(RSS, PSS) in kB; PSS is None where the kernel has no smaps_rollup. None: gone."""
    try:
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except FileNotFoundError:
        rollup = ""
    except (PermissionError, ProcessLookupError):
        return None
    fields = {line.split(":")[0]: int(line.split()[1]) for line in rollup.splitlines()[1:] if line.endswith("kB")}
    if "Rss" in fields:
        return fields["Rss"], fields.get("Pss")
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]), None
    return 0, None  # a zombie or a kernel thread


def _role(cmdline: bytes) -> str:
    if b"ipykernel" in cmdline:
        return "kernel"
    if b"jupyterhub-singleuser" in cmdline or b"jupyter-labhub" in cmdline:
        return "server"
    return OTHER


def student_memory(group: str = STUDENTS_GROUP) -> dict[str, Student]:
    """Every live process of every member of ``group``, by student (root reads every /proc)."""
    try:
        members = set(grp.getgrnam(group).gr_mem)
    except KeyError:
        return {}
    uids = {}
    for name in members:
        try:
            uids[pwd.getpwnam(name).pw_uid] = name
        except KeyError:
            continue
    found: dict[str, Student] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            uid = entry.stat().st_uid
            if uid not in uids:
                continue
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        memory = memory_kb(int(entry.name))
        if memory is None:
            continue
        name = uids[uid]
        found.setdefault(name, Student(name)).procs.append(Proc(int(entry.name), name, _role(cmdline), *memory))
    return found


def describe(students: dict[str, Student], names: list[str] | None = None) -> list[str]:
    """One line per student (server, kernel, total; RSS and PSS), then the mean."""
    lines, totals = [], []
    for name in names if names is not None else sorted(students):
        s = students.get(name, Student(name))
        pss = s.pss_mb()
        totals.append((s.rss_mb(), pss))
        server_pss, kernel_pss = s.pss_mb("server"), s.pss_mb("kernel")
        lines.append(
            f"  {name:<16} {len(s.procs):>2} proc  server {s.rss_mb('server'):6.1f} MB RSS"
            f"{'' if server_pss is None else f' / {server_pss:6.1f} PSS'}"
            f"  kernel {s.rss_mb('kernel'):6.1f} RSS{'' if kernel_pss is None else f' / {kernel_pss:6.1f} PSS'}"
            f"{f'  other {s.rss_mb(OTHER):6.1f} RSS' if s.rss_mb(OTHER) else ''}"
            f"  total {s.rss_mb():6.1f} RSS{'' if pss is None else f' / {pss:6.1f} PSS'}")
    if len(totals) > 1:
        rss = sum(t[0] for t in totals) / len(totals)
        pss_values = [t[1] for t in totals if t[1] is not None]
        pss_text = f" / {sum(pss_values) / len(pss_values):.1f} MB PSS" if len(pss_values) == len(totals) else ""
        lines.append(f"  mean per student: {rss:.1f} MB RSS{pss_text}")
    return lines


# ---- driving a hub -----------------------------------------------------------------------------------

def _wait(condition, timeout: float, what: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        time.sleep(0.5)
    raise TimeoutError(f"{what} not within {timeout:.0f} s")


def run_cell(hub_url: str, token: str, name: str, code: str, timeout: float = 60) -> str:
    """Start a python3 kernel on the student's server as the platform service, run ``code``, return
    its stdout. The kernel stays running (a participant's open notebook)."""
    import urllib3
    import websocket

    from tests.hubtools import execute

    headers = {"Authorization": f"token {token}", "Content-Type": "application/json"}
    base = f"{hub_url}/user/{name}/api"
    created = urllib3.request("POST", f"{base}/kernels", body=json.dumps({"name": "python3"}), headers=headers,
                              timeout=60)
    if created.status != 201:
        raise RuntimeError(f"kernel not started: {created.status} {created.data[:200]!r}")
    kernel = json.loads(created.data)["id"]
    ws = websocket.create_connection(f"{base}/kernels/{kernel}/channels".replace("http://", "ws://"),
                                     header=[f"Authorization: token {token}"], timeout=timeout)
    try:
        return execute(ws, name, code, timeout, store_history=True)
    finally:
        ws.close()


def bench_hub(count: int, idle_seconds: int, settle: float) -> int:
    import os

    from chalicelib.adapters.hub import HubClient
    from local.hub import Hub, _descendants
    from tests.hubtools import free_ports

    if os.geteuid() != 0:
        print("the isolated spawner creates Linux users: run as root (or use --running)", file=sys.stderr)
        return 2
    from tests.hubtools import remove_linux_user

    base = Path(tempfile.mkdtemp(prefix="wod-bench-memory-"))
    port, api_port, proxy_api_port = free_ports(3)
    hub = Hub(state_dir=base / "state", log_file=base / "hub.log", token=secrets.token_hex(32), port=port,
              api_port=api_port, proxy_api_port=proxy_api_port, spawner="isolated", region="us-east-1",
              env={"WOD_IDLE_MINUTES": str(idle_seconds / 60), "WOD_IDLE_CHECK_SECONDS": "2"})
    names = [f"student{secrets.randbelow(10**6):06d}m" for _ in range(count)]
    client = HubClient(hub.url, hub.token, timeout=60)
    print(f"hub log: {hub.log_file}")
    hub.start(timeout=90)
    try:
        started = time.monotonic()
        for name in names:
            client.ensure_user(name)
            client.start_server(name)
        _wait(lambda: all(client.server_state(n) == "ready" for n in names), 240, "servers ready")
        print(f"{count} server(s) ready in {time.monotonic() - started:.1f} s")
        for name in names:
            client.mark_participant(name)  # as Deploy does: the idle clock starts now
        marked = time.monotonic()
        time.sleep(settle)
        idle = student_memory()
        print(f"\nidle server, no kernel ({settle:.0f} s after start):")
        print("\n".join(describe(idle, names)))

        for name in names:
            run_cell(hub.url, hub.token, name, CELL)
        time.sleep(2)
        active = student_memory()
        print("\nafter running a cell (server + its kernel):")
        print("\n".join(describe(active, names)))
        if any(client.server_state(n) != "ready" for n in names):
            print(f"(a server was stopped before this measure: raise --idle-seconds above {idle_seconds})")

        assert hub.proc is not None
        for pid, _ in _descendants(hub.proc.pid):
            if not _is_culler(Path(f"/proc/{pid}")):
                continue
            memory = memory_kb(pid)
            if memory:
                print(f"\nthe idle culler itself (once per hub): {memory[0] / 1024:.1f} MB RSS"
                      f"{'' if memory[1] is None else f' / {memory[1] / 1024:.1f} MB PSS'}")
        _wait(lambda: all(client.server_state(n) == "none" for n in names), idle_seconds + 120,
              "servers stopped by the idle culler")
        stopped = time.monotonic() - marked
        gone = _wait(lambda: not any(student_memory().get(n) for n in names), 60, "student processes gone")
        print(f"\nafter the idle culler (timeout {idle_seconds} s): servers stopped {stopped:.0f} s after the "
              f"participants got them, their processes gone {gone:.1f} s later")
        print("\n".join(describe(student_memory(), names)))
    finally:
        for name in names:
            try:
                client.delete_user(name)
            except Exception as exc:  # the hub stops anyway; the Linux users go below
                print(f"(hub user {name} not deleted: {exc})", file=sys.stderr)
        hub.stop()
        for name in names:
            remove_linux_user(name)
    return 0


def _is_culler(entry: Path) -> bool:
    try:
        return b"jupyterhub_idle_culler" in (entry / "cmdline").read_bytes()
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--running", action="store_true",
                        help=f"measure the running stack's students (members of {STUDENTS_GROUP}); start nothing")
    parser.add_argument("--students", type=int, default=3, help="students on the bench's own hub (default 3)")
    parser.add_argument("--idle-seconds", type=int, default=60,
                        help="the bench hub's idle timeout (WOD_IDLE_MINUTES, in seconds; default 60)")
    parser.add_argument("--settle", type=float, default=5, help="seconds between server start and the idle measure")
    args = parser.parse_args(argv)
    if args.running:
        students = student_memory()
        running = {n: s for n, s in students.items() if s.procs}
        print(f"{len(running)} student(s) with processes (group {STUDENTS_GROUP}):")
        print("\n".join(describe(running)) or "  none")
        return 0
    return bench_hub(args.students, args.idle_seconds, args.settle)


if __name__ == "__main__":
    raise SystemExit(main())
