"""One install of the hub host by ``infra/hub/bootstrap.sh`` per test session (about 100 s the first
time): ``tests/integration/test_hub_bootstrap.py`` and the deploy rehearsal both run bootstrap.sh
again over it, which installs nothing more."""
from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BOOTSTRAP = ROOT / "infra" / "hub" / "bootstrap.sh"


@dataclass(frozen=True)
class Installed:
    prefix: Path
    log: str  # what the installing run printed
    seconds: float


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WOD_", "AWS_"))}
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


@pytest.fixture(scope="session")
def installed_hub_host(tmp_path_factory) -> Installed:
    """bootstrap.sh's first run into a fresh prefix students can traverse (pytest's own tmp dirs
    are 0700): installed, started in the foreground until its API answers, stopped."""
    from local.hub import Hub
    from tests.hubtools import free_ports

    if os.geteuid() != 0:
        pytest.skip("bootstrap.sh installs users and iptables rules: root")
    artifacts = ROOT / "test-artifacts"  # outside /tmp: each student's server has a /tmp of its own
    artifacts.mkdir(exist_ok=True)
    prefix = Path(tempfile.mkdtemp(prefix="wod-hub-host-", dir=artifacts))
    os.chmod(prefix, 0o755)
    work = tmp_path_factory.mktemp("hub-install")
    (work / "token").write_text(secrets.token_hex(32))
    port, api_port, proxy_api_port = free_ports(3)
    chain = f"WOD-IMDS-I{os.getpid() % 100000}"
    log = work / "bootstrap.log"
    hub = Hub(state_dir=prefix / "state", log_file=log, token="-", port=port, api_port=api_port,
              proxy_api_port=proxy_api_port, spawner="isolated")
    started = time.monotonic()
    try:
        with open(log, "wb") as out:
            hub.proc = subprocess.Popen(
                ["bash", str(BOOTSTRAP), "--prefix", str(prefix), "--table", "install-students",
                 "--hub-token-file", str(work / "token"), "--region", "us-east-1", "--port", str(port),
                 "--api-port", str(api_port), "--proxy-api-port", str(proxy_api_port), "--imds-chain", chain,
                 "--foreground"], env=clean_env(), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
        deadline = started + 400
        while True:
            if hub.proc.poll() is not None:
                pytest.fail(f"bootstrap.sh exited with {hub.proc.returncode}:\n{log.read_text()[-4000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/hub/api/", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the hub did not answer:\n{log.read_text()[-4000:]}")
            time.sleep(0.5)
        seconds = time.monotonic() - started
    finally:
        hub.stop()
        remove_chain(chain)
    yield Installed(prefix, log.read_text(), seconds)
    shutil.rmtree(prefix, ignore_errors=True)
