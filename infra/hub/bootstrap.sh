#!/usr/bin/env bash
# Install (or update) the Workshops-on-Demand JupyterHub on this machine, as root.
# Run it again at any time: every step checks before it changes anything.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: bootstrap.sh --table NAME (--hub-token-secret ID | --hub-token-file FILE) [options]

Installs into PREFIX: a Python venv with JupyterHub (infra/jupyterhub/requirements.txt),
configurable-http-proxy (npm, pinned in package.json), the hub's files (authenticator, login
rules, spawner, student firewall, idle culler, configuration); blocks the instance metadata
endpoint for every user but root; gets a TLS certificate; starts the hub (systemd unit
wod-hub.service, or in the foreground).

Required:
  --table NAME              the students table (<TablePrefix>-students)
  --hub-token-secret ID     Secrets Manager secret of the service token (<SecretsPrefix>/hub-token/<Location>),
                            read with the instance role at every hub start
  --hub-token-file FILE     or: a file holding the token (copied, mode 0600)
Options:
  --prefix DIR              where to install (default /opt/wod-hub)
  --region REGION           AWS region of the table and the secret (default $AWS_DEFAULT_REGION, else us-east-1)
  --domain NAME             get a Let's Encrypt certificate for NAME with certbot (port 80 must reach this host)
  --email ADDRESS           Let's Encrypt account address (optional)
  --public-ip ADDRESS       with --domain: first wait (up to --dns-wait seconds) until NAME resolves to ADDRESS
  --dns-wait SECONDS        default 3600
  --tls-cert FILE --tls-key FILE   or: use this certificate (copied into PREFIX/tls)
  --public-name NAME        the name the certificate is for (default: --domain); students' servers reach
                            the hub through the proxy at https://NAME:PORT (the hub's own port is closed to them)
  --tls-ca FILE             the authority that signed --tls-cert, when it is not a public one (a private CA):
                            students' servers trust it besides the system's
  --port N                  public port (default 443 with TLS, 8000 without: then HTTP on 127.0.0.1 only)
  --api-port N              the hub's own API port on 127.0.0.1 (default 8081)
  --proxy-api-port N        the proxy's API port on 127.0.0.1 (default 8002)
  --python PATH             interpreter of the venv; students run it too, so a system one (default
                            /usr/bin/python3.11, else /usr/bin/python3)
  --pip-args "ARGS"         extra pip install arguments (e.g. "--find-links /wheels")
  --imds-chain NAME         iptables chain of the metadata block (default WOD-HUB-IMDS)
  --student-memory-mb N     memory of one student, their /tmp and /dev/shm included (default 2048)
  --student-processes N     processes of one student (default 256)
  --student-cpus N          cores of one student (default 1)
  --student-disk-mb N       size of one student's home (default 1024)
                            (0 turns one of these four limits off)
  --concurrent-spawns N     participants' servers the hub starts at once (default 10; the stack's HubSpawnLimit)
  --idle-minutes N          minutes without traffic before a participant's server stops (default 20, 0: never;
                            the stack's IdleMinutes)
  --aws-endpoint URL        AWS endpoint for the table and the secret (tests only)
  --events-url URL          the platform's notebook events route (https://<public address>/api/events): the
                            hub relays participants' progress there for the live room (none: not relayed)
  --events-key-secret ID    with --events-url: the Secrets Manager secret of the location's events key, which
                            signs what the hub relays (<SecretsPrefix>/events-key/<Location>)
  --events-key-file FILE    or: a file holding that key (copied, mode 0600)
  --foreground              start the hub in the foreground instead of as a systemd unit
  -h, --help                this text
EOF
}

die() { echo "bootstrap: $*" >&2; exit 2; }
step() { echo "==> $*"; }

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
HUB_FILES=$(cd "$HERE/../jupyterhub" 2>/dev/null && pwd) || die "infra/jupyterhub/ must sit next to infra/hub/"
PREFIX=/opt/wod-hub TABLE="" TOKEN_SECRET="" TOKEN_FILE="" REGION="${AWS_DEFAULT_REGION:-us-east-1}"
DOMAIN="" EMAIL="" PUBLIC_IP="" DNS_WAIT=3600 TLS_CERT="" TLS_KEY="" TLS_CA="" PORT="" API_PORT=8081 PROXY_API_PORT=8002
PYTHON="" PIP_ARGS="" IMDS_CHAIN=WOD-HUB-IMDS AWS_ENDPOINT="" FOREGROUND=0 PUBLIC_NAME="" SPAWNS=10 IDLE_MINUTES=20 EVENTS_URL=""
EVENTS_KEY_SECRET="" EVENTS_KEY_FILE=""
STUDENT_MEMORY_MB=2048 STUDENT_PROCESSES=256 STUDENT_CPUS=1 STUDENT_DISK_MB=1024

while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --foreground) FOREGROUND=1; shift; continue ;;
    --prefix|--table|--hub-token-secret|--hub-token-file|--region|--domain|--email|--public-ip|--dns-wait|\
    --tls-cert|--tls-key|--port|--api-port|--proxy-api-port|--python|--pip-args|--imds-chain|--aws-endpoint|\
    --public-name|--student-memory-mb|--student-processes|--student-cpus|--student-disk-mb|--tls-ca|\
    --concurrent-spawns|--idle-minutes|--events-url|--events-key-secret|--events-key-file)
      [ $# -ge 2 ] || die "$1 needs a value"
      case "$1" in
        --prefix) PREFIX=$2 ;; --table) TABLE=$2 ;; --hub-token-secret) TOKEN_SECRET=$2 ;;
        --hub-token-file) TOKEN_FILE=$2 ;; --region) REGION=$2 ;; --domain) DOMAIN=$2 ;; --email) EMAIL=$2 ;;
        --public-ip) PUBLIC_IP=$2 ;; --dns-wait) DNS_WAIT=$2 ;; --tls-cert) TLS_CERT=$2 ;; --tls-key) TLS_KEY=$2 ;;
        --port) PORT=$2 ;; --api-port) API_PORT=$2 ;; --proxy-api-port) PROXY_API_PORT=$2 ;;
        --python) PYTHON=$2 ;; --pip-args) PIP_ARGS=$2 ;; --imds-chain) IMDS_CHAIN=$2 ;;
        --aws-endpoint) AWS_ENDPOINT=$2 ;; --public-name) PUBLIC_NAME=$2 ;;
        --student-memory-mb) STUDENT_MEMORY_MB=$2 ;; --student-processes) STUDENT_PROCESSES=$2 ;;
        --student-cpus) STUDENT_CPUS=$2 ;; --student-disk-mb) STUDENT_DISK_MB=$2 ;;
        --concurrent-spawns) SPAWNS=$2 ;; --idle-minutes) IDLE_MINUTES=$2 ;; --tls-ca) TLS_CA=$2 ;;
        --events-url) EVENTS_URL=$2 ;; --events-key-secret) EVENTS_KEY_SECRET=$2 ;;
        --events-key-file) EVENTS_KEY_FILE=$2 ;;
      esac
      shift 2 ;;
    *) usage >&2; die "unknown option: $1" ;;
  esac
done

# ---- check the arguments before touching anything -------------------------------------------
[ "$(id -u)" = 0 ] || die "run as root: the hub makes a Linux user per student and sets iptables rules"
[[ "$TABLE" =~ ^[A-Za-z0-9_.-]{3,255}$ ]] || die "--table: a DynamoDB table name is required"
if [ -n "$TOKEN_SECRET" ] && [ -n "$TOKEN_FILE" ]; then die "give --hub-token-secret or --hub-token-file, not both"; fi
if [ -z "$TOKEN_SECRET" ] && [ -z "$TOKEN_FILE" ]; then die "--hub-token-secret or --hub-token-file is required"; fi
if [ -n "$TOKEN_FILE" ] && [ ! -r "$TOKEN_FILE" ]; then die "--hub-token-file $TOKEN_FILE: not readable"; fi
if [ -n "$TLS_CERT$TLS_KEY" ]; then
  [ -r "$TLS_CERT" ] && [ -r "$TLS_KEY" ] || die "--tls-cert and --tls-key go together, both readable files"
fi
if [ -n "$TLS_CA" ]; then
  [ -n "$TLS_CERT" ] && [ -r "$TLS_CA" ] || die "--tls-ca needs --tls-cert, and a readable file"
  [ -z "$DOMAIN" ] || die "give --tls-cert/--tls-key or --domain, not both"
fi
[[ "$DOMAIN" =~ ^([A-Za-z0-9-]+\.)+[A-Za-z]{2,}$ || -z "$DOMAIN" ]] || die "--domain $DOMAIN: not a host name"
[[ "$REGION" =~ ^[a-z]{2}(-[a-z]+)+-[0-9]$ ]] || die "--region $REGION: not an AWS region"
[[ "$IMDS_CHAIN" =~ ^[A-Za-z0-9_-]{1,28}$ ]] || die "--imds-chain $IMDS_CHAIN: not an iptables chain name"
[[ "$DNS_WAIT" =~ ^[0-9]+$ ]] || die "--dns-wait: seconds"
for n in "$STUDENT_MEMORY_MB" "$STUDENT_PROCESSES" "$STUDENT_DISK_MB"; do
  [[ "$n" =~ ^[0-9]+$ ]] || die "$n: a student's limits are whole numbers (0: off)"
done
[[ "$STUDENT_CPUS" =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "--student-cpus $STUDENT_CPUS: a number of cores (0: off)"
[[ "$SPAWNS" =~ ^[0-9]+$ ]] && [ "$SPAWNS" -ge 1 ] || die "--concurrent-spawns $SPAWNS: a number of servers, 1 or more"
[[ "$IDLE_MINUTES" =~ ^[0-9]+$ ]] || die "--idle-minutes $IDLE_MINUTES: a number of minutes (0: never)"
TLS=0; if [ -n "$TLS_CERT$DOMAIN" ]; then TLS=1; fi
[ -n "$PUBLIC_NAME" ] || PUBLIC_NAME=$DOMAIN
[[ -z "$PUBLIC_NAME" || "$PUBLIC_NAME" == localhost || "$PUBLIC_NAME" =~ ^([A-Za-z0-9-]+\.)+[A-Za-z]{2,}$ ]] || die "--public-name $PUBLIC_NAME: not a host name"
if [ "$TLS" = 1 ] && [ -z "$PUBLIC_NAME" ]; then
  die "--tls-cert needs --public-name (the certificate's name): students' servers reach the hub through it"
fi
[ -n "$PORT" ] || { if [ "$TLS" = 1 ]; then PORT=443; else PORT=8000; fi; }
for p in "$PORT" "$API_PORT" "$PROXY_API_PORT"; do
  [[ "$p" =~ ^[0-9]+$ ]] && [ "$p" -gt 0 ] && [ "$p" -lt 65536 ] || die "$p is not a TCP port"
done
case "$PREFIX" in /*) ;; *) die "--prefix must be an absolute path" ;; esac
# These go into hub.env (which the hub's start script sources), the start script and the systemd
# unit: nothing there may hold a space, a quote or a shell expansion.
[[ "$PREFIX" =~ ^/[A-Za-z0-9/_.-]*$ ]] || die "--prefix $PREFIX: letters, digits and / _ . - only"
[[ -z "$TOKEN_SECRET" || "$TOKEN_SECRET" =~ ^[A-Za-z0-9/_+=.@:-]{1,512}$ ]] \
  || die "--hub-token-secret $TOKEN_SECRET: not a Secrets Manager name or ARN"
[[ -z "$AWS_ENDPOINT" || "$AWS_ENDPOINT" =~ ^https?://[A-Za-z0-9.:/_-]+$ ]] || die "--aws-endpoint $AWS_ENDPOINT: not a URL"
[[ -z "$EVENTS_URL" || "$EVENTS_URL" =~ ^https?://[A-Za-z0-9.:/_-]+$ ]] || die "--events-url $EVENTS_URL: not a URL"
[[ -z "$EVENTS_KEY_SECRET" || "$EVENTS_KEY_SECRET" =~ ^[A-Za-z0-9/_+=.@:-]{1,512}$ ]] \
  || die "--events-key-secret $EVENTS_KEY_SECRET: not a Secrets Manager name or ARN"
if [ -n "$EVENTS_KEY_SECRET" ] && [ -n "$EVENTS_KEY_FILE" ]; then
  die "give --events-key-secret or --events-key-file, not both"
fi
if [ -n "$EVENTS_URL" ] && [ -z "$EVENTS_KEY_SECRET$EVENTS_KEY_FILE" ]; then
  die "--events-url needs --events-key-secret or --events-key-file (the key that signs the relayed events)"
fi
if [ -n "$EVENTS_KEY_FILE" ] && [ ! -r "$EVENTS_KEY_FILE" ]; then die "--events-key-file $EVENTS_KEY_FILE: not readable"; fi
[[ -z "$PUBLIC_IP" || "$PUBLIC_IP" =~ ^([0-9]{1,3}\.){3}[0-9]{1,3}$ ]] || die "--public-ip $PUBLIC_IP: not an IPv4 address"
[[ -z "$EMAIL" || "$EMAIL" =~ ^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+$ ]] || die "--email $EMAIL: not an address"

APT_UPDATED=0
apt_install() {  # apt_install PACKAGE...: Debian/Ubuntu packages, once
  command -v apt-get >/dev/null || die "missing $*, and no apt-get to install it: install it, then run again"
  if [ "$APT_UPDATED" = 0 ]; then apt-get update -qq; APT_UPDATED=1; fi
  step "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# ---- system packages ---------------------------------------------------------------------------
if [ -z "$PYTHON" ]; then
  if [ -x /usr/bin/python3.11 ]; then PYTHON=/usr/bin/python3.11; else PYTHON=/usr/bin/python3; fi
fi
[ -x "$PYTHON" ] || apt_install python3 python3-venv
"$PYTHON" -c 'import ensurepip, venv' 2>/dev/null || apt_install python3-venv
command -v npm >/dev/null || apt_install nodejs npm
NODE_MAJOR=$(node -p 'process.versions.node.split(".")[0]')
[ "$NODE_MAJOR" -ge 20 ] || die "configurable-http-proxy needs Node.js 20 or newer, this host has $(node --version): install Node.js 20 and run again"
command -v iptables >/dev/null || apt_install iptables
command -v useradd >/dev/null || apt_install passwd
command -v mkfs.ext4 >/dev/null || apt_install e2fsprogs  # students' homes are images of a fixed size
if [ -n "$DOMAIN" ]; then command -v certbot >/dev/null || apt_install certbot; fi

# ---- files -------------------------------------------------------------------------------------
# Students' servers run the venv's interpreter as their own users: PREFIX and the venv stay
# world-readable; the hub's state, its token and TLS key are root's only.
umask 022
install -d -m 0755 "$PREFIX" "$PREFIX/app" "$PREFIX/bin" "$PREFIX/proxy"
install -d -m 0700 "$PREFIX/state" "$PREFIX/tls"
step "hub files into $PREFIX/app"
install -m 0644 "$HUB_FILES"/*.py "$HUB_FILES/requirements.txt" "$HERE/jupyterhub_config_host.py" "$PREFIX/app/"
install -d -m 0755 "$PREFIX/app/progress/etc" "$PREFIX/app/progress/wod_progress" \
  "$PREFIX/app/progress/labextension/static" "$PREFIX/app/progress/labextension/schemas"
install -m 0644 "$HUB_FILES/progress/pyproject.toml" "$PREFIX/app/progress/"
install -m 0644 "$HUB_FILES"/progress/etc/*.py "$PREFIX/app/progress/etc/"
install -m 0644 "$HUB_FILES"/progress/wod_progress/*.py "$PREFIX/app/progress/wod_progress/"
install -m 0644 "$HUB_FILES/progress/labextension/package.json" "$PREFIX/app/progress/labextension/"
install -m 0644 "$HUB_FILES"/progress/labextension/static/*.js "$PREFIX/app/progress/labextension/static/"
install -m 0644 "$HUB_FILES"/progress/labextension/schemas/*.json "$PREFIX/app/progress/labextension/schemas/"

stamp() { sha1sum "$@" | sha1sum | cut -c1-12; }
# shellcheck disable=SC2046  # the installed files: paths without spaces (--prefix is checked)
VENV_STAMP="$PREFIX/venv/.installed-$(stamp "$PREFIX/app/requirements.txt" $(find "$PREFIX/app/progress" -type f | sort))"
if [ ! -e "$VENV_STAMP" ]; then
  step "JupyterHub into $PREFIX/venv (Python $("$PYTHON" -c 'import platform; print(platform.python_version())'))"
  [ -x "$PREFIX/venv/bin/python" ] || "$PYTHON" -m venv "$PREFIX/venv"
  # shellcheck disable=SC2086  # --pip-args is a list of arguments
  "$PREFIX/venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$PREFIX/app/requirements.txt" $PIP_ARGS
  # shellcheck disable=SC2086
  "$PREFIX/venv/bin/python" -m pip install --quiet --disable-pip-version-check "$PREFIX/app/progress" $PIP_ARGS
  rm -f "$PREFIX"/venv/.installed-* && touch "$VENV_STAMP"
else
  step "JupyterHub already installed in $PREFIX/venv"
fi

install -m 0644 "$HERE/package.json" "$HERE/package-lock.json" "$PREFIX/proxy/"
PROXY_STAMP="$PREFIX/proxy/node_modules/.installed-$(stamp "$PREFIX/proxy/package-lock.json")"
if [ ! -e "$PROXY_STAMP" ]; then
  step "configurable-http-proxy into $PREFIX/proxy"
  (cd "$PREFIX/proxy" && npm ci --omit=dev --no-audit --no-fund --loglevel=error)
  rm -f "$PREFIX"/proxy/node_modules/.installed-* && touch "$PROXY_STAMP"
fi

# key_setting VARIABLE FILE SECRET NAME: the hub.env line saying where the hub reads a key: a root-only
# copy of FILE in the state (state/NAME), or the Secrets Manager SECRET (read at every start)
key_setting() {
  if [ -n "$2" ]; then
    install -m 0600 "$2" "$PREFIX/state/$4"
    echo "$1_FILE=$PREFIX/state/$4"
  else
    rm -f "$PREFIX/state/$4"
    echo "$1_SECRET=$3"
  fi
}
TOKEN_SETTING=$(key_setting WOD_HUB_TOKEN "$TOKEN_FILE" "$TOKEN_SECRET" hub_token)
EVENTS_KEY_SETTING=$(key_setting WOD_EVENTS_KEY "$EVENTS_KEY_FILE" "$EVENTS_KEY_SECRET" events_key)

# ---- TLS -----------------------------------------------------------------------------------------
CERT="" KEY="" CA_BUNDLE=""
if [ -n "$TLS_CERT" ]; then
  install -m 0644 "$TLS_CERT" "$PREFIX/tls/cert.pem"
  install -m 0600 "$TLS_KEY" "$PREFIX/tls/key.pem"
  CERT="$PREFIX/tls/cert.pem" KEY="$PREFIX/tls/key.pem"
  step "TLS: the given certificate, on port $PORT"
  if [ -n "$TLS_CA" ]; then  # the system's authorities and this one, for the students' servers
    CA_BUNDLE="$PREFIX/app/ca-bundle.pem"  # readable by the students (tls/ is root's alone)
    cat /etc/ssl/certs/ca-certificates.crt "$TLS_CA" 2>/dev/null > "$CA_BUNDLE.new" || cat "$TLS_CA" > "$CA_BUNDLE.new"
    chmod 0644 "$CA_BUNDLE.new" && mv "$CA_BUNDLE.new" "$CA_BUNDLE"
  fi
elif [ -n "$DOMAIN" ]; then
  CERT="/etc/letsencrypt/live/$DOMAIN/fullchain.pem" KEY="/etc/letsencrypt/live/$DOMAIN/privkey.pem"
  if [ ! -s "$CERT" ]; then
    if [ -n "$PUBLIC_IP" ]; then
      step "waiting for $DOMAIN to resolve to $PUBLIC_IP (add the DNS record; up to ${DNS_WAIT}s)"
      waited=0
      until getent ahostsv4 "$DOMAIN" | awk '{print $1}' | grep -qxF "$PUBLIC_IP"; do
        [ "$waited" -lt "$DNS_WAIT" ] || die "$DOMAIN does not resolve to $PUBLIC_IP after ${DNS_WAIT}s: add the DNS record, then run again"
        sleep 30; waited=$((waited + 30))
      done
    fi
    step "TLS: Let's Encrypt certificate for $DOMAIN (certbot, standalone on port 80)"
    if [ -n "$EMAIL" ]; then ACCOUNT=(--email "$EMAIL"); else ACCOUNT=(--register-unsafely-without-email); fi
    certbot certonly --standalone --non-interactive --agree-tos "${ACCOUNT[@]}" -d "$DOMAIN" \
      --deploy-hook "systemctl restart wod-hub.service"
  else
    step "TLS: Let's Encrypt certificate for $DOMAIN already there (certbot renews it)"
  fi
else
  step "TLS: skipped (no --tls-cert/--tls-key, no --domain): plain HTTP on 127.0.0.1:$PORT only, for tests"
fi

# ---- how the hub starts ------------------------------------------------------------------------------
CONNECT_URL=""  # without TLS the proxy serves plain HTTP on 127.0.0.1, which the local config uses
if [ "$TLS" = 1 ]; then CONNECT_URL="https://$PUBLIC_NAME:$PORT"; fi
umask 077
cat > "$PREFIX/hub.env" <<EOF
WOD_HUB_PORT=$PORT
WOD_HUB_API_PORT=$API_PORT
WOD_HUB_PROXY_API_PORT=$PROXY_API_PORT
WOD_HUB_STATE_DIR=$PREFIX/state
WOD_HUB_PROXY_CMD=$PREFIX/proxy/node_modules/.bin/configurable-http-proxy
WOD_HUB_SPAWNER=isolated
WOD_HUB_CONCURRENT_SPAWNS=$SPAWNS
WOD_IDLE_MINUTES=$IDLE_MINUTES
WOD_EVENTS_URL=$EVENTS_URL
WOD_STUDENTS_TABLE=$TABLE
AWS_DEFAULT_REGION=$REGION
WOD_AWS_ENDPOINT=$AWS_ENDPOINT
WOD_HUB_TLS_CERT=$CERT
WOD_HUB_CA_BUNDLE=$CA_BUNDLE
WOD_HUB_TLS_KEY=$KEY
WOD_HUB_CONNECT_URL=$CONNECT_URL
WOD_STUDENT_MEMORY_MB=$STUDENT_MEMORY_MB
WOD_STUDENT_PROCESSES=$STUDENT_PROCESSES
WOD_STUDENT_CPUS=$STUDENT_CPUS
WOD_STUDENT_DISK_MB=$STUDENT_DISK_MB
$TOKEN_SETTING
$EVENTS_KEY_SETTING
EOF
umask 022
cat > "$PREFIX/bin/wod-hub" <<EOF
#!/usr/bin/env bash
# Starts the Workshops-on-Demand JupyterHub in the foreground (wod-hub.service runs this).
set -euo pipefail
set -a; . "$PREFIX/hub.env"; set +a
export PATH="$PREFIX/venv/bin:$PREFIX/proxy/node_modules/.bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
cd "$PREFIX/state"
exec "$PREFIX/venv/bin/jupyterhub" -f "$PREFIX/app/jupyterhub_config_host.py"
EOF
chmod 0755 "$PREFIX/bin/wod-hub"

# ---- instance metadata: root only (the hub reads the table with the instance role; students must not) ----
# A script of its own: iptables rules do not survive a reboot, so wod-hub.service runs it before
# every start.
cat > "$PREFIX/bin/wod-hub-imds" <<EOF
#!/usr/bin/env bash
# Rejects every connection to the instance metadata service (IPv4 and IPv6) but root's.
set -euo pipefail
block() {  # block iptables|ip6tables ADDRESS
  "\$1" -N $IMDS_CHAIN 2>/dev/null || true
  "\$1" -F $IMDS_CHAIN
  "\$1" -A $IMDS_CHAIN -d "\$2" -m owner ! --uid-owner 0 -j REJECT
  "\$1" -C OUTPUT -j $IMDS_CHAIN 2>/dev/null || "\$1" -I OUTPUT -j $IMDS_CHAIN
}
block iptables 169.254.169.254/32
if command -v ip6tables >/dev/null && ip6tables -L OUTPUT -n >/dev/null 2>&1; then
  block ip6tables fd00:ec2::254/128
fi
EOF
chmod 0755 "$PREFIX/bin/wod-hub-imds"
step "instance metadata (169.254.169.254) closed to every user but root (chain $IMDS_CHAIN)"
"$PREFIX/bin/wod-hub-imds"

# ---- start -----------------------------------------------------------------------------------------------
if [ "$FOREGROUND" = 1 ]; then
  step "starting JupyterHub in the foreground"
  exec "$PREFIX/bin/wod-hub"
elif [ -d /run/systemd/system ]; then
  cat > /etc/systemd/system/wod-hub.service <<EOF
[Unit]
Description=Workshops-on-Demand JupyterHub
After=network-online.target
Wants=network-online.target

[Service]
ExecStart=$PREFIX/bin/wod-hub
# the hub makes each student's cgroups (limits, kill as a whole) inside its own
Delegate=yes
Restart=always
RestartSec=5
ExecStartPre=$PREFIX/bin/wod-hub-imds

[Install]
WantedBy=multi-user.target
EOF
  systemctl daemon-reload
  systemctl enable wod-hub.service >/dev/null
  systemctl restart wod-hub.service
  step "wod-hub.service (re)started: journalctl -u wod-hub -f"
else
  step "no systemd here: start the hub with $PREFIX/bin/wod-hub"
fi
