"""The hub's uid allocation and cgroup discovery, without making accounts or groups: uids go upwards
from a block of the state's own and are never handed out twice (nor one the machine has); cgroups
are found in v1, v2 and hybrid layouts, and what cannot be enforced is named."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

HUB = Path(__file__).resolve().parents[2] / "infra" / "jupyterhub"


def hub_module(name: str):
    if str(HUB) not in sys.path:
        sys.path.insert(0, str(HUB))
    spec = importlib.util.spec_from_file_location(name, HUB / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


accounts = hub_module("student_accounts")
cgroups = hub_module("student_cgroups")


def test_uids_go_upwards_from_the_states_block_and_never_repeat(tmp_path):
    uids = accounts.Uids(tmp_path / "uids.json", choose=lambda low, high: 100)
    taken = [uids.take() for _ in range(3)]
    assert taken == [100 * accounts.BLOCK, 100 * accounts.BLOCK + 1, 100 * accounts.BLOCK + 2]
    again = accounts.Uids(tmp_path / "uids.json", choose=lambda low, high: 7)  # a restart: the mark is kept
    assert again.take() == 100 * accounts.BLOCK + 3
    other = accounts.Uids(tmp_path / "other" / "uids.json", choose=lambda low, high: 200)  # another state
    assert other.take() == 200 * accounts.BLOCK


def test_a_uid_the_machine_has_is_skipped(tmp_path, monkeypatch):
    first = 300 * accounts.BLOCK
    monkeypatch.setattr(accounts, "_taken", lambda uid: uid in (first, first + 1))
    assert accounts.Uids(tmp_path / "uids.json", choose=lambda low, high: 300).take() == first + 2


def test_the_blocks_are_far_above_the_systems_uids():
    assert accounts.FIRST_BLOCK * accounts.BLOCK > 65_535 and accounts.LAST_BLOCK * accounts.BLOCK < 2 ** 31 - 1


def write(path: Path, text: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_a_hybrid_machine_takes_the_limits_v2_lacks_from_v1(tmp_path):
    v2, memory, pids, cpu = tmp_path / "unified", tmp_path / "memory", tmp_path / "pids", tmp_path / "cpu"
    write(v2 / "cgroup.controllers", "")
    groups = cgroups.StudentGroups("abcd1234", 512, 128, 1.0,
                                   found=(v2, {"memory": memory / "hub", "pids": pids, "cpu": cpu / "wod-hub"}))
    assert groups.place == {"memory": "v1", "pids": "v1", "cpu": "v1"}
    students = cpu / "wod-hub" / "wod-abcd1234-students"  # the students' low-priority CPU parent
    assert groups.directories("student1") == [v2 / "wod-abcd1234-student1", students / "wod-abcd1234-student1",
                                              memory / "hub" / "wod-abcd1234-student1", pids / "wod-abcd1234-student1"]


def test_the_students_share_the_least_cpu_weight_beside_their_hub(tmp_path):
    """However many servers a hub spawns, it and its proxy come first: the students' groups sit in
    one parent of the least weight, a sibling of the hub's own processes."""
    v2, cpu = tmp_path / "unified", tmp_path / "cpu" / "wod-hub"
    write(v2 / "cgroup.controllers", "")
    cpu.mkdir(parents=True)
    groups = cgroups.StudentGroups("abcd1234", 0, 0, 0, found=(v2, {"cpu": cpu}))
    assert groups.wanted == ["cpu"]  # no cap asked for; the priority all the same
    procs = groups.prepare("student1")
    assert (cpu / "wod-abcd1234-students" / "cpu.shares").read_text() == "2"
    assert cpu / "wod-abcd1234-students" / "wod-abcd1234-student1" / "cgroup.procs" in procs
    assert not (cpu / "wod-abcd1234-students" / "wod-abcd1234-student1" / "cpu.cfs_quota_us").exists()


def test_what_cannot_be_enforced_is_named(tmp_path):
    groups = cgroups.StudentGroups("abcd1234", 512, 128, 0, found=(None, {}))
    problems = groups.problems()
    assert any("outlive their session" in p for p in problems)
    assert any("WOD_STUDENT_MEMORY_MB" in p for p in problems) and any("WOD_STUDENT_PROCESSES" in p for p in problems)
    assert not any("WOD_STUDENT_CPUS" in p for p in problems)  # 0: off, asked for nothing


def test_the_cgroups_of_this_process_are_read_from_proc(tmp_path):
    mountinfo = write(tmp_path / "mountinfo", "\n".join([
        "30 25 0:26 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw",
        "31 25 0:27 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory",
        "32 25 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct",
    ]))
    own = write(tmp_path / "cgroup", "4:memory:/user/1\n2:cpu,cpuacct:/wod-hub\n0::/session-3\n")
    v2, v1 = cgroups.own_groups(own, mountinfo)
    assert v2 == Path("/sys/fs/cgroup/unified/session-3")
    assert v1 == {"memory": Path("/sys/fs/cgroup/memory/user/1"), "cpu": Path("/sys/fs/cgroup/cpu,cpuacct/wod-hub")}
