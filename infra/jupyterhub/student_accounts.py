"""Students' Linux accounts: made with a uid nobody had before, with a home of a fixed size, and
removed only once nothing of theirs is left.

* **uids are never handed out twice.** ``useradd`` reuses the highest free uid, so a process that
  outlived one participant became the next participant's. Here each hub state takes uids upwards
  from a block of 65,536 of its own, chosen at random when the state is made (far above the
  system's range, so another hub state on the machine takes another block), and keeps its
  high-water mark in ``uids.json``: a uid once used by the state is never used again. A uid
  another ``useradd`` took meanwhile (a race with another hub) is skipped, and the next one tried.
* **A home of fixed size** (``disk_mb``): an ext4 image in the hub's state (sparse: it takes only
  what is written), mounted on ``/home/<student>`` with ``nosuid,nodev``; a full home is the
  student's problem only. After a reboot it is mounted again before the server starts.
* **Removal** kills whatever still runs as the uid (outside the student's cgroups: nothing the
  student started, but what the platform ran as them), deletes what the uid left in the shared
  world-writable directories, unmounts and deletes the home image, then ``userdel``; it raises
  while anything of the uid still runs, so the account is removed later, never half.
"""
from __future__ import annotations

import fcntl
import grp
import json
import os
import pwd
import random
import shutil
import subprocess
import time
from pathlib import Path
from typing import Callable

BLOCK = 65_536
FIRST_BLOCK, LAST_BLOCK = 64, 32_000  # uids from 4,194,304 to about 2.1 billion: never the system's
SHARED_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")  # world-writable on a Debian host
NOLOGIN = "/usr/sbin/nologin"


class Uids:
    """This hub state's uids: ``take()`` the next one nobody on the machine has had from it."""

    def __init__(self, path: Path, choose: Callable[[int, int], int] = random.randint):
        self.path, self.choose = Path(path), choose

    def take(self) -> int:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # two hubs of one state (a restart overlapping) agree
            try:
                state = json.loads(self.path.read_text())
            except (OSError, ValueError):
                state = {"next": self.choose(FIRST_BLOCK, LAST_BLOCK) * BLOCK}
            uid = int(state["next"])
            while _taken(uid):
                uid += 1
            state["next"] = uid + 1
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(state))
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
            return uid


def _taken(number: int) -> bool:
    for lookup in (pwd.getpwuid, grp.getgrgid):
        try:
            lookup(number)
            return True
        except KeyError:
            pass
    return False


def processes_of(uid: int) -> list[int]:
    """Every process whose real, effective, saved or filesystem uid is ``uid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("Uid:"):
                    if str(uid) in line.split()[1:]:
                        found.append(int(entry.name))
                    break
        except OSError:
            continue
    return found


class Accounts:
    """Create and remove students' accounts. ``disk_mb`` 0: a plain home directory, no size limit."""

    def __init__(self, uids: Uids, group: str, homes_dir: Path | None = None, disk_mb: int = 0,
                 log=None, home_root: Path = Path("/home")):
        self.uids, self.group, self.disk_mb = uids, group, disk_mb
        self.homes_dir = Path(homes_dir) if homes_dir else None
        self.home_root = home_root
        self.log = log

    def image(self, name: str) -> Path | None:
        return self.homes_dir / f"{name}.img" if self.homes_dir and self.disk_mb > 0 else None

    def create(self, name: str, attempts: int = 20) -> pwd.struct_passwd:
        """``useradd`` with a fresh uid (the next one if a concurrent ``useradd`` took it), then the home."""
        sized = self.image(name) is not None
        _clear_home(self.home_root / name)
        for _ in range(attempts):
            uid = self.uids.take()
            command = ["useradd", "--uid", str(uid), "--user-group", "--no-log-init", "--shell", NOLOGIN,
                       "--groups", self.group, "--comment", "Workshops-on-Demand student",
                       "--home-dir", str(self.home_root / name)]
            command += ["--no-create-home"] if sized else ["--create-home", "--key", "HOME_MODE=0700"]
            done = subprocess.run(command + [name], capture_output=True, text=True)
            if done.returncode == 0:
                break
            if done.returncode in (4, 10) or "in use" in done.stderr or "lock" in done.stderr:
                time.sleep(0.05)  # uid taken meanwhile, or /etc/passwd locked by another useradd
                continue
            raise RuntimeError(f"useradd {name} failed ({done.returncode}): {done.stderr.strip()}")
        else:
            raise RuntimeError(f"useradd {name}: no free uid after {attempts} tries")
        account = pwd.getpwnam(name)
        if sized:
            self.mount_home(account, fresh=True)
        return account

    def mount_home(self, account: pwd.struct_passwd, fresh: bool = False) -> None:
        """Make (``fresh``) and mount the student's home image on their home; nothing if mounted."""
        image, home = self.image(account.pw_name), Path(account.pw_dir)
        if image is None or _mounted(home):
            return
        if fresh or not image.exists():
            self.homes_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            image.unlink(missing_ok=True)
            with open(os.open(image, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as handle:
                handle.truncate(self.disk_mb * 1024 * 1024)  # sparse: only what is written takes room
            _run(["mkfs.ext4", "-q", "-F", "-m", "0", "-E",
                  f"root_owner={account.pw_uid}:{account.pw_gid},lazy_itable_init=1,lazy_journal_init=1",
                  str(image)])
        home.mkdir(mode=0o700, exist_ok=True)
        _run(["mount", "-o", "loop,nosuid,nodev", str(image), str(home)])
        os.chmod(home, 0o700)
        if fresh:
            shutil.rmtree(home / "lost+found", ignore_errors=True)
            _copy_skeleton(home, account.pw_uid, account.pw_gid)

    def remove(self, name: str, timeout: float = 20.0) -> None:
        """Remove the account and everything of its uid; RuntimeError (nothing removed) while
        something of the uid still runs at ``timeout``."""
        try:
            account = pwd.getpwnam(name)
        except KeyError:
            account = None
        if account is not None:
            deadline = time.monotonic() + timeout
            while processes_of(account.pw_uid):
                if time.monotonic() > deadline:
                    left = processes_of(account.pw_uid)
                    raise RuntimeError(f"processes of {name} (uid {account.pw_uid}) survive: {left}")
                subprocess.run(["pkill", "-KILL", "-U", str(account.pw_uid)], capture_output=True)
                time.sleep(0.05)
            for shared in SHARED_DIRS:
                _remove_owned(Path(shared), account.pw_uid)
            home = Path(account.pw_dir)
            if _unmount(home):
                home.rmdir()  # the mount point (root's, so userdel would leave it): empty now
        image = self.image(name)
        if image is not None:
            image.unlink(missing_ok=True)
        if account is not None:
            done = subprocess.run(["userdel", "--remove", name], capture_output=True, text=True)
            if done.returncode not in (0, 12):  # 12: the home could not be removed (already gone)
                raise RuntimeError(f"userdel {name} failed ({done.returncode}): {done.stderr.strip()}")


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()}")


def _unmount(path: Path) -> bool:
    """Unmount whatever is mounted on ``path`` (lazily if busy); whether anything was."""
    found = False
    while _mounted(path):
        found = True
        if subprocess.run(["umount", str(path)], capture_output=True).returncode:
            _run(["umount", "--lazy", str(path)])
    return found


def _clear_home(home: Path) -> None:
    """Before an account is made: a home left at its place (a home image still mounted, or a
    directory of an account that is gone) goes, so the new account starts empty."""
    _unmount(home)
    try:
        owner = home.lstat().st_uid
    except FileNotFoundError:
        return
    if owner == 0 or not _taken(owner):
        shutil.rmtree(home, ignore_errors=True)


def _mounted(path: Path) -> bool:
    target = str(path)
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if len(fields) > 4 and fields[4].replace("\\040", " ") == target:
            return True
    return False


def _copy_skeleton(home: Path, uid: int, gid: int, skeleton: Path = Path("/etc/skel")) -> None:
    if skeleton.is_dir():
        shutil.copytree(skeleton, home, symlinks=True, dirs_exist_ok=True)
    for root, dirs, files in os.walk(home):
        for entry in [root, *(os.path.join(root, d) for d in dirs), *(os.path.join(root, f) for f in files)]:
            os.lchown(entry, uid, gid)


def _remove_owned(top: Path, uid: int) -> None:
    """Delete what ``uid`` owns under ``top`` (one file system, no symlink followed). A student
    can only have written where anyone may write, or below what is theirs: only such directories
    are looked into."""
    try:
        device = top.stat().st_dev
    except OSError:
        return
    for root, dirs, files in os.walk(top):
        keep = []
        for entry in dirs:
            path = os.path.join(root, entry)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if st.st_dev != device:
                continue
            if st.st_uid == uid:
                shutil.rmtree(path, ignore_errors=True)
            elif st.st_mode & 0o002 and not os.path.islink(path):
                keep.append(entry)
        dirs[:] = keep
        for entry in files:
            path = os.path.join(root, entry)
            try:
                if os.lstat(path).st_uid == uid:
                    os.unlink(path)
            except OSError:
                pass


def remove_all(state: Path) -> list[str]:
    """Every account a hub state made (``<state>/accounts``), removed as the hub removes one: its
    groups killed, its processes gone, its home unmounted; for ``make clean``."""
    from student_cgroups import StudentGroups

    records = Path(state) / "accounts"
    hub_id = (Path(state) / "hub_id").read_text().strip() if (Path(state) / "hub_id").exists() else ""
    accounts = Accounts(Uids(Path(state) / "uids.json"), "wod-students", Path(state) / "homes", disk_mb=1)
    removed = []
    for record in sorted(records.iterdir()) if records.is_dir() else []:
        if hub_id:
            StudentGroups(hub_id).kill(record.name)
        accounts.remove(record.name)
        record.unlink()
        removed.append(record.name)
    return removed


if __name__ == "__main__":  # python3 student_accounts.py remove-all <hub state dir>
    import sys

    if len(sys.argv) != 3 or sys.argv[1] != "remove-all":
        raise SystemExit("usage: student_accounts.py remove-all <hub state dir>")
    for name in remove_all(Path(sys.argv[2])):
        print(f"removed student account {name}")
