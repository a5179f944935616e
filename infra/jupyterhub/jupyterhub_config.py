"""JupyterHub configuration for the LOCAL platform (one machine, `make run`, the tests).

Run with the hub venv:  .venv-hub/bin/jupyterhub -f infra/jupyterhub/jupyterhub_config.py
(local/hub.py does this). The production variant is jupyterhub_config_production.py.

Environment:
  WOD_HUB_PORT            public port of the proxy, bound to 127.0.0.1 (default 8001)
  WOD_HUB_API_PORT        the hub's own API port (default 8081)
  WOD_HUB_PROXY_API_PORT  configurable-http-proxy's API port (default 8002)
  WOD_HUB_STATE_DIR       hub database, cookie secret, proxy token (created 0700; default .wod/hub)
  WOD_HUB_TOKEN           the platform's service token (service "wod-platform")
  WOD_HUB_SPAWNER         isolated (default) | shared-insecure
  WOD_HUB_CONCURRENT_SPAWNS  concurrent_spawn_limit (default 10; the API answers 429 above it,
                             and the platform asks again while it waits for the server)
  WOD_STUDENTS_TABLE, WOD_AWS_ENDPOINT, AWS_DEFAULT_REGION  where the authenticator reads students
  WOD_HUB_PROXY_CMD       configurable-http-proxy binary (default node_modules/.bin/..., else PATH)
  WOD_IDLE_MINUTES, WOD_IDLE_CHECK_SECONDS  stop participants' idle servers (idle_culler.py)
  WOD_STUDENT_MEMORY_MB, WOD_STUDENT_PROCESSES, WOD_STUDENT_CPUS, WOD_STUDENT_DISK_MB,
  WOD_STUDENT_FILE_MB, WOD_STUDENT_OPEN_FILES  a student's limits (isolated spawner; 0 turns the
                          memory, processes, CPU or disk limit off)
  WOD_HUB_LOGIN_MAX_DELAY  the longest wait failed logins impose on the next attempts (default 15 s)
  WOD_HUB_CONNECT_URL     how students' servers reach the hub: through its proxy (default: the public URL)
  WOD_HUB_SERVER_PORTS    ports participants' servers listen on, outside the ephemeral range
                          (default 20000-29999; server_ports.py)
  WOD_EVENTS_URL, WOD_EVENTS_KEY  the platform's notebook events route and the key of this location
                          that signs them: participants' kernels report progress to /hub/api/wod/events,
                          which relays it there signed (wod_events.py); both unset: no relay

Spawners:
  isolated         LimitedSpawner (wod_spawner.py): every student is a Linux user (created on demand
                   with a uid never used before, no login shell) with a private home /home/<student>
                   (0700, an image of WOD_STUDENT_DISK_MB), cgroups of their own (memory, processes,
                   CPU; killed as a whole) and a private /tmp and /dev/shm; the hub must run as root.
                   Students reach the hub through its proxy only (their servers too). The hub
                   venv must be usable by those users, so create it
                   from a world-readable interpreter (/usr/bin/python3.11, not a pyenv under /root).
  shared-insecure  SimpleLocalProcessSpawner: every notebook runs as the hub's user (root here)
                   with a home under <state>/homes/<name>. Students can read each other's files
                   and the platform's state. Developer convenience only.
"""
import logging
import os
import secrets
import stat
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))

import idle_culler
import server_ports
from student_accounts import SHARED_DIRS
from wod_authenticator import WodAuthenticator

c = get_config()
log = logging.getLogger("JupyterHub")

ADMIN_SCOPES = ["admin:users", "admin:servers", "access:servers", "list:users", "read:users"]
DEFAULT_URL = "/lab/tree/0-ReadMeFirst.ipynb"


def _port(name, default):
    value = int(os.environ.get(name) or default)
    if not 0 < value < 65536:
        raise SystemExit(f"{name}={value} is not a TCP port")
    return value


def _private_dir(path):
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def _secret_file(path, nbytes=32):
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(nbytes))
    os.chmod(path, 0o600)
    return path.read_text().strip()


def _hub_id(path):
    """This hub state's id, made once: it tells this hub's cgroups from another's on the machine."""
    if not path.exists():
        path.write_text(secrets.token_hex(4))
        os.chmod(path, 0o600)
    return path.read_text().strip()


def _unreachable_by_others(path):
    """The first component of ``path`` (after resolving symlinks) that other users cannot use."""
    real = Path(os.path.realpath(path))
    for part in [*reversed(real.parents), real]:
        mode = part.stat().st_mode
        needed = stat.S_IXOTH if part.is_dir() else stat.S_IROTH | stat.S_IXOTH
        if mode & needed != needed:
            return part
    return None


port = _port("WOD_HUB_PORT", 8001)
api_port = _port("WOD_HUB_API_PORT", 8081)
proxy_api_port = _port("WOD_HUB_PROXY_API_PORT", 8002)
state = _private_dir(Path(os.environ.get("WOD_HUB_STATE_DIR") or REPO / ".wod" / "hub").resolve())
spawner_mode = (os.environ.get("WOD_HUB_SPAWNER") or "isolated").strip().lower()
venv_bin = Path(sys.executable).parent  # .venv-hub/bin (not resolved: the venv's own python)

# ---- network -----------------------------------------------------------------------------
c.JupyterHub.bind_url = f"http://127.0.0.1:{port}"
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = api_port
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{proxy_api_port}"
c.ConfigurableHTTPProxy.auth_token = _secret_file(state / "proxy_token")
c.ConfigurableHTTPProxy.pid_file = str(state / "proxy.pid")
proxy_cmd = os.environ.get("WOD_HUB_PROXY_CMD") or REPO / "node_modules" / ".bin" / "configurable-http-proxy"
c.ConfigurableHTTPProxy.command = [str(proxy_cmd) if Path(proxy_cmd).exists() else "configurable-http-proxy"]

# ---- state -------------------------------------------------------------------------------
c.JupyterHub.db_url = f"sqlite:///{state / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(state / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(state / "jupyterhub.pid")
c.JupyterHub.cleanup_servers = True  # stopping the hub stops every student server
c.JupyterHub.cleanup_proxy = True
c.JupyterHub.concurrent_spawn_limit = int(os.environ.get("WOD_HUB_CONCURRENT_SPAWNS") or 10)
# The API's POST/DELETE .../server answers at once (202 while pending) instead of holding the request
# up to 10 s for the spawn or stop: the platform looks for readiness itself, and a request held that
# long would meet its client's read timeout (10 s) exactly when the hub is busiest.
c.JupyterHub.tornado_settings = {"slow_spawn_timeout": 0, "slow_stop_timeout": 0}
c.JupyterHub.active_server_limit = 0
c.JupyterHub.allow_named_servers = False

# ---- the platform's service account --------------------------------------------------------
token = os.environ.get("WOD_HUB_TOKEN", "")
if token:
    c.JupyterHub.services = [{"name": "wod-platform", "api_token": token}]
    c.JupyterHub.load_roles = [{
        "name": "wod-platform",
        "description": "Workshops-on-Demand backend: create/delete students, start/stop servers, upload notebooks.",
        "scopes": ADMIN_SCOPES + idle_culler.PLATFORM_SCOPES,
        "services": ["wod-platform"],
    }]
else:
    print("WARNING: WOD_HUB_TOKEN is not set - the platform cannot drive this hub.", file=sys.stderr)
# Participants' kernels (wod_progress) report progress for the live room to /hub/api/wod/events; the
# hub checks the student's own token and relays the batch to the platform, signed (wod_events.py).
if os.environ.get("WOD_EVENTS_URL"):
    if len(os.environ.get("WOD_EVENTS_KEY") or "") < 32:
        raise SystemExit("WOD_EVENTS_URL is set: WOD_EVENTS_KEY (at least 32 characters, the location's events key) "
                         "must be too")
    from wod_events import handlers as events_relay

    c.JupyterHub.extra_handlers = events_relay(os.environ["WOD_EVENTS_URL"], os.environ["WOD_EVENTS_KEY"])
# A participant's server idle for WOD_IDLE_MINUTES stops; the seat, Linux user and home stay.
log.info("WoD idle culler: %s", idle_culler.configure(c, sys.executable, os.environ))

# ---- login -----------------------------------------------------------------------------------
c.JupyterHub.authenticator_class = WodAuthenticator
c.Authenticator.allow_all = True  # WodAuthenticator (the student item in DynamoDB) is the gate
c.Authenticator.admin_users = set()
c.Authenticator.enable_auth_state = False
# Re-check the student item (active, not expired) on the student's own requests every minute
# and before any spawn they ask for: the hub cookie alone must not outlive the reservation.
c.Authenticator.auth_refresh_age = 60
c.Authenticator.refresh_pre_spawn = True
c.JupyterHub.cookie_max_age_days = 1
c.WodAuthenticator.students_table = os.environ.get("WOD_STUDENTS_TABLE", "wod-students")
c.WodAuthenticator.aws_endpoint = os.environ.get("WOD_AWS_ENDPOINT", "")
if os.environ.get("WOD_HUB_LOGIN_MAX_DELAY"):
    c.WodAuthenticator.max_login_delay = float(os.environ["WOD_HUB_LOGIN_MAX_DELAY"])
c.JupyterHub.template_vars = {
    "announcement_login": (
        "Log in with the <b>student name</b> (for example <code>student207</code>) and the "
        "<b>password</b> from your Workshops-on-Demand welcome email."),
}

# ---- single-user servers ---------------------------------------------------------------------
c.Spawner.default_url = DEFAULT_URL
c.Spawner.notebook_dir = "~"
c.Spawner.cmd = [os.environ.get("WOD_HUB_SINGLEUSER") or str(venv_bin / "jupyterhub-singleuser")]
c.Spawner.env_keep = ["LANG", "LC_ALL"]  # nothing of the hub's environment (AWS, tokens) leaks
c.Spawner.environment = {"PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin"}
c.Spawner.disable_user_config = True
try:
    server_ports_span = server_ports.parse(os.environ.get("WOD_HUB_SERVER_PORTS"))
except ValueError as exc:
    raise SystemExit(str(exc)) from None
if (crossing := server_ports.overlap(server_ports_span)) is not None:
    log.warning("WoD participants' servers: %s; a server's port may be taken before it starts", crossing)
c.Spawner.pre_spawn_hook = server_ports.hook(server_ports_span)
# A burst of spawns on a small machine is slow: wait for it rather than fail it.
c.Spawner.start_timeout = 180
c.Spawner.http_timeout = 180
# Terminals use bash even though the student's login shell is nologin.
terminals = '--ServerApp.terminado_settings={"shell_command": ["/bin/bash", "-l"]}'
# A server starts with what a workshop uses: not JupyterLab's language-server detection, which
# runs node and npm as the student at every start (the CPU a burst of spawns needs most).
lean = "--ServerApp.jpserver_extensions=jupyter_lsp=False"
# Kernels talk to their server over Unix sockets in the student's own runtime directory, not TCP
# ports: a port picked free and bound a moment later can be taken meanwhile by another of the
# hundred kernels starting in the same minute ("Address already in use": a participant's kernel
# that never starts).
ipc = "--KernelManager.transport=ipc"

if spawner_mode == "isolated":
    if os.geteuid() != 0:
        raise SystemExit("WOD_HUB_SPAWNER=isolated creates a Linux user per student and must run as root "
                         "(use WOD_HUB_SPAWNER=shared-insecure for a non-root developer hub).")
    for needed in (sys.executable, c.Spawner.cmd[0], sys.prefix):
        blocked = _unreachable_by_others(needed)
        if blocked is not None:
            raise SystemExit(
                f"WOD_HUB_SPAWNER=isolated: students cannot use {needed} ({blocked} is not accessible to "
                f"other users). Recreate the hub venv from a system interpreter: "
                f"/usr/bin/python3.11 -m venv .venv-hub")
        hidden = next((d for d in SHARED_DIRS if Path(os.path.realpath(needed)).is_relative_to(d)), None)
        if hidden:  # each server has a /tmp (and /var/tmp, /dev/shm) of its own, empty
            raise SystemExit(f"WOD_HUB_SPAWNER=isolated: {needed} is under {hidden}, which every student's server "
                             "sees as a private, empty directory: install the hub elsewhere")
    c.JupyterHub.spawner_class = "wod_spawner.LimitedSpawner"
    for trait, variable in (("memory_mb", "WOD_STUDENT_MEMORY_MB"), ("max_processes", "WOD_STUDENT_PROCESSES"),
                            ("file_mb", "WOD_STUDENT_FILE_MB"), ("open_files", "WOD_STUDENT_OPEN_FILES")):
        if os.environ.get(variable):
            setattr(c.LimitedSpawner, trait, int(os.environ[variable]))
    hub_id = _hub_id(state / "hub_id")
    c.LimitedSpawner.hub_id = c.WodAuthenticator.hub_id = hub_id
    if os.environ.get("WOD_STUDENT_CPUS"):
        try:
            c.LimitedSpawner.cpus = float(os.environ["WOD_STUDENT_CPUS"])
        except ValueError:
            raise SystemExit(f"WOD_STUDENT_CPUS={os.environ['WOD_STUDENT_CPUS']!r}: give the cores one student may "
                             "use, e.g. 1 or 0.5 (0: no cap)") from None
    from student_cgroups import StudentGroups
    from student_firewall import chain_for
    from student_firewall import install as fence_students
    from wod_authenticator import STUDENTS_GROUP

    groups = StudentGroups(hub_id, c.LimitedSpawner.get("memory_mb", 2048), c.LimitedSpawner.get("max_processes", 256),
                           c.LimitedSpawner.get("cpus", 1.0))
    problems = groups.problems()
    if problems:  # a student unlimited, or unkillable, is not isolated: refuse to start
        raise SystemExit("WOD_HUB_SPAWNER=isolated needs cgroups: " + "; ".join(problems))
    disk = os.environ.get("WOD_STUDENT_DISK_MB") or "1024"
    if not disk.isdigit():
        raise SystemExit(f"WOD_STUDENT_DISK_MB={disk!r}: give a home's size in MB (0: no limit)")
    c.WodAuthenticator.disk_mb = int(disk)
    c.WodAuthenticator.homes_dir = str(state / "homes")
    c.WodAuthenticator.uids_file = str(state / "uids.json")
    # Students' servers talk to the hub through its proxy, like everyone else: the hub's own port is
    # fenced off, so no student can hand the hub a forwarding header of their own.
    c.Spawner.hub_connect_url = os.environ.get("WOD_HUB_CONNECT_URL") or c.JupyterHub.bind_url

    blocked = [int(p) for p in (os.environ.get("WOD_HUB_BLOCKED_PORTS") or "").split(",") if p.strip()]
    blocked += [proxy_api_port, api_port]
    problem = fence_students(blocked, STUDENTS_GROUP, chain_for(proxy_api_port))
    if problem:  # isolation without the firewall is no isolation: refuse to start
        raise SystemExit(f"WOD_HUB_SPAWNER=isolated needs the student firewall, and {problem}. Install "
                         "iptables (`make run` does: apt-get install iptables) and run as root, or use "
                         "WOD_HUB_SPAWNER=shared-insecure for a developer hub.")
    c.Spawner.args = [terminals, lean, ipc]
    c.WodAuthenticator.system_users = True
    c.LocalAuthenticator.create_system_users = True
    c.WodAuthenticator.delete_system_users = True  # DELETE /hub/api/users/<name> wipes Linux user + home
    c.WodAuthenticator.accounts_dir = str(state / "accounts")  # accounts this state made; others are wiped
elif spawner_mode == "shared-insecure":
    banner = ("!" * 78 + "\n"
              "WOD_HUB_SPAWNER=shared-insecure: every student notebook runs as "
              f"{'root' if os.geteuid() == 0 else 'the hub user'} and can\n"
              "read every other student's files and the platform's state. Developer use only.\n"
              + "!" * 78)
    print(banner, file=sys.stderr, flush=True)
    log.warning("INSECURE spawner: SimpleLocalProcessSpawner, no isolation between students")
    homes = _private_dir(state / "homes")
    c.JupyterHub.spawner_class = "jupyterhub.spawner.SimpleLocalProcessSpawner"
    c.SimpleLocalProcessSpawner.home_dir_template = str(homes / "{username}")
    c.Spawner.args = [terminals, lean, ipc] + (["--allow-root"] if os.geteuid() == 0 else [])
    c.WodAuthenticator.system_users = False
    c.LocalAuthenticator.create_system_users = False
    c.JupyterHub.template_vars["announcement"] = "Developer hub: notebooks are NOT isolated from each other."
else:
    raise SystemExit(f"WOD_HUB_SPAWNER={spawner_mode!r}: use 'isolated' or 'shared-insecure'")
