"""``python -m local run`` (``make run``): the whole platform on one machine, as processes like
the cloud it mirrors, started in this order and supervised (``local/supervisor.py``):

========  ==========================================  =====================================
part      command                                     stands in for
========  ==========================================  =====================================
aws       ``python -m local aws``      (4566)         DynamoDB, Step Functions, SNS, SES
workers   ``python -m local workers``  (8010)         the task Lambdas, the time-check schedule
mail      ``python -m local mail``     (2525, 8025)   SES outbound and inbound (orders)
hub       ``python -m local hub``      (8001)         the JupyterHub host, at nice 10
web       ``python -m local web``      (8000)         API Gateway + the ``api`` Lambda (gunicorn)
========  ==========================================  =====================================

The workshops are synced once all but the web are up. workers, mail, hub and web keep no
state of their own: one that stops is started again. The aws process holds the stack's state:
if it stops, the stack says so and stops as a whole (exit code 1) rather than run without it;
its state is on disk and ``make run`` brings it back. Ctrl-C or SIGTERM stops every part.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from local.config import ConfigError, LocalConfig, ensure_secrets
from local.orphans import StackRunning
from local.supervisor import Child, ChildFailed, Supervisor

if TYPE_CHECKING:
    from chalicelib.services.context import Context

log = logging.getLogger("wod.local")


def _step(message: str) -> float:
    print(f"  • {message} ...", end="", flush=True)
    return time.monotonic()


def _done(started: float, detail: str = "") -> None:
    print(f" ok ({time.monotonic() - started:.1f}s){' ' + detail if detail else ''}", flush=True)


HEALTH_FAILURES = 3  # checks in a row without an answer: the part is hung (about 30 s)


def _smtp_answers(host: str, port: int) -> Callable[[], bool]:
    def probe() -> bool:
        import smtplib

        try:
            with smtplib.SMTP(host, port, timeout=10) as smtp:
                return smtp.noop()[0] == 250
        except (OSError, smtplib.SMTPException):
            return False

    return probe


def ready_banner(cfg: LocalConfig, logs: Path) -> str:
    """What ``make run`` prints once everything answers: where things are, and where the admin token
    is kept (never the token: a console is often logged, and such a log is rarely private)."""
    return ("\nReady.\n"
            f"  Catalog        {cfg.app_url}/\n"
            f"  Inbox          {cfg.inbox_url}/\n"
            f"  JupyterHub     {cfg.hub_url}/\n"
            f"  Admin          {cfg.app_url}/admin  token: \"admin_token\" in {cfg.secrets_file} (root only)\n"
            f"  JSON API       {cfg.app_url}/api/workshops\n"
            f"  Embedded AWS   {cfg.aws_endpoint}\n"
            f"  Logs           {logs}/ (stack.log; aws, workers, mail, hub, web .log; jupyterhub.log)\n"
            "Press Ctrl-C to stop.")


class HealthWatch:
    """A part that runs but no longer answers (stopped, deadlocked) is as good as dead: every
    ``every`` seconds (``WOD_HEALTH_SECONDS``) each part in ``probes`` is asked, and one that fails
    ``HEALTH_FAILURES`` times in a row is killed, which the supervisor then reports and restarts
    like any part that stopped."""

    def __init__(self, supervisor: Supervisor, probes: dict[str, Callable[[], bool]], every: float):
        self.supervisor, self.probes, self.every = supervisor, probes, every
        self.failures: dict[str, int] = {}
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="health", daemon=True)

    def _loop(self) -> None:
        while not self.stopping.wait(self.every):
            for child in list(self.supervisor.children):
                probe = self.probes.get(child.name)
                if probe is None or not isinstance(child, Child) or child.exit_code() is not None:
                    continue
                if not self.supervisor.running(child.name) or probe():
                    self.failures[child.name] = 0
                    continue
                self.failures[child.name] = self.failures.get(child.name, 0) + 1
                if self.failures[child.name] >= HEALTH_FAILURES:
                    self.failures[child.name] = 0
                    log.error("%s has not answered for %d checks; killing it to start it again", child.name,
                              HEALTH_FAILURES)
                    print(f"{child.name} ({child.description}) stopped answering; restarting it ...", flush=True)
                    child.kill_group()


def _answers(url: str, timeout: float = 2) -> Callable[[], bool]:
    def probe() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                return response.status < 500
        except urllib.error.HTTPError as error:
            return error.code < 500
        except (urllib.error.URLError, OSError):
            return False

    return probe


class Stack:
    def __init__(self, config: LocalConfig):
        self.config = config
        self.supervisor = Supervisor(config.state_dir)
        self.stopping = False
        self.health: HealthWatch | None = None

    @property
    def logs(self) -> Path:
        return self.config.state_dir / "logs"

    def _log_to_file(self) -> Path:
        self.logs.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(self.logs / "stack.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        for chatty in ("werkzeug", "mail.log", "botocore", "urllib3"):
            logging.getLogger(chatty).setLevel(logging.WARNING)
        return self.logs / "stack.log"

    def _child(self, name: str, description: str, **options) -> Child:
        return Child(name, [sys.executable, "-m", "local", name], log_dir=self.logs, description=description,
                     **options)

    def _start(self, child: Child, label: str) -> dict:
        started = _step(label)
        details = self.supervisor.start(child, lambda: self.stopping)
        return {"started": started, **details}

    def start(self) -> None:
        cfg = self.config
        print(f"Starting Workshops-on-Demand (state in {cfg.state_dir})", flush=True)
        cfg.state_dir.mkdir(parents=True, exist_ok=True)
        from local.orphans import claim, stop_orphans

        claim(cfg.state_dir)  # first: a stack that runs on this state keeps it, untouched
        os.chmod(cfg.state_dir, 0o700)  # mail, logs and keys: never readable by students
        log_file = self._log_to_file()
        for stopped in stop_orphans(cfg.state_dir):  # before any part starts
            print(f"  • stopped {stopped}, left by a stack that died", flush=True)
        ensure_secrets(cfg.secrets_file)
        os.environ.update(cfg.app_environment())
        os.environ.setdefault("WOD_CLOCK_EPOCH", repr(time.time()))  # one business clock for every part
        self.config = cfg = LocalConfig.from_env()
        from local.part import app_log_to

        app_log_to(log_file)

        aws = self._start(self._child("aws", "embedded AWS", restartable=False, stop_timeout=30),
                          f"embedded AWS on {cfg.aws_endpoint}")
        os.environ["WOD_STATE_MACHINES"] = json.dumps(aws["state_machines"])
        _done(aws["started"], f"tables, state machines, {aws['messaging']}; {aws['restored']} items restored "
                              "from disk")
        from chalicelib.services.recovery import hold_provisioning  # D: before the first time check

        log.info("recovery: %s in flight held", hold_provisioning(self._context()))
        if cfg.time_scale != 1:
            print(f"    time runs {cfg.time_scale:g}x faster: a 2 h workshop lasts {120 / cfg.time_scale:g} min",
                  flush=True)

        workers = self._start(self._child("workers", "task workers"),
                              f"task workers on {cfg.workers_url} ({cfg.worker_threads} threads)")
        _done(workers["started"], f"{workers['functions']} functions; time checks every {cfg.tick_seconds:g}s")

        mail = self._start(self._child("mail", "mail"),
                           f"mail: SMTP on {cfg.host}:{cfg.smtp_port}, inbox on {cfg.inbox_url}")
        _done(mail["started"], f"{mail['messages']} messages in the inbox")

        hub = self._start(self._child("hub", "JupyterHub", start_timeout=90, stop_timeout=30),
                          f"JupyterHub on {cfg.hub_url} ({cfg.hub_spawner} spawner)")
        _done(hub["started"], str(hub.get("priority")))

        started = _step(f"workshops from {cfg.workshops}")
        summary = self._sync(self._context())
        _done(started, summary)

        # Parts whose answer does not wait on a burst: the workers' health is served apart from its task
        # pool, and SMTP's NOOP by mail's event loop. A busy web (requests queue behind the burst) or a
        # busy hub (it yields the CPU) answers late without being hung, and is never killed for it.
        self.health = HealthWatch(self.supervisor, {
            "workers": _answers(f"{cfg.workers_url}/health", timeout=10),
            "mail": _smtp_answers(cfg.host, cfg.smtp_port)}, cfg.health_seconds)
        web = self._start(self._child("web", "app server", probe=_answers(f"{cfg.app_url}/api/workshops")),
                          f"app on {cfg.app_url} (gunicorn, {cfg.web_workers} workers x {cfg.web_threads} threads)")
        _done(web["started"])
        from chalicelib.services.recovery import redrive_provisioning  # D: hub, mail, workers, web answer

        log.info("recovery: %s re-ordered, %s errors", *redrive_provisioning(self._context()))
        self.health.thread.start()

        print(ready_banner(cfg, self.logs), flush=True)

    def _context(self) -> Context:
        from local.part import install_context

        return install_context(self.config)

    def _sync(self, context: Context) -> str:
        from chalicelib.adapters.workshop_folders import load_catalog
        from chalicelib.services.catalog import sync_workshop

        workshops, problems = load_catalog(self.config.workshops, context.settings.locations.keys())
        for file, where, message in problems:
            print(f"\n    {file}: {where}: {message}", end="")
        if problems:
            raise SystemExit(f"\n{len(problems)} problem(s) in the workshop folders; fix them and run again.")
        for workshop in workshops:
            log.info(sync_workshop(context, workshop).line())
        return f"{len(workshops)} synced"

    def watch(self) -> None:
        while not self.stopping and self.supervisor.watch_once():
            time.sleep(0.5)

    def stop(self) -> None:
        self.stopping = True
        if self.health is not None:
            self.health.stopping.set()
        self.supervisor.stop()

    @property
    def failed(self) -> str | None:
        return self.supervisor.failed


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main() -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)  # also when started from a shell that ignores SIGINT
    try:
        config = LocalConfig.from_env()
    except ConfigError as exc:
        print(f"Cannot start: {exc}", file=sys.stderr)
        return 2
    stack = Stack(config)
    code = 0
    try:
        stack.start()
        stack.watch()
    except KeyboardInterrupt:
        pass
    except ChildFailed as exc:
        child = next((c for c in stack.supervisor.children if c.name == exc.name), None)
        tail = child.log_tail() if isinstance(child, Child) else ""
        print(f"\nCannot start: {exc} (see {stack.logs}/{exc.name}.log):\n{tail}", file=sys.stderr, flush=True)
        code = 1
    except StackRunning as exc:
        print(f"\nCannot start: {exc}", file=sys.stderr)
        code = 1
    except OSError as exc:
        print(f"\nCannot start: {exc}. Is another copy running? Ports can be changed with WOD_*_PORT.", file=sys.stderr)
        code = 1
    finally:
        print("\nStopping ...", flush=True)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not leave parts behind
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()
    return 1 if stack.failed else code
