"""JupyterHub configuration for the hub HOST (an EC2 instance or any VM), installed by bootstrap.sh.

It is the local mode's configuration (jupyterhub_config.py, copied next to this file with the
authenticator, the spawner, the student firewall and the idle culler) with three differences:

* the service token comes from Secrets Manager (``WOD_HUB_TOKEN_SECRET``, read with the instance
  role at every start, so a rotated token is picked up by a restart) or from a root-only file
  (``WOD_HUB_TOKEN_FILE``); it is never in the environment bootstrap.sh writes; so does the events
  key that signs the relayed notebook events (``WOD_EVENTS_KEY_SECRET``/``_FILE``, with ``WOD_EVENTS_URL``);
* with ``WOD_HUB_TLS_CERT``/``WOD_HUB_TLS_KEY`` the hub serves HTTPS on every address
  (``WOD_HUB_BIND_IP``, default 0.0.0.0) at ``WOD_HUB_PORT``; without them, plain HTTP on
  127.0.0.1 (tests);
* the students table is read with the instance role (``WOD_AWS_ENDPOINT`` only in tests).

Everything else (isolated spawner: one Linux user per student with a private home of a fixed size
and cgroups of their own, removed with the hub user at cleanup; the student firewall, which also
closes the hub's own port to students, whose servers use ``WOD_HUB_CONNECT_URL``, the proxy; the
idle culler; login rules) is the local mode's.
"""
import os
import sys
from pathlib import Path


def hub_token(env, secrets_client=None):
    """The platform's service token: from the file ``WOD_HUB_TOKEN_FILE`` or the Secrets Manager
    secret ``WOD_HUB_TOKEN_SECRET``. Raises SystemExit with the reason when neither gives one."""
    token = key_of(env, "WOD_HUB_TOKEN", "the hub token", secrets_client)
    if token is None:
        raise SystemExit("set WOD_HUB_TOKEN_SECRET (Secrets Manager) or WOD_HUB_TOKEN_FILE: "
                         "without the service token the platform cannot drive this hub")
    return token


def events_key(env, secrets_client=None):
    """The location's events key, which signs the notebook events the hub relays to the live room:
    from ``WOD_EVENTS_KEY_FILE`` or ``WOD_EVENTS_KEY_SECRET``; None when neither is set."""
    return key_of(env, "WOD_EVENTS_KEY", "the events key", secrets_client)


def key_of(env, variable, what, secrets_client=None):
    """A key from the file ``<variable>_FILE`` or the Secrets Manager secret ``<variable>_SECRET`` (read
    with the instance role); None when neither is set. SystemExit saying why when it cannot be read
    or is shorter than 32 characters."""
    path, secret = env.get(f"{variable}_FILE", ""), env.get(f"{variable}_SECRET", "")
    if path:
        try:
            token = Path(path).read_text().strip()
        except OSError as exc:
            raise SystemExit(f"{variable}_FILE={path}: {exc.strerror}") from exc
        source = path
    elif secret:
        if secrets_client is None:
            import boto3

            secrets_client = boto3.client("secretsmanager", region_name=env.get("AWS_DEFAULT_REGION") or None,
                                          endpoint_url=env.get("WOD_AWS_ENDPOINT") or None)
        try:
            token = secrets_client.get_secret_value(SecretId=secret)["SecretString"].strip()
        except Exception as exc:  # no such secret, no permission, no network: say which, then stop
            raise SystemExit(f"cannot read {what} from Secrets Manager ({secret}): "
                             f"{type(exc).__name__}: {exc}") from exc
        source = secret
    else:
        return None
    if len(token) < 32:
        raise SystemExit(f"{what} from {source} is shorter than 32 characters")
    return token


def public_bind(env):
    """(bind URL, certificate, key) of the public proxy."""
    port = int(env.get("WOD_HUB_PORT") or 8000)
    cert, key = env.get("WOD_HUB_TLS_CERT", ""), env.get("WOD_HUB_TLS_KEY", "")
    if bool(cert) != bool(key):
        raise SystemExit("WOD_HUB_TLS_CERT and WOD_HUB_TLS_KEY go together")
    if cert:
        return f"https://{env.get('WOD_HUB_BIND_IP') or '0.0.0.0'}:{port}", cert, key
    return f"http://127.0.0.1:{port}", "", ""


# Everything below only runs when JupyterHub loads this file (it provides get_config); importing
# the module (the unit tests) only defines the helpers above.
if "get_config" in globals():
    HERE = Path(__file__).resolve().parent
    # The local config reads the token from the hub's environment; only the hub process (root)
    # has it, and Spawner.env_keep passes nothing of it to student servers.
    os.environ["WOD_HUB_TOKEN"] = hub_token(os.environ)
    if os.environ.get("WOD_EVENTS_URL"):  # the relay of notebook events signs with the location's events key
        os.environ["WOD_EVENTS_KEY"] = events_key(os.environ) or ""
    os.environ.setdefault("WOD_HUB_SPAWNER", "isolated")
    load_subconfig(str(HERE / "jupyterhub_config.py"))  # the local mode's, copied next to this file
    c = get_config()
    c.JupyterHub.bind_url, cert, key = public_bind(os.environ)
    if cert and not os.environ.get("WOD_HUB_CONNECT_URL"):
        raise SystemExit("with TLS, set WOD_HUB_CONNECT_URL (https://<the certificate's name>:<port>): students' "
                         "servers reach the hub through its proxy, never its own port")
    if cert:
        c.JupyterHub.ssl_cert, c.JupyterHub.ssl_key = cert, key
    if os.environ.get("WOD_HUB_CA_BUNDLE"):  # a private authority signed the hub's certificate
        c.Spawner.environment["SSL_CERT_FILE"] = os.environ["WOD_HUB_CA_BUNDLE"]
    else:
        print("WARNING: no TLS certificate: the hub serves plain HTTP on 127.0.0.1 only.", file=sys.stderr)
