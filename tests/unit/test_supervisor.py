"""The local stack's supervisor: a part that stops is reported and started again if it keeps no
state, the stack stops with the part's name if it does; a part that fails to come back is
tried again after a growing pause while the others stay watched; a stop reaches every part,
the stateful one last. Fake parts: no process is started."""
from __future__ import annotations

import io
import time

import pytest

from local.supervisor import ChildFailed, Supervisor


class FakePart:
    """A part whose process the test kills and revives by hand."""

    def __init__(self, name: str, restartable: bool = True, *, comes_back: bool = True, log: list | None = None):
        self.name, self.description, self.restartable = name, f"the {name} part", restartable
        self.start_timeout, self.stop_timeout = 5.0, 1.0
        self.started_at = 0.0
        self.code: int | None = None
        self.comes_back = comes_back
        self.spawned = 0
        self.log = log if log is not None else []

    def spawn(self) -> None:
        self.spawned += 1
        self.started_at = time.monotonic()
        self.code = None if self.comes_back or self.spawned == 1 else 3

    def exit_code(self) -> int | None:
        return self.code

    def poll_ready(self) -> dict | None:
        return {"spawn": self.spawned} if self.code is None else None

    def kill(self) -> None:
        pass

    def terminate(self) -> None:
        self.log.append(("terminate", self.name))

    def wait_stopped(self, deadline: float) -> int | None:
        self.log.append(("stopped", self.name))
        return 0


def supervisor(tmp_path, *parts):
    out, err = io.StringIO(), io.StringIO()
    sup = Supervisor(tmp_path, out=out, err=err, first_pause=0.01, longest_pause=0.04)
    for part in parts:
        assert sup.start(part) == {"spawn": 1}
    return sup, out, err


def watch_until(sup, condition, seconds=5.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not sup.watch_once() or condition():
            return
        time.sleep(0.01)


def test_a_part_without_state_is_started_again(tmp_path):
    aws, web = FakePart("aws", restartable=False), FakePart("web")
    sup, out, err = supervisor(tmp_path, aws, web)
    web.code = -9  # SIGKILL
    assert sup.watch_once()  # noticed: started again
    assert web.spawned == 2
    assert sup.watch_once()  # ready again
    assert sup.failed is None and sup.restarts == {"web": 1}
    text = out.getvalue()
    assert "web (the web part) stopped unexpectedly (exit code -9); restarting it ..." in text
    assert "web is back." in text
    assert (tmp_path / "run" / "parts.json").exists()


def test_the_part_that_holds_the_state_stops_the_stack_with_its_name(tmp_path):
    aws, web = FakePart("aws", restartable=False), FakePart("web")
    sup, out, err = supervisor(tmp_path, aws, web)
    aws.code = -9
    assert sup.watch_once() is False
    assert sup.failed == "aws"
    message = err.getvalue()
    assert "aws (the aws part) stopped unexpectedly (exit code -9); stopping the platform" in message
    assert "aws.log" in message and "make run" in message


def test_a_part_that_does_not_come_back_is_tried_again_while_the_others_stay_watched(tmp_path):
    aws, mail = FakePart("aws", restartable=False), FakePart("mail", comes_back=False)
    sup, out, err = supervisor(tmp_path, aws, mail)
    mail.code = 1
    watch_until(sup, lambda: mail.spawned >= 4)
    assert mail.spawned >= 4 and sup.failed is None
    assert "mail exited with code 3; next try in" in out.getvalue()
    aws.code = -9  # still watched while mail keeps failing
    watch_until(sup, lambda: False, seconds=1)
    assert sup.failed == "aws"


def test_a_part_that_fails_to_start_is_named(tmp_path):
    sup, out, err = supervisor(tmp_path)
    broken = FakePart("workers", comes_back=False)
    broken.spawned = 1  # its first start fails too
    with pytest.raises(ChildFailed, match="workers exited with code 3 before it was ready"):
        sup.start(broken)


def test_stop_reaches_every_part_and_the_stateful_one_last(tmp_path):
    log: list = []
    parts = [FakePart("aws", restartable=False, log=log), FakePart("workers", log=log), FakePart("web", log=log)]
    sup, out, err = supervisor(tmp_path, *parts)
    sup.stop()
    assert log == [("terminate", "web"), ("terminate", "workers"), ("stopped", "web"), ("stopped", "workers"),
                   ("terminate", "aws"), ("stopped", "aws")]
    assert not (tmp_path / "run" / "parts.json").exists()


def test_the_hub_yields_the_cpu_through_its_niceness_and_a_cgroup(tmp_path, monkeypatch):
    """Niceness alone does not reach the student servers under autogroup (each is a session of
    its own): the hub process also moves into a CPU cgroup of the same weight (fake cgroupfs)."""
    from local import part

    niceness = [0]
    monkeypatch.setattr(part.os, "nice", lambda step: niceness.__setitem__(0, niceness[0] + step) or niceness[0])
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.shares").write_text("1024")
    assert part.lower_cpu_priority(10, 50, root=v1) == f"nice 10, cgroup {v1 / 'cpu' / 'wod-hub'} cpu.shares=512"
    assert (v1 / "cpu" / "wod-hub" / "cgroup.procs").read_text() == str(part.os.getpid())

    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "cgroup.controllers").write_text("cpuset cpu io memory pids")
    (v2 / "cgroup.procs").write_text("1")
    assert part.lower_cpu_priority(10, 50, root=v2).endswith("cpu.weight=50")
    assert (v2 / "cgroup.subtree_control").read_text() == "+cpu"

    assert part.lower_cpu_priority(10, 50, root=tmp_path / "none") == "nice 10"  # no cgroup: niceness only
