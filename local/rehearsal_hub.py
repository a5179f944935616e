"""The rehearsal's JupyterHub and addresses: the location's hub set up by ``infra/hub/bootstrap.sh``
on this machine (as on a VM of your own, ``HubHost=false``), reading the students table and its
token secret with the hub host role's credentials; HTTPS for it and for the API function with a
certificate made for ``localhost`` (the stack's ``PublicUrl`` and ``HubUrl`` name this machine);
a participant's login as a browser does it.

The hub runs under a keeper of its own (``python -m local.rehearsal_hub SPEC``), which stops it when
its standard input closes: the rehearsal holds the other end, so even one killed outright leaves no
hub, proxy or student server running, and no fence in iptables.
"""
from __future__ import annotations

import datetime
import fcntl
import http.cookiejar
import ipaddress
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BOOTSTRAP = ROOT / "infra" / "hub" / "bootstrap.sh"
LANDING = "lab/tree/0-ReadMeFirst.ipynb"
IMDS_CHAIN = "WOD-IMDS-R"  # + the rehearsal's process id (modulo 100000): its hub's metadata fence


def imds_chain(pid: int) -> str:
    return f"{IMDS_CHAIN}{pid % 100000}"


def stale_chains(output_rules: str, running: set[int]) -> list[str]:
    """The metadata fences (``iptables -S OUTPUT``'s jumps) of rehearsals no longer running: one
    killed outright could not remove its own."""
    numbers = {pid % 100000 for pid in running}
    found = re.findall(rf"-j ({IMDS_CHAIN}(\d+))\b", output_rules)
    return sorted({chain for chain, number in found if int(number) not in numbers})


def remove_chain(chain: str) -> None:
    for tool in ("iptables", "ip6tables"):
        while subprocess.run([tool, "-D", "OUTPUT", "-j", chain], capture_output=True).returncode == 0:
            pass
        subprocess.run([tool, "-F", chain], capture_output=True)
        subprocess.run([tool, "-X", chain], capture_output=True)


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for ``localhost`` and 127.0.0.1 (its own trust anchor)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "tls-cert.pem", directory / "tls-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


class HubHost:
    """bootstrap.sh into ``prefix`` (installs what is missing, then starts the hub in the foreground),
    under its keeper (:func:`keep`)."""

    def __init__(self, prefix: Path, log: Path, *, table: str, secret: str, region: str, endpoint: str,
                 cert: Path, key: Path, port: int, api_port: int, proxy_api_port: int, credentials: dict[str, str]):
        self.prefix, self.log, self.port = prefix, log, port
        self.chain = imds_chain(os.getpid())
        args = ["--prefix", str(prefix), "--table", table, "--hub-token-secret", secret, "--region", region,
                "--aws-endpoint", endpoint, "--tls-cert", str(cert), "--tls-key", str(key), "--tls-ca", str(cert),
                "--public-name", "localhost", "--port", str(port),
                "--api-port", str(api_port), "--proxy-api-port", str(proxy_api_port),
                "--imds-chain", self.chain, "--foreground"]
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("AWS_", "WOD_", "POWERTOOLS_")) and k not in ("VIRTUAL_ENV", "PYTHONPATH")}
        env.update(credentials)  # the instance role's, as the metadata service would give them
        self.spec = {"prefix": str(prefix), "log": str(log), "port": port, "api_port": api_port,
                     "proxy_api_port": proxy_api_port, "chain": self.chain, "env": env,
                     "command": ["bash", str(BOOTSTRAP), *args]}
        self.keeper: subprocess.Popen | None = None

    def start(self, context: ssl.SSLContext, patience: float = 420.0) -> float:
        if os.geteuid() != 0:
            raise RuntimeError("bootstrap.sh runs as root (it makes a Linux user per student and iptables rules)")
        self.prefix.mkdir(parents=True, exist_ok=True)
        self.prefix.chmod(0o755)  # students' servers run the venv's interpreter
        self.lock = open(self.prefix / ".rehearsal.lock", "w")
        try:
            fcntl.flock(self.lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(f"another rehearsal's hub runs from {self.prefix}: give --hub-prefix") from None
        self.stop_leftovers()
        spec = self.log.with_name("hub-keeper.json")
        spec.write_text(json.dumps(self.spec))
        spec.chmod(0o600)
        self.log.write_bytes(b"")
        started = time.monotonic()
        with open(self.log, "ab") as out:  # the keeper holds the prefix's lock until the hub is stopped
            self.keeper = subprocess.Popen([sys.executable, "-m", "local.rehearsal_hub", str(spec)], cwd=ROOT,
                                           stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=out,
                                           pass_fds=(self.lock.fileno(),))
        deadline = started + patience
        while time.monotonic() < deadline:
            if self.keeper.poll() is not None:
                raise RuntimeError(f"bootstrap.sh exited {self.keeper.returncode}: {self.tail()}")
            try:
                with urllib.request.urlopen(f"https://localhost:{self.port}/hub/login", timeout=3,
                                            context=context) as answer:
                    if answer.status == 200:
                        return time.monotonic() - started
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.5)
        raise RuntimeError(f"the hub did not answer within {patience:.0f}s: {self.tail()}")

    def stop_leftovers(self) -> None:
        """What a rehearsal that died left running from this prefix (its hub, proxy, culler):
        with the lock held, nothing else runs from here; and the metadata fences of every
        rehearsal no longer running."""
        rehearsals = set()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if "local.rehearsal" in command:
                rehearsals.add(int(entry.name))
            if f"{self.prefix}/" in command:
                try:
                    os.kill(int(entry.name), signal.SIGKILL)
                except OSError:
                    pass
        (self.prefix / "state" / "proxy.pid").unlink(missing_ok=True)
        listed = subprocess.run(["iptables", "-S", "OUTPUT"], capture_output=True, text=True).stdout
        for chain in stale_chains(listed, rehearsals | {os.getpid()}):
            remove_chain(chain)

    def tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-3000:]
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.keeper is not None and self.keeper.stdin is not None:
            self.keeper.stdin.close()  # the keeper stops the hub
            try:
                self.keeper.wait(90)
            except subprocess.TimeoutExpired:
                self.keeper.kill()
        remove_chain(self.chain)


def keep(spec: dict[str, Any]) -> int:
    """Run the hub's ``command`` (bootstrap.sh, which ends in the hub) until it ends or this
    process's standard input closes, then stop the hub as the local stack stops one (servers,
    proxy, students' firewall, cgroups) and remove its metadata fence. Returns the command's exit
    status if it ended by itself."""
    from local.hub import Hub

    hub = Hub(state_dir=Path(spec["prefix"]) / "state", log_file=spec["log"], token="-", port=spec["port"],
              api_port=spec["api_port"], proxy_api_port=spec["proxy_api_port"], spawner="isolated")
    with open(spec["log"], "ab") as out:
        hub.proc = subprocess.Popen(spec["command"], env=spec["env"], stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
    closed = threading.Event()

    def watch() -> None:
        while os.read(0, 4096):
            pass
        closed.set()

    threading.Thread(target=watch, daemon=True).start()
    while not closed.wait(0.5) and hub.proc.poll() is None:
        pass
    ended = hub.proc.poll()
    hub.stop()
    remove_chain(spec["chain"])
    return ended or 0


if __name__ == "__main__":
    sys.exit(keep(json.loads(Path(sys.argv[1]).read_text())))


def login(hub_url: str, name: str, password: str, context: ssl.SSLContext) -> str:
    """Log in as a participant (the login page's ``_xsrf`` cookie, the form); returns where the
    hub's redirects end."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar),
                                         urllib.request.HTTPSHandler(context=context))
    with opener.open(f"{hub_url}/hub/login", timeout=30) as page:
        page.read()
    xsrf = next((c.value for c in jar if c.name == "_xsrf"), "")
    form = urllib.parse.urlencode({"username": name, "password": password, "_xsrf": xsrf}).encode()
    with opener.open(urllib.request.Request(f"{hub_url}/hub/login", data=form), timeout=120) as answer:
        answer.read()
        return str(answer.geturl())


def credentials_in(text: str) -> tuple[str, str]:
    """(student, password) from a credentials email's text."""
    student = re.search(r"\b(student\d+)\b", text)
    password = re.search(r"[Pp]assword:?\s*(\S+)", text)
    if not student or not password:
        raise RuntimeError("no student name and password in the credentials email")
    return student.group(1), password.group(1)
