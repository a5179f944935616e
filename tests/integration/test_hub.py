"""The real JupyterHub (local/hub.py, isolated spawner) against moto's DynamoDB.

Drives it like the platform does: create the hub user, start the server, upload a notebook
through the proxy with the service token, store the student item; then logs in like a
participant, and checks from inside a student's kernel that other students' homes and the
platform's state are out of reach.

Needs .venv-hub, node_modules (configurable-http-proxy) and root (Linux users are created);
`make test` installs the first two.
"""
from __future__ import annotations

import json
import os
import pwd
import secrets
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest

from local.hub import Hub
from tests.hubtools import login, new_name, notebook, open_session, run_in_kernel

README = "0-ReadMeFirst.ipynb"
LANDING = f"lab/tree/{README}"
PASSWORD_ITERATIONS = 20_000  # the platform's format, cheaper than production's count


pytestmark = pytest.mark.timeout(400)


@pytest.fixture(scope="module")
def two_students(hub):
    """Students A and B, hub users with running servers, README uploaded, items active."""
    names = [new_name(), new_name()]
    passwords = {name: secrets.token_urlsafe(12) for name in names}
    for name in names:
        hub.created.append(name)
        hub.api.create_user(name)
    started = time.monotonic()
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(hub.api.start_server, names))
        list(pool.map(hub.api.wait_ready, names))
    print(f"two servers ready in {time.monotonic() - started:.1f}s")
    for name in names:
        hub.api.put(name, README, {"type": "notebook", "format": "json", "content": notebook(f"# Hello {name}")})
        hub.students.put(name, passwords[name])
    return [(name, passwords[name]) for name in names]


def test_linux_user_has_a_private_home(hub, two_students):
    for name, _ in two_students:
        account = pwd.getpwnam(name)
        home = Path(account.pw_dir)
        assert account.pw_uid >= 1000 and account.pw_shell == "/usr/sbin/nologin"
        assert home == Path("/home") / name
        st = home.stat()
        assert (st.st_uid, st.st_mode & 0o777) == (account.pw_uid, 0o700)
        readme = home / README
        assert readme.stat().st_uid == account.pw_uid  # written by the student's own server
        assert "".join(json.loads(readme.read_text())["cells"][0]["source"]) == f"# Hello {name}"


def test_login_lands_on_the_readme(hub, two_students):
    name, password = two_students[0]
    session, response = login(hub.url, name, password)
    assert response.status_code == 200, response.url
    assert response.url == f"{hub.url}/user/{name}/{LANDING}"
    assert [r.status_code for r in response.history][:1] == [302]
    who = session.get(f"{hub.url}/hub/api/user", timeout=10,
                      headers={"X-XSRFToken": session.cookies.get("_xsrf", path="/hub/")})
    assert who.status_code == 200 and who.json()["name"] == name


def test_login_accepts_capitalised_name(hub, two_students):
    name, password = two_students[1]
    _, response = login(hub.url, name.capitalize(), password)
    assert response.url == f"{hub.url}/user/{name}/{LANDING}"


def _refused(hub: Hub, name: str, password: str) -> None:
    session, response = login(hub.url, name, password)
    assert response.status_code == 403
    assert response.url == f"{hub.url}/hub/login"
    assert "Invalid username or password" in response.text
    # no session: the hub sends the visitor back to the login page
    home = session.get(f"{hub.url}/hub/home", allow_redirects=False, timeout=10)
    assert home.status_code == 302 and "/hub/login" in home.headers["Location"]


def test_wrong_password_is_refused(hub, two_students):
    name, password = two_students[0]
    _refused(hub, name, password + "x")
    _refused(hub, name, "")
    _refused(hub, two_students[1][0], password)  # A's password is not B's


def test_expired_or_inactive_student_is_refused(hub):
    expired, cleaning, unknown = new_name(), new_name(), new_name()
    for name in (expired, cleaning):
        hub.created.append(name)
        hub.api.create_user(name)
    hub.students.put(expired, "pw-expired-1", expires_in=-timedelta(seconds=1))
    hub.students.put(cleaning, "pw-cleaning-1", status="cleaning")
    _refused(hub, expired, "pw-expired-1")
    _refused(hub, cleaning, "pw-cleaning-1")
    _refused(hub, unknown, "anything")  # no item at all
    _refused(hub, "root", "anything")
    log = hub.log_file.read_text()
    assert f"WoD login refused for '{expired}'" in log and "expired" in log
    for password in ("pw-expired-1", "pw-cleaning-1"):
        assert password not in log  # passwords never reach the log


def test_a_session_ends_when_the_student_is_no_longer_active(hub):
    """Logged in, then the platform moves the student to cleaning: the still-valid hub cookie
    cannot start a server (refresh_pre_spawn) and the hub asks for a login again."""
    name, password = new_name(), "pw-session-1"
    hub.created.append(name)
    hub.api.create_user(name)
    hub.students.put(name, password)
    session = open_session(hub.url, name, password)

    hub.students.put(name, password, status="cleaning")
    spawn = session.get(f"{hub.url}/hub/spawn/{name}", allow_redirects=False, timeout=30)
    assert spawn.status_code in (302, 403), spawn.status_code
    if spawn.status_code == 302:
        assert "/hub/login" in spawn.headers["Location"]
    server = hub.api.http.get(f"{hub.api_url}/users/{name}", timeout=10).json()["servers"]
    assert server == {}  # nothing was spawned
    assert f"WoD session of {name} ended" in hub.log_file.read_text()


def test_the_platform_is_never_mistaken_for_a_stale_student(hub, two_students):
    # two_students' servers were started by the service before their items existed
    log = hub.log_file.read_text()
    assert "Cannot refresh on API requests" not in log and "cannot refresh on cross-user requests" not in log


def test_deleting_the_hub_user_removes_the_linux_user(hub):
    name = new_name()
    hub.created.append(name)
    hub.api.create_user(name)
    assert Path(f"/home/{name}").is_dir()
    hub.api.delete_user(name)
    with pytest.raises(KeyError):
        pwd.getpwnam(name)
    assert not Path(f"/home/{name}").exists()


# ---- isolation: what student A's code can reach ------------------------------------------------------------

PROBE = r"""
import json, os, pwd, socket
def attempt(fn):
    try:
        fn()
        return "allowed"
    except PermissionError:
        return "PermissionError"
    except ConnectionRefusedError:
        return "ConnectionRefusedError"
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
def read(path):
    with open(path, "rb") as fh:
        return fh.read()
result = {
    "uid": os.getuid(), "euid": os.geteuid(), "user": pwd.getpwuid(os.getuid()).pw_name, "cwd": os.getcwd(),
    "list_other_home": attempt(lambda: os.listdir(OTHER_HOME)),
    "read_other_file": attempt(lambda: read(OTHER_FILE)),
    "write_other_home": attempt(lambda: open(os.path.join(OTHER_HOME, "x"), "w")),
    "list_platform_state": attempt(lambda: os.listdir(PLATFORM_DIR)),
    "read_platform_secret": attempt(lambda: read(PLATFORM_SECRET)),
    "read_hub_db": attempt(lambda: read(HUB_DB)),
    "become_root": attempt(lambda: os.setuid(0)),
    "reach_platform_port": attempt(lambda: socket.create_connection(("127.0.0.1", PLATFORM_PORT), timeout=5).close()),
    "own_readme": "".join(json.loads(read(os.path.expanduser("~/0-ReadMeFirst.ipynb")))["cells"][0]["source"]),
    "own_home": sorted(os.listdir(os.path.expanduser("~"))),
}
print("PROBE:" + json.dumps(result))
"""


@pytest.fixture
def platform_state():
    """Stands in for the platform's state (secrets.json, hub token ...): root, 0700, next to the code
    as `.wod/` is (a student's /tmp is their own: one there would not even be seen)."""
    artifacts = Path(__file__).resolve().parents[2] / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="wod-platform-state-", dir=artifacts))
    os.chmod(path, 0o700)
    (path / "secrets.json").write_text('{"hub_token": "not-for-students"}')
    os.chmod(path / "secrets.json", 0o644)  # only the directory protects it
    yield path
    for child in path.iterdir():
        child.unlink()
    path.rmdir()


def test_a_student_cannot_reach_other_homes_or_platform_state(hub, two_students, platform_state):
    (a, a_password), (b, _) = two_students
    hub.api.put(b, "secret.txt", {"type": "file", "format": "text", "content": "B's answers"})
    assert (Path("/home") / b / "secret.txt").stat().st_mode & 0o004  # world-readable file, private home

    session, response = login(hub.url, a, a_password)
    assert response.url == f"{hub.url}/user/{a}/{LANDING}"
    code = "\n".join([
        f"OTHER_HOME = {str(Path('/home') / b)!r}",
        f"OTHER_FILE = {str(Path('/home') / b / 'secret.txt')!r}",
        f"PLATFORM_DIR = {str(platform_state)!r}",
        f"PLATFORM_SECRET = {str(platform_state / 'secrets.json')!r}",
        f"HUB_DB = {str(hub.state_dir / 'jupyterhub.sqlite')!r}",
        f"PLATFORM_PORT = {hub.blocked_port}",
        PROBE])
    stdout = run_in_kernel(hub, session, a, code)
    result = json.loads(stdout.split("PROBE:", 1)[1])

    account = pwd.getpwnam(a)
    assert (result["uid"], result["euid"], result["user"]) == (account.pw_uid, account.pw_uid, a)
    assert result["cwd"] == f"/home/{a}"
    for probe in ("list_other_home", "read_other_file", "write_other_home", "list_platform_state",
                  "read_platform_secret", "read_hub_db", "become_root"):
        if probe == "read_hub_db" and str(hub.state_dir).startswith("/tmp/"):  # the test hub's state is in
            assert result[probe].startswith("FileNotFoundError"), result[probe]  # /tmp: not the student's /tmp
            continue
        assert result[probe] == "PermissionError", (probe, result[probe])
    assert result["reach_platform_port"] == "ConnectionRefusedError"  # the embedded AWS is fenced off
    assert result["own_readme"] == f"# Hello {a}"
    assert README in result["own_home"]

    # nor through the hub: A's session gets nothing from B's server
    stolen = session.get(f"{hub.url}/user/{b}/api/contents/secret.txt", timeout=30)
    assert stolen.status_code in (403, 404) or "/hub/login" in stolen.url, (stolen.status_code, stolen.url)
    assert "B's answers" not in stolen.text


def test_a_spawn_is_answered_at_once_and_asked_again_while_it_starts_is_still_pending(hub):
    """The hub does not hold the platform's request for the spawn (it would meet the client's read
    timeout when the hub is busiest); a second ask while the server starts is not taken for ready."""
    from chalicelib.adapters.hub import HubClient

    platform = HubClient(hub.url, hub.token, timeout=10)
    name = new_name()
    hub.created.append(name)
    platform.ensure_user(name)
    asked = time.monotonic()
    first = platform.start_server(name)
    answered = time.monotonic() - asked
    again = platform.start_server(name)
    assert first.state == "pending", first  # a server takes seconds to start: not ready within the answer
    assert again.state == "pending" or platform.server_state(name) == "ready", again
    hub.api.wait_ready(name)
    assert platform.start_server(name).state == "ready"  # asked once more when it runs: ready
    print(f"the spawn was answered in {answered:.2f}s")
    platform.delete_user(name)


def test_a_kernel_talks_to_its_server_over_unix_sockets_not_ports(hub, two_students):
    """No TCP port to lose to another kernel starting in the same instant."""
    (a, a_password), _ = two_students
    session, _ = login(hub.url, a, a_password)
    code = ("import json, ipykernel.connect as c\n"
            "info = json.loads(c.get_connection_info())\n"
            "print('TRANSPORT:' + info['transport'] + ':' + info['ip'])")
    stdout = run_in_kernel(hub, session, a, code)
    transport, where = stdout.split("TRANSPORT:", 1)[1].strip().split(":", 1)
    assert transport == "ipc" and where.startswith(f"/home/{a}/"), stdout
