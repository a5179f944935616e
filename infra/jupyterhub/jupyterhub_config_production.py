"""PRODUCTION VARIANT - JupyterHub on an EC2 instance, students in Docker containers.

################################################################################################
#  Documented, NOT runnable on the development machine (no Docker there) and not exercised by  #
#  the local stack. The local config is jupyterhub_config.py.                                   #
################################################################################################

Layout on the hub instance
--------------------------
* JupyterHub + configurable-http-proxy on the host (the same .venv-hub plus
  ``pip install dockerspawner``), behind TLS (ALB or nginx) at WOD_HUB_PUBLIC_URL.
* One container per student from WOD_NOTEBOOK_IMAGE (jupyter/base-notebook-like, with the
  workshop kernels), on a dedicated Docker bridge network whose Linux bridge is named
  WOD_STUDENT_BRIDGE (default ``br-wod``):

      docker network create --driver bridge \\
          --opt com.docker.network.bridge.name=br-wod \\
          --subnet 172.30.0.0/16 wod-students

* The student's files live in a named volume ``wod-<student>``; the platform's cleaning step
  removes it (``docker volume rm wod-student207``) before the student name is reused.
* The hub reads DynamoDB with the INSTANCE ROLE (no WOD_AWS_ENDPOINT). Student code must never
  get those credentials, hence the instance-metadata block below.

Instance metadata (IMDS) block - apply once at boot, before the hub starts
--------------------------------------------------------------------------
1. Require IMDSv2 and a PUT response hop limit of 1: the token answer cannot cross the extra
   hop of the Docker bridge, so containers cannot even obtain an IMDSv2 token
   (``imds_hardening_command(instance_id)``):

      aws ec2 modify-instance-metadata-options --instance-id i-... \\
          --http-endpoint enabled --http-tokens required --http-put-response-hop-limit 1

   (or in the launch template: MetadataOptions HttpTokens=required, HttpPutResponseHopLimit=1).
2. Drop everything from the student bridge to 169.254.169.254 (and the IPv6 IMDS address),
   both routed (DOCKER-USER, evaluated by Docker before its own FORWARD rules) and to the host
   (INPUT) - defence in depth should the hop limit ever be raised
   (``metadata_block_commands(bridge)``):

      iptables  -C DOCKER-USER -i br-wod -d 169.254.169.254/32 -j DROP 2>/dev/null || \\
      iptables  -I DOCKER-USER -i br-wod -d 169.254.169.254/32 -j DROP
      iptables  -C INPUT       -i br-wod -d 169.254.169.254/32 -j DROP 2>/dev/null || \\
      iptables  -I INPUT       -i br-wod -d 169.254.169.254/32 -j DROP
      ip6tables -C DOCKER-USER -i br-wod -d fd00:ec2::254/128 -j DROP 2>/dev/null || \\
      ip6tables -I DOCKER-USER -i br-wod -d fd00:ec2::254/128 -j DROP
      ip6tables -C INPUT       -i br-wod -d fd00:ec2::254/128 -j DROP 2>/dev/null || \\
      ip6tables -I INPUT       -i br-wod -d fd00:ec2::254/128 -j DROP

   Persist them (iptables-persistent / a systemd unit ordered After=docker.service).
   Check from a student container: ``curl -m 2 http://169.254.169.254/`` must time out.

On Kubernetes (KubeSpawner) the equivalent is an egress NetworkPolicy for the student pods
with ``except: [169.254.169.254/32]`` plus the same hop limit on the nodes; the matching
settings are sketched at the end of this file.
"""
import os
import re
import sys
from pathlib import Path

IMDS_V4 = "169.254.169.254/32"
IMDS_V6 = "fd00:ec2::254/128"
_BRIDGE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$")  # Linux IFNAMSIZ: 15 characters
_INSTANCE_RE = re.compile(r"^i-[0-9a-f]{8,17}$")



HOME_VOLUME = "wod-{username}"


def wod_docker_spawner():
    """DockerSpawner whose ``delete_forever`` also removes the student's home volume.

    The platform deletes the hub user at every cleanup; DockerSpawner alone keeps the named
    volume, and the seat's next holder would find the previous participant's files.
    """
    from dockerspawner import DockerSpawner

    class WodDockerSpawner(DockerSpawner):
        async def delete_forever(self):
            await super().delete_forever()
            await self.docker("remove_volume", name=self.format_volume_name(HOME_VOLUME, self))

    return WodDockerSpawner

def metadata_block_commands(bridge: str = "br-wod") -> list:
    """Shell commands (idempotent: check, else insert) dropping traffic from the student bridge
    to the instance metadata service, IPv4 and IPv6, routed and host-bound."""
    if not _BRIDGE_RE.fullmatch(bridge or ""):
        raise ValueError(f"not a Linux interface name: {bridge!r}")
    commands = []
    for tool, address in (("iptables", IMDS_V4), ("ip6tables", IMDS_V6)):
        for chain in ("DOCKER-USER", "INPUT"):
            rule = f"{chain} -i {bridge} -d {address} -j DROP"
            commands.append(f"{tool} -C {rule} 2>/dev/null || {tool} -I {rule}")
    return commands


def imds_hardening_command(instance_id: str) -> str:
    """IMDSv2 only, PUT response hop limit 1 (containers behind a bridge cannot get a token)."""
    if not _INSTANCE_RE.fullmatch(instance_id or ""):
        raise ValueError(f"not an EC2 instance id: {instance_id!r}")
    return (f"aws ec2 modify-instance-metadata-options --instance-id {instance_id} "
            "--http-endpoint enabled --http-tokens required --http-put-response-hop-limit 1")


# Everything below only runs when JupyterHub loads this file (it provides get_config);
# importing the module (the unit tests) only defines the helpers above.
if "get_config" in globals():
    HERE = Path(__file__).resolve().parent
    sys.path.insert(0, str(HERE))
    from wod_authenticator import WodAuthenticator

    c = get_config()
    env = os.environ.get

    # ---- the hub on the host ---------------------------------------------------------------
    c.JupyterHub.bind_url = env("WOD_HUB_BIND_URL", "http://127.0.0.1:8000")  # TLS terminates in front
    c.JupyterHub.hub_bind_url = env("WOD_HUB_API_BIND_URL", "http://0.0.0.0:8081")  # reachable from containers
    c.JupyterHub.hub_connect_url = env("WOD_HUB_CONNECT_URL", "http://172.30.0.1:8081")  # the bridge's gateway
    state = Path(env("WOD_HUB_STATE_DIR", "/srv/jupyterhub"))
    c.JupyterHub.db_url = env("WOD_HUB_DB_URL", f"sqlite:///{state / 'jupyterhub.sqlite'}")
    c.JupyterHub.cookie_secret_file = str(state / "jupyterhub_cookie_secret")
    c.ConfigurableHTTPProxy.auth_token = (state / "proxy_token").read_text().strip()
    c.JupyterHub.cleanup_servers = False  # a hub restart must not kill running workshops
    c.JupyterHub.concurrent_spawn_limit = int(env("WOD_HUB_CONCURRENT_SPAWNS", "30"))
    c.JupyterHub.tornado_settings = {"slow_spawn_timeout": 0, "slow_stop_timeout": 0}  # answer at once
    c.JupyterHub.active_server_limit = int(env("WOD_HUB_ACTIVE_SERVERS", "0"))

    # ---- platform service -------------------------------------------------------------------
    import idle_culler

    c.JupyterHub.services = [{"name": "wod-platform", "api_token": env("WOD_HUB_TOKEN")}]
    c.JupyterHub.load_roles = [{
        "name": "wod-platform",
        "scopes": ["admin:users", "admin:servers", "access:servers", "list:users", "read:users",
                   *idle_culler.PLATFORM_SCOPES],
        "services": ["wod-platform"],
    }]
    # Participants' servers idle for WOD_IDLE_MINUTES (default 20) stop; the container goes
    # (remove=True), the volume wod-<student> keeps the files, the next login starts it again.
    idle_culler.configure(c, sys.executable, os.environ)

    # ---- login: DynamoDB through the instance role, no Linux users ---------------------------
    c.JupyterHub.authenticator_class = WodAuthenticator
    c.Authenticator.allow_all = True
    c.WodAuthenticator.system_users = False
    c.WodAuthenticator.students_table = env("WOD_STUDENTS_TABLE", "wod-students")
    c.WodAuthenticator.aws_region = env("AWS_DEFAULT_REGION", "eu-west-1")
    c.Authenticator.auth_refresh_age = 60  # sessions end with the reservation (refresh_user)
    c.Authenticator.refresh_pre_spawn = True
    c.JupyterHub.cookie_max_age_days = 1
    c.JupyterHub.template_vars = {
        "announcement_login": "Log in with the <b>student name</b> and the <b>password</b> "
                              "from your Workshops-on-Demand welcome email."}

    # ---- one container per student ------------------------------------------------------------
    c.JupyterHub.spawner_class = wod_docker_spawner()
    c.DockerSpawner.image = env("WOD_NOTEBOOK_IMAGE", "ghcr.io/wod/notebook:latest")
    c.DockerSpawner.network_name = "wod-students"  # bridge br-wod, see the docstring
    c.DockerSpawner.use_internal_ip = True
    c.DockerSpawner.remove = True  # containers are disposable, the volume keeps the files
    c.DockerSpawner.notebook_dir = "/home/jovyan"
    c.DockerSpawner.volumes = {HOME_VOLUME: "/home/jovyan"}
    c.DockerSpawner.default_url = "/lab/tree/0-ReadMeFirst.ipynb"
    c.DockerSpawner.mem_limit = env("WOD_STUDENT_MEM", "1G")
    c.DockerSpawner.cpu_limit = float(env("WOD_STUDENT_CPUS", "1"))
    c.DockerSpawner.extra_host_config = {
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "pids_limit": 512,
    }
    c.Spawner.env_keep = []  # nothing from the hub's environment reaches student code
    c.Spawner.start_timeout = 120
    c.Spawner.http_timeout = 60

    # ---- Kubernetes alternative (sketch) ---------------------------------------------------
    # c.JupyterHub.spawner_class = "kubespawner.KubeSpawner"
    # c.KubeSpawner.image = ...; c.KubeSpawner.storage_pvc_ensure = True
    # c.KubeSpawner.pvc_name_template = "wod-{username}"
    # NetworkPolicy (zero-to-jupyterhub: singleuser.networkPolicy.egress) allowing 0.0.0.0/0
    # except 169.254.169.254/32; node IMDS hop limit 1 as above.
