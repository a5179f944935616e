"""Ports and paths of the single-machine stack, from ``WOD_*`` variables."""
from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chalicelib.adapters.secrets import LOCAL_PER_LOCATION, NAMES, file_key

ROOT = Path(__file__).resolve().parent.parent


class ConfigError(ValueError):
    """A ``WOD_*`` variable of the local stack has a value that cannot work."""


@dataclass(frozen=True)
class LocalConfig:
    state_dir: Path
    host: str = "127.0.0.1"
    app_port: int = 8000
    inbox_port: int = 8025
    smtp_port: int = 2525
    aws_port: int = 4566
    hub_port: int = 8001
    hub_api_port: int = 8081
    hub_proxy_api_port: int = 8002
    workers_port: int = 8010  # the task Lambdas' worker pool (the embedded AWS invokes them there)
    web_workers: int = 3  # gunicorn worker processes for the app (1, 2, 3 measured: 3 answers a burst fastest)
    web_threads: int = 8  # threads per web worker
    web_backlog: int = 1024  # connections the kernel queues for the app during a burst
    worker_threads: int = 32  # task Lambdas running at once in the workers process
    hub_spawner: str = "isolated"
    hub_nice: int = 10  # JupyterHub and the student servers it spawns yield the CPU to the platform ...
    hub_cpu_weight: int = 50  # ... and weigh together half a platform process (cgroup v2 units, 100 = one)
    tick_seconds: float = 60.0
    health_seconds: float = 10.0  # how often the supervisor asks the workers and mail parts if they answer
    time_scale: float = 1.0
    backend: bool = True  # serve order intake here; off: a frontend only, orders stay in the inbox
    workshops: Path = ROOT / "workshops"
    clock_epoch: float | None = None  # when the stack's scaled business clock started (all parts share it)

    @classmethod
    def from_env(cls, env=os.environ) -> LocalConfig:
        """The stack's settings; :class:`ConfigError` names a variable whose value cannot work."""
        def number(name: str, default: float | None, low: float, high: float = float("inf"), whole: bool = True) -> Any:
            raw = env.get(name)
            if raw is None or raw == "":
                return default
            try:
                value = int(raw) if whole else float(raw)
            except ValueError:
                raise ConfigError(f"{name}={raw!r}: expected {'a whole number' if whole else 'a number'}") from None
            if not low <= value <= high:
                bounds = f"at least {low:g}" if high == float("inf") else f"from {low:g} to {high:g}"
                raise ConfigError(f"{name}={raw!r}: expected {bounds}")
            return value

        def port(name: str, default: int) -> int:
            return number(name, default, 1, 65535)

        # the students' limits are read by the hub (wod_spawner.py, wod_authenticator.py): checked here, before
        # anything starts; 0 turns the processes, memory, disk and CPU limits off
        for limit, low in (("WOD_STUDENT_PROCESSES", 16), ("WOD_STUDENT_MEMORY_MB", 128), ("WOD_STUDENT_DISK_MB", 16),
                           ("WOD_STUDENT_OPEN_FILES", 64), ("WOD_STUDENT_FILE_MB", 1)):
            value = number(limit, None, 0)
            if value is not None and value < low and not (value == 0 and "FILE" not in limit):
                raise ConfigError(f"{limit}={env[limit]!r}: at least {low} (or 0: no limit)")
        number("WOD_STUDENT_CPUS", None, 0, whole=False)

        return cls(
            state_dir=Path(env.get("WOD_STATE_DIR", ROOT / ".wod")).resolve(),
            host=env.get("WOD_HOST", cls.host),
            app_port=port("WOD_APP_PORT", cls.app_port),
            inbox_port=port("WOD_INBOX_PORT", cls.inbox_port),
            smtp_port=port("WOD_SMTP_PORT", cls.smtp_port),
            aws_port=port("WOD_AWS_PORT", cls.aws_port),
            hub_port=port("WOD_HUB_PORT", cls.hub_port),
            hub_api_port=port("WOD_HUB_API_PORT", cls.hub_api_port),
            hub_proxy_api_port=port("WOD_HUB_PROXY_API_PORT", cls.hub_proxy_api_port),
            workers_port=port("WOD_WORKERS_PORT", cls.workers_port),
            web_workers=number("WOD_WEB_WORKERS", cls.web_workers, 1, 64),
            web_threads=number("WOD_WEB_THREADS", cls.web_threads, 1, 256),
            web_backlog=number("WOD_WEB_BACKLOG", cls.web_backlog, 1),
            worker_threads=number("WOD_WORKER_THREADS", cls.worker_threads, 1, 1024),
            clock_epoch=number("WOD_CLOCK_EPOCH", None, 0, whole=False),
            hub_spawner=env.get("WOD_HUB_SPAWNER", cls.hub_spawner),
            hub_nice=number("WOD_HUB_NICE", cls.hub_nice, 0, 19),
            hub_cpu_weight=number("WOD_HUB_CPU_WEIGHT", cls.hub_cpu_weight, 1, 10000),
            tick_seconds=number("WOD_TICK_SECONDS", cls.tick_seconds, 0.1, whole=False),
            health_seconds=number("WOD_HEALTH_SECONDS", cls.health_seconds, 0.5, whole=False),
            time_scale=number("WOD_TIME_SCALE", cls.time_scale, 0.001, whole=False),
            backend=env.get("WOD_LOCAL_BACKEND", "1") not in ("0", "false", "no", "off"),
            workshops=Path(env.get("WOD_WORKSHOPS", cls.workshops)).resolve(),
        )

    @property
    def secrets_file(self) -> Path:
        return self.state_dir / "secrets.json"

    @property
    def app_url(self) -> str:
        return f"http://{self.host}:{self.app_port}"

    @property
    def inbox_url(self) -> str:
        return f"http://{self.host}:{self.inbox_port}"

    @property
    def hub_url(self) -> str:
        return f"http://{self.host}:{self.hub_port}"

    @property
    def aws_endpoint(self) -> str:
        return f"http://{self.host}:{self.aws_port}"

    @property
    def workers_url(self) -> str:
        return f"http://{self.host}:{self.workers_port}"

    def clock(self) -> Callable[[], datetime]:
        """The business clock of every part: wall time, or with ``WOD_TIME_SCALE`` time that runs
        faster from ``WOD_CLOCK_EPOCH`` (set once by the supervisor), the same in every process."""
        from chalicelib.services.context import ScaledClock, utcnow

        if self.time_scale == 1:
            return utcnow
        clock = ScaledClock(self.time_scale)
        if self.clock_epoch is not None:
            clock.start = clock.wall_start = datetime.fromtimestamp(self.clock_epoch, UTC)
        return clock

    def app_environment(self) -> dict[str, str]:
        """What the app's settings read in local mode."""
        return {
            "WOD_STAGE": "local",
            "WOD_AWS_ENDPOINT": self.aws_endpoint,
            "WOD_PUBLIC_URL": self.app_url,
            "WOD_MAIL_TRANSPORT": "smtp",
            "WOD_SMTP_HOST": self.host,
            "WOD_SMTP_PORT": str(self.smtp_port),
            "WOD_SECRETS_FILE": str(self.secrets_file),
            "WOD_HUB_URL": self.hub_url,
            "WOD_WORKSHOPS_DIR": str(self.workshops),
            # the event report, to the local inbox
            "WOD_REPORT_TO": os.environ.get("WOD_REPORT_TO", "organisers@example.org"),
            # the workers read the registrations' stream (local/stream.py)
            "WOD_OUTBOX_DISPATCH": os.environ.get("WOD_OUTBOX_DISPATCH", "stream"),
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
            "POWERTOOLS_LOG_LEVEL": os.environ.get("WOD_LOG_LEVEL", "INFO"),
            "POWERTOOLS_METRICS_DISABLED": "true",  # no CloudWatch here: no metric lines on the console
        }


def ensure_secrets(path: Path, locations: Iterable[str] | None = None) -> dict[str, str]:
    """Generate the local keys once (0600); later runs reuse them. Order and callback keys are one
    per location (``order_key/<location>``): those of ``locations``, by default every location of
    the settings (``WOD_LOCATIONS``) and this stack's own (``WOD_LOCATION``). A file from before
    per-location keys keeps its single ``order_key`` and ``callback_key`` as the first location's."""
    if locations is None:
        from chalicelib.settings import load_settings

        settings = load_settings()
        locations = [settings.location, *settings.locations]
    places = list(dict.fromkeys(locations))
    path.parent.mkdir(parents=True, exist_ok=True)
    existing = json.loads(path.read_text()) if path.exists() else {}
    wanted = {name: existing.get(name) or secrets.token_urlsafe(32) for name in NAMES if name not in LOCAL_PER_LOCATION}
    for name in LOCAL_PER_LOCATION:
        for number, location in enumerate(places):
            single = existing.get(name) if number == 0 else None
            key = file_key(name, location)
            wanted[key] = existing.get(key) or single or secrets.token_urlsafe(32)
    wanted |= {key: value for key, value in existing.items() if "/" in key and key not in wanted}  # other locations
    if wanted != existing:
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(wanted, handle, indent=2)
        os.replace(tmp, path)
    os.chmod(path, 0o600)
    return wanted
