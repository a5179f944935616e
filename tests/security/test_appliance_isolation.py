"""A student's appliance is theirs alone (local mode, isolated spawner): it runs as the student's
Linux user, its port refuses every other student (the appliances' firewall chain), and it takes
writes only with the student's own token, which no other local user can read."""
from __future__ import annotations

import grp
import json
import pwd
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from chalicelib.adapters.appliances import LocalAppliances, listener_uids, listeners
from chalicelib.domain.errors import Unavailable
from local.hub import HUB_VENV, student_firewall
from tests.hubtools import CONNECT, free_ports, new_name, remove_linux_user

pytestmark = pytest.mark.timeout(120)
WORKSHOPS = Path(__file__).resolve().parents[2] / "workshops"
APPLIANCE = yaml.safe_load((WORKSHOPS / "WKSHP-API101" / "workshop.yaml").read_text())["appliance"]
PYTHON = str(HUB_VENV / "bin" / "python")
REFUSED = ("ConnectionResetError", "ConnectionRefusedError")  # the firewall answers with a TCP reset

# What a student's process tries (run as that student): (status or error) of each call.
CLIENT = """
import json, sys, urllib.error, urllib.request
def call(url, token=None):
    request = urllib.request.Request(url + "/items", data=b'{"name": "x", "quantity": 1}', method="POST",
                                     headers={"Content-Type": "application/json"})
    if token:
        request.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError as error:
        return type(error.reason if isinstance(error, urllib.error.URLError) else error).__name__
print(json.dumps([call(url, token) for url, token in json.loads(sys.argv[1])]))
"""


def as_student(name: str, calls: list[tuple[str, str | None]]) -> list:
    done = subprocess.run(["runuser", "-u", name, "--", PYTHON, "-c", CLIENT, json.dumps(calls)],
                          capture_output=True, text=True, timeout=60, cwd="/")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def chain_rules() -> str:
    return subprocess.run(["iptables", "-S"], capture_output=True, text=True, check=True).stdout


@pytest.fixture
def students():
    names = [new_name(), new_name()]
    for name in names:
        subprocess.run(["groupadd", "-f", "wod-students"], check=True)
        subprocess.run(["useradd", "--create-home", "--key", "HOME_MODE=0700", "--user-group", "--groups",
                        "wod-students", "--shell", "/usr/sbin/nologin", name], check=True)
    yield names
    for name in names:
        remove_linux_user(name)


@pytest.fixture
def appliances(students, tmp_path):
    firewall = student_firewall()
    chain = firewall.appliance_chain_for(free_ports(1)[0])  # a chain of this test's own
    running = LocalAppliances(WORKSHOPS, state_dir=tmp_path / "appliances", run_as_students=True, python=PYTHON,
                              fence=firewall.ApplianceFence(chain))
    running.chain = chain
    yield running
    running.stop_all()
    firewall.remove(chain)


def started(appliances, student: str, port: int) -> str:
    appliances.start("WKSHP-API101", student, APPLIANCE, port)
    deadline = time.monotonic() + 20
    while not appliances.ready(student, APPLIANCE, port):
        assert time.monotonic() < deadline, f"the appliance of {student} did not answer"
        assert appliances.running[student].poll() is None, "the appliance exited"
        time.sleep(0.1)
    return f"http://127.0.0.1:{port}"


def test_each_student_reaches_only_their_own_appliance_with_their_own_token(appliances, students):
    a, b = students
    port_a, port_b = free_ports(2)
    url_a, url_b = started(appliances, a, port_a), started(appliances, b, port_b)
    token_a, token_b = appliances.token(a), appliances.token(b)
    assert token_a != token_b and len(token_a) >= 32

    own, own_without, with_bs_token, bs_appliance = as_student(a, [
        (url_a, token_a), (url_a, None), (url_a, token_b), (url_b, token_b)])
    assert (own, own_without, with_bs_token) == (201, 401, 401)
    assert bs_appliance in REFUSED, bs_appliance
    assert as_student(b, [(url_b, token_b), (url_a, token_a)])[0] == 201
    assert as_student(b, [(url_a, token_a)])[0] in REFUSED
    assert appliances.ready(b, APPLIANCE, port_b)  # the platform (root) still checks its health


def test_the_appliance_runs_as_its_student_and_its_token_is_private(appliances, students):
    a, b = students
    started(appliances, a, free_ports(1)[0])
    pid, account = appliances.running[a].pid, pwd.getpwnam(a)
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    assert status["Uid"].split() == [str(account.pw_uid)] * 4
    assert status["Gid"].split() == [str(grp.getgrnam("wod-appliances").gr_gid)] * 4  # not the student's group
    token = appliances.token(a)
    assert token not in Path(f"/proc/{pid}/cmdline").read_text()  # every local user can read that
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert f"APPLIANCE_TOKEN={token}".encode() in environ and f"HOME={account.pw_dir}".encode() in environ
    assert not [v for v in environ if v.startswith((b"AWS_", b"WOD_HUB"))]
    peek = subprocess.run(["runuser", "-u", b, "--", "cat", f"/proc/{pid}/environ"], capture_output=True)
    assert peek.returncode != 0 and token.encode() not in peek.stdout
    kept = appliances.state_dir / f"{a}.json"
    assert kept.stat().st_mode & 0o777 == 0o600 and appliances.state_dir.stat().st_mode & 0o777 == 0o700


def test_the_rule_goes_with_the_appliance(appliances, students):
    a, b = students
    port = free_ports(1)[0]
    url = started(appliances, a, port)
    uid = pwd.getpwnam(a).pw_uid
    rules = [line for line in chain_rules().splitlines() if f"--dport {port} " in line]
    assert len(rules) == 1 and f"! --uid-owner {uid}" in rules[0]
    first = appliances.token(a)
    appliances.stop(a)
    assert f"--dport {port} " not in chain_rules()
    assert not (appliances.state_dir / f"{a}.json").exists()
    started(appliances, a, port)  # the seat's next holder: a new token, one rule again
    assert appliances.token(a) != first
    assert len([line for line in chain_rules().splitlines() if f"--dport {port} " in line]) == 1
    assert as_student(b, [(url, appliances.token(a))])[0] in REFUSED
    appliances.stop_all()
    assert appliances.chain not in chain_rules()  # at the stack's stop, the chain goes


def test_an_appliance_started_again_keeps_its_token(appliances, students):
    """A stack that restarts brings active participants' appliances back with the token their
    notebooks carry."""
    a, _ = students
    port = free_ports(1)[0]
    started(appliances, a, port)
    token = appliances.token(a)
    appliances.stop_all()  # the stack stops: the token stays on disk (0600, root's)
    again = LocalAppliances(WORKSHOPS, state_dir=appliances.state_dir, run_as_students=True, python=PYTHON,
                            fence=appliances.fence)
    try:
        started(again, a, port)
        assert again.token(a) == token
    finally:
        again.stop_all()


SQUATTER = """
import http.server, sys
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), http.server.SimpleHTTPRequestHandler).serve_forever()
"""


def test_a_port_squatted_by_another_student_is_never_taken_for_the_appliance(appliances, students):
    """Any local user may listen on a free port: another student's server on it would get the
    student's requests and token. The appliance refuses to start there and is never ready."""
    a, b = students
    port = free_ports(1)[0]
    squatter = subprocess.Popen(["runuser", "-u", b, "--", PYTHON, "-c", SQUATTER, str(port)], cwd="/",
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not listener_uids(port):
            assert time.monotonic() < deadline and squatter.poll() is None, "the squatter did not listen"
            time.sleep(0.1)
        assert listener_uids(port) == {pwd.getpwnam(b).pw_uid}
        assert not appliances.ready(a, APPLIANCE, port)
        with pytest.raises(Unavailable, match="taken by another user"):
            appliances.start("WKSHP-API101", a, APPLIANCE, port)
    finally:
        squatter.terminate()
        squatter.wait(10)
    started(appliances, a, port)  # once the port is free, the student's own appliance serves it
    assert listener_uids(port) == {pwd.getpwnam(a).pw_uid}


TAKE_OVER = """
import ctypes, json, os, sys
libc = ctypes.CDLL(None, use_errno=True)
pid = int(sys.argv[1])
found = {"attach": "ok" if libc.ptrace(16, pid, 0, 0) == 0 else os.strerror(ctypes.get_errno())}  # PTRACE_ATTACH
try:
    open(f"/proc/{pid}/mem", "rb").close()
    found["mem"] = "opened"
except OSError as error:
    found["mem"] = error.strerror
print(json.dumps(found))
"""

SYSTEM_PYTHON = "/usr/bin/python3"  # a workshop's command may name an interpreter with a user site
PLANT = """
import os, site
os.makedirs(site.getusersitepackages(), exist_ok=True)
with open(os.path.join(site.getusersitepackages(), "planted.pth"), "w") as pth:
    pth.write("import os; open(os.path.expanduser('~/ran-in-the-appliance'), 'w').write(str(os.getpid()))\\n")
"""


def test_a_student_cannot_run_code_in_their_appliance(appliances, students):
    """The appliance runs as its student's uid but outside the student's cgroups (the platform
    runs it): a student who traced it (ptrace, /proc/<pid>/mem) or had it load a module from their
    home would run code there, beyond their memory, process and CPU limits and their private /tmp."""
    a, _ = students
    port = free_ports(1)[0]
    started(appliances, a, port)
    pid = appliances.running[a].pid
    done = subprocess.run(["runuser", "-u", a, "--", PYTHON, "-c", TAKE_OVER, str(pid)], capture_output=True,
                          text=True, timeout=30, cwd="/")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"attach": "Operation not permitted", "mem": "Permission denied"}
    appliances.stop(a)

    subprocess.run(["runuser", "-u", a, "--", SYSTEM_PYTHON, "-c", PLANT], check=True, timeout=30, cwd="/")
    system = dict(APPLIANCE, command=[SYSTEM_PYTHON if part == "{python}" else part for part in APPLIANCE["command"]])
    appliances.start("WKSHP-API101", a, system, port)
    deadline = time.monotonic() + 20
    while not appliances.ready(a, system, port):
        assert time.monotonic() < deadline and appliances.running[a].poll() is None, "the appliance did not answer"
        time.sleep(0.1)
    assert not (Path(pwd.getpwnam(a).pw_dir) / "ran-in-the-appliance").exists()



def test_an_appliance_listening_on_every_address_is_fenced_over_ipv6_too(appliances, students):
    """``python -m http.server --bind ::`` (a workshop's appliance may be no more; without ``--bind``
    it takes ``::`` where getaddrinfo puts IPv6 first) listens on every address: another student
    reached it at [::1] while the fence covered 127.0.0.1 only."""
    a, b = students
    port = free_ports(1)[0]
    dual = {"command": ["{python}", "-m", "http.server", "--bind", "::", "{port}"], "port_base": port,
            "health_path": "/"}
    appliances.start("WKSHP-API101", a, dual, port)
    deadline = time.monotonic() + 20
    while not appliances.ready(a, dual, port):
        assert time.monotonic() < deadline and appliances.running[a].poll() is None, "the appliance did not answer"
        time.sleep(0.1)
    assert listeners(port, ("/proc/net/tcp6",)), "the appliance does not listen on IPv6: the test proves nothing"
    targets = json.dumps([["127.0.0.1", port], ["::1", port]])
    other = subprocess.run(["runuser", "-u", b, "--", PYTHON, "-c", CONNECT, targets], capture_output=True,
                           text=True, timeout=60, cwd="/")
    assert json.loads(other.stdout) == ["ConnectionRefusedError"] * 2, other.stderr
    own = subprocess.run(["runuser", "-u", a, "--", PYTHON, "-c", CONNECT, targets], capture_output=True,
                         text=True, timeout=60, cwd="/")
    assert json.loads(own.stdout) == ["connected"] * 2, own.stderr
    appliances.stop(a)
    assert f"--dport {port} " not in subprocess.run(["ip6tables", "-S"], capture_output=True, text=True).stdout
