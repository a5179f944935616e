"""infra/hub/bootstrap.sh on this machine: it installs the hub host into a fresh prefix (venv with
JupyterHub, configurable-http-proxy from npm, the hub's files), closes the instance metadata to
every user but root and starts the hub in the foreground; the platform's hub client provisions a
student through it with the service token, the student logs in with the password whose hash is in
the students table (embedded AWS) and runs a cell as their own Linux user, which cannot reach the
metadata endpoint; the cleanup removes the account and its home; stopping the hub leaves no
process; running the script again changes nothing."""
from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest

from chalicelib.adapters.hub import HubClient
from local.hub import Hub
from tests.hubtools import Students, free_ports, login, new_name, notebook, remove_linux_user, run_in_kernel

ROOT = Path(__file__).resolve().parents[2]
BOOTSTRAP = ROOT / "infra" / "hub" / "bootstrap.sh"
LANDING = "lab/tree/0-ReadMeFirst.ipynb"
IMDS = "169.254.169.254"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="bootstrap.sh installs users and iptables rules: root")

PROBE = f"""
import json, os, pwd, socket
try:
    socket.create_connection(({IMDS!r}, 80), timeout=5).close()
    imds = "reached"
except Exception as exc:
    imds = type(exc).__name__
home = sorted(os.listdir(os.path.expanduser("~")))
print("PROBE:" + json.dumps({{"user": pwd.getpwuid(os.getuid()).pw_name, "home": home, "imds": imds,
                             "server": os.environ.get("JUPYTERHUB_SERVICE_URL")}}))
"""


def run_bootstrap(*args: str, env: dict[str, str], **popen) -> subprocess.Popen:
    return subprocess.Popen(["bash", str(BOOTSTRAP), *args], env=env, stdin=subprocess.DEVNULL, **popen)


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WOD_")}
    env.pop("VIRTUAL_ENV", None)
    env.pop("PYTHONPATH", None)
    return env


def remove_chain(chain: str) -> None:
    for tool in ("iptables", "ip6tables"):
        if not shutil.which(tool):
            continue
        while subprocess.run([tool, "-D", "OUTPUT", "-j", chain], capture_output=True).returncode == 0:
            pass
        subprocess.run([tool, "-F", chain], capture_output=True)
        subprocess.run([tool, "-X", chain], capture_output=True)


def processes_under(prefix: Path) -> list[str]:
    """Command lines of live processes that run something installed under ``prefix``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if str(prefix) in cmdline:
                found.append(f"{entry.name}: {cmdline[:200]}")
    return found


def wait_for_api(hub: Hub, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert hub.proc is not None
        if hub.proc.poll() is not None:
            pytest.fail(f"bootstrap.sh exited with {hub.proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(f"{hub.api_url}/", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    pytest.fail(f"the hub did not answer within {timeout}s:\n{log.read_text()[-4000:]}")


@pytest.mark.timeout(600)
def test_bootstrap_installs_a_hub_that_provisions_a_student_and_stops_clean(embedded_aws, installed_hub_host, tmp_path):
    prefix = installed_hub_host.prefix  # bootstrap.sh's first run: the session's one install (tests/hubhost.py)
    assert "JupyterHub into" in installed_hub_host.log and "configurable-http-proxy into" in installed_hub_host.log
    print(f"installed in {installed_hub_host.seconds:.0f}s")
    table = f"host-students-{uuid.uuid4().hex[:8]}"
    students = Students(embedded_aws.endpoint, table)
    token = secrets.token_hex(32)
    (tmp_path / "token").write_text(token)
    port, api_port, proxy_api_port = free_ports(3)
    chain = f"WOD-IMDS-T{os.getpid()}"
    log = tmp_path / "bootstrap.log"
    (tmp_path / "events_key").write_text(secrets.token_urlsafe(32))
    args = ["--prefix", str(prefix), "--table", table, "--hub-token-file", str(tmp_path / "token"),
            "--events-url", "http://127.0.0.1:9/api/events", "--events-key-file", str(tmp_path / "events_key"),
            "--region", "us-east-1", "--aws-endpoint", embedded_aws.endpoint, "--port", str(port),
            "--api-port", str(api_port), "--proxy-api-port", str(proxy_api_port), "--imds-chain", chain]
    # Hub.stop: the hub's whole process tree and its student firewall chain go
    hub = Hub(state_dir=prefix / "state", log_file=log, token=token, port=port, api_port=api_port,
              proxy_api_port=proxy_api_port, spawner="isolated")
    name, password = new_name(), secrets.token_urlsafe(12)
    try:
        with open(log, "wb") as out:
            hub.proc = run_bootstrap(*args, "--foreground", env=clean_env(), stdout=out, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        started = time.monotonic()
        wait_for_api(hub, log, timeout=300)
        print(f"started over the installed prefix in {time.monotonic() - started:.0f}s")
        text = log.read_text()
        assert "TLS: skipped" in text and f"chain {chain}" in text
        assert "JupyterHub already installed" in text and "configurable-http-proxy into" not in text
        assert (prefix / "state").stat().st_mode & 0o777 == 0o700
        assert (prefix / "hub.env").stat().st_mode & 0o777 == 0o600
        assert token not in (prefix / "hub.env").read_text()
        assert (tmp_path / "events_key").read_text() not in (prefix / "hub.env").read_text()

        # the platform's provisioning: hub user (+ Linux account), server, notebook, with the service token
        client = HubClient(hub.url, token, timeout=60)
        client.ensure_user(name)
        client.ensure_running(name, wait=120)
        client.put_contents(name, "0-ReadMeFirst.ipynb", {"type": "notebook", "format": "json",
                                                          "content": notebook(f"# Hello {name}")})
        home = Path(pwd.getpwnam(name).pw_dir)
        assert home.stat().st_mode & 0o777 == 0o700
        students.put(name, password)
        print(f"provisioned at {time.monotonic() - started:.0f}s")

        session, response = login(hub.url, name, password)
        assert response.url == f"{hub.url}/user/{name}/{LANDING}"
        result = json.loads(run_in_kernel(hub, session, name, PROBE, timeout=60).split("PROBE:", 1)[1])
        assert result["user"] == name
        assert "0-ReadMeFirst.ipynb" in result["home"]
        assert result["imds"] == "ConnectionRefusedError"  # rejected by the metadata block, not reached
        # the server listens outside the ephemeral ports another program's bind(0) could take first
        assert 20000 <= urllib.parse.urlsplit(result["server"]).port <= 29999, result["server"]
        assert login(hub.url, name, "not-the-password")[1].url.endswith("/hub/login")

        print(f"logged in and ran a cell at {time.monotonic() - started:.0f}s")
        # the cleanup: the hub user goes with the Linux account and its home
        client.delete_user(name)
        with pytest.raises(KeyError):
            pwd.getpwnam(name)
        assert not home.exists()

        hub.stop()
        time.sleep(0.5)
        assert processes_under(prefix) == []
        print(f"cleaned and stopped at {time.monotonic() - started:.0f}s")

        # again, over the installed prefix: nothing to install, one metadata rule, one jump to it
        again = subprocess.run(["bash", str(BOOTSTRAP), *args], env=clean_env(), capture_output=True, text=True,
                               timeout=120)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "JupyterHub already installed" in again.stdout
        assert "configurable-http-proxy into" not in again.stdout
        rules = subprocess.run(["iptables", "-S", chain], capture_output=True, text=True, check=True).stdout
        assert rules.count(f"-d {IMDS}/32") == 1 and "--uid-owner 0 -j REJECT" in rules
        jumps = subprocess.run(["iptables", "-S", "OUTPUT"], capture_output=True, text=True, check=True).stdout
        assert jumps.count(f"-j {chain}") == 1
    finally:
        hub.stop()
        remove_linux_user(name)
        remove_chain(chain)


@pytest.mark.parametrize("args, message", [
    ([], "--table"),
    (["--table", "wod-students"], "--hub-token-secret or --hub-token-file is required"),
    (["--table", "wod-students", "--hub-token-secret", "/wod/hub-token/aws", "--hub-token-file", "/etc/hostname"],
     "not both"),
    (["--table", "wod-students", "--hub-token-secret", "s", "--tls-cert", "/etc/hostname"], "go together"),
    (["--table", "wod-students", "--hub-token-secret", "s", "--port", "70000"], "not a TCP port"),
    (["--table", "wod-students", "--hub-token-secret", "s", "--region", "mars"], "not an AWS region"),
    (["--table", "wod-students", "--hub-token-secret", "s", "--prefix", "relative"], "absolute path"),
    (["--nonsense"], "unknown option"),
    (["--table", "wod-students", "--hub-token-secret", "s", "--prefix", "/opt/wod hub"], "--prefix"),
    (["--table", "wod-students", "--hub-token-secret", "s", "--prefix", "/opt/$(id)"], "--prefix"),
    (["--table", "wod-students", "--hub-token-secret", "/wod/hub-token/aws $(touch /tmp/x)"], "--hub-token-secret"),
    (["--table", "wod-students", "--hub-token-secret", "s\nWOD_HUB_SPAWNER=simple"], "--hub-token-secret"),
    (["--table", "wod-students", "--hub-token-secret", "s", "--aws-endpoint", "http://x;id"], "--aws-endpoint"),
    (["--table", "wod-students", "--hub-token-secret", "s", "--public-ip", "1.2.3.4 x"], "--public-ip"),
    (["--table", "wod-students", "--hub-token-secret", "s", "--events-url", "https://wod.example/api/events"],
     "--events-url needs --events-key-secret or --events-key-file"),
    (["--table", "wod-students", "--hub-token-secret", "s", "--events-url", "https://x/$(id)", "--events-key-secret",
      "k"], "--events-url"),
    (["--table", "wod-students", "--hub-token-secret", "s", "--events-key-secret", "k $(id)"], "--events-key-secret"),
    (["--table", "wod-students", "--hub-token-secret", "s", "--events-key-secret", "k", "--events-key-file",
      "/etc/hostname"], "not both"),
    (["--table", "wod-students", "--hub-token-secret", "s", "--email", '"a@b.org'], "--email"),
])
def test_bootstrap_refuses_bad_arguments_before_changing_anything(args, message, tmp_path):
    done = subprocess.run(["bash", str(BOOTSTRAP), *args], capture_output=True, text=True, timeout=30,
                          env=clean_env(), cwd=tmp_path)
    assert done.returncode == 2
    assert message in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_bootstrap_explains_itself():
    done = subprocess.run(["bash", str(BOOTSTRAP), "--help"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0
    assert "--foreground" in done.stdout and "--hub-token-secret" in done.stdout
