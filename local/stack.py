"""Start the whole platform on one machine: embedded AWS, mail, app, timer, JupyterHub.

Every part is watched: one that stops is reported on the console and in the stack log;
the ones that hold no state of their own (JupyterHub, the time checks, the snapshot loop)
are started again, and if another one stops the whole stack stops with a clear message
rather than run without it (its state is on disk: ``make run`` brings it back).
"""
from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from local.aws import EmbeddedAws
from local.config import LocalConfig, ensure_secrets
from local.hub import Hub
from local.mailbox import InboxServer, Mailbox, SmtpServer
from local.orders import OrderRouter
from local.persistence import DynamoSnapshot

if TYPE_CHECKING:
    from chalicelib.services.context import Context

log = logging.getLogger("wod.local")


def _step(message: str) -> float:
    print(f"  • {message} ...", end="", flush=True)
    return time.monotonic()


def _done(started: float, detail: str = "") -> None:
    print(f" ok ({time.monotonic() - started:.1f}s){' ' + detail if detail else ''}", flush=True)


class Stack:
    def __init__(self, config: LocalConfig):
        self.config = config
        self.stopping = threading.Event()
        self.parts: list = []
        self.watched: list[tuple] = []  # (name, alive(), restart() or None)
        self.failed: str | None = None
        self.context: Context | None = None  # built once the embedded AWS is up; installed for the app

    def _log_to_file(self) -> Path:
        logs = self.config.state_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(logs / "stack.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        for chatty in ("werkzeug", "mail.log", "botocore", "urllib3"):
            logging.getLogger(chatty).setLevel(logging.WARNING)
        return logs / "stack.log"

    @staticmethod
    def _app_log_to(path: Path) -> None:
        """The app's structured (JSON) log lines go to the stack log, not the console."""
        from chalicelib.observability import logger as app_logger

        stream = open(path, "a", buffering=1)
        for handler in app_logger.handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(stream)
        app_logger._logger.propagate = False  # written once, in JSON

    def start(self) -> None:
        cfg = self.config
        print(f"Starting Workshops-on-Demand (state in {cfg.state_dir})", flush=True)
        cfg.state_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(cfg.state_dir, 0o700)  # mail, logs and keys: never readable by students
        log_file = self._log_to_file()
        ensure_secrets(cfg.secrets_file)
        os.environ.update(cfg.app_environment())
        self._app_log_to(log_file)

        t = _step(f"embedded AWS on {cfg.aws_endpoint}")
        aws = EmbeddedAws(cfg.host, cfg.aws_port).start()
        self.parts.append(aws)
        self._workflows(aws)
        import boto3

        from chalicelib.settings import get_settings
        from local.tables import create_tables

        get_settings.cache_clear()
        create_tables(boto3.client("dynamodb", endpoint_url=aws.endpoint, region_name=os.environ["AWS_DEFAULT_REGION"]),
                      get_settings().table_prefix)
        restored = self._restore(aws)
        from local.messaging import create_messaging

        messaging = create_messaging(aws.endpoint, os.environ["AWS_DEFAULT_REGION"], get_settings())
        context = self._build_context()
        _done(t, f"tables, state machines, {messaging}; {restored} items restored from disk")

        t = _step(f"JupyterHub on {cfg.hub_url} ({cfg.hub_spawner} spawner)")
        self._start_hub()
        _done(t)

        t = _step(f"mail: SMTP on {cfg.host}:{cfg.smtp_port}, inbox on {cfg.inbox_url}")
        self.mailbox = Mailbox(cfg.state_dir)
        from app import order_intake

        served = get_settings().orders_addresses if cfg.backend else ()
        router = OrderRouter(self.mailbox.add, order_intake, served)
        smtp = SmtpServer(router, cfg.host, cfg.smtp_port)
        smtp.start()
        inbox = InboxServer(self.mailbox, cfg.host, cfg.inbox_port)
        inbox.start()
        self.parts += [smtp, inbox]
        self.watched += [("embedded AWS", aws.thread.is_alive, None),
                         ("SMTP server", lambda: smtp.alive, None),
                         ("inbox", lambda: inbox.alive, None)]
        _done(t)

        t = _step(f"workshops from {cfg.workshops}")
        summary = self._sync(context)
        _done(t, summary)

        t = _step(f"app on {cfg.app_url}")
        self._start_app()
        _done(t)

        timer = [self._thread(lambda: self._timer(context), "time-checks")]

        def restart_timer():
            timer[0] = self._thread(lambda: self._timer(context), "time-checks")

        self.watched += [("time checks", lambda: timer[0].is_alive(), restart_timer),
                         ("JupyterHub", lambda: self.hub.running, self._restart_hub)]
        self._thread(self._watch, "watch")
        from chalicelib.adapters.secrets import get_secret

        print(
            "\nReady.\n"
            f"  Catalog        {cfg.app_url}/\n"
            f"  Inbox          {cfg.inbox_url}/\n"
            f"  JupyterHub     {cfg.hub_url}/\n"
            f"  Admin          {cfg.app_url}/admin  token: {get_secret(get_settings(), 'admin_token')}\n"
            f"  JSON API       {cfg.app_url}/api/workshops\n"
            f"  Embedded AWS   {cfg.aws_endpoint}\n"
            f"  Logs           {log_file}\n"
            "Press Ctrl-C to stop.",
            flush=True,
        )

    @staticmethod
    def _thread(target, name: str) -> threading.Thread:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        return thread

    def _workflows(self, aws: EmbeddedAws) -> None:
        """Step Functions that execute, their Lambda tasks dispatched to the app's handlers."""
        import boto3

        from local.stepfunctions import LambdaDispatcher, enable_execution
        from local.workflows import create_state_machines, register_tasks

        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from app import app

        enable_execution(aws)
        register_tasks(LambdaDispatcher().install(), app)
        client = boto3.client("stepfunctions", endpoint_url=aws.endpoint, region_name=os.environ["AWS_DEFAULT_REGION"])
        arns = create_state_machines(client, os.environ["AWS_DEFAULT_REGION"])
        os.environ["WOD_STATE_MACHINES"] = json.dumps(arns)

    def _restore(self, aws: EmbeddedAws) -> int:
        """Load the last snapshot, then keep saving; the time checks re-drive what was in flight."""
        import boto3

        snapshot = DynamoSnapshot(self.config.state_dir / "dynamodb.json", aws, os.environ["AWS_DEFAULT_REGION"])
        client = boto3.client("dynamodb", endpoint_url=aws.endpoint, region_name=os.environ["AWS_DEFAULT_REGION"])
        restored = snapshot.restore(client)
        self.parts.append(snapshot.start())
        self.watched.append(("DynamoDB snapshot", lambda: snapshot.thread.is_alive(), snapshot.restart))
        return restored

    def _build_context(self) -> Context:
        """The stack's one Context (its business clock scaled for demos), installed for the app."""
        from chalicelib.services import context
        from chalicelib.settings import get_settings

        scale = self.config.time_scale
        clock = context.ScaledClock(scale) if scale != 1 else context.utcnow
        built = context.build(get_settings(), clock=clock)
        context.install(built)
        self.context = built
        if scale != 1:
            print(f"\n    time runs {scale:g}x faster: a 2 h workshop lasts {120 / scale:g} min", end="")
        return built

    def _start_hub(self) -> None:
        from chalicelib.adapters.secrets import get_secret
        from chalicelib.settings import get_settings

        settings = get_settings()
        cfg = self.config
        self.hub = Hub(state_dir=cfg.state_dir / "hub", log_file=cfg.state_dir / "logs" / "jupyterhub.log",
                       token=get_secret(settings, "hub_token"), port=cfg.hub_port, api_port=cfg.hub_api_port,
                       proxy_api_port=cfg.hub_proxy_api_port, aws_endpoint=cfg.aws_endpoint,
                       students_table=settings.table_name("students"), spawner=cfg.hub_spawner,
                       region=settings.region, host=cfg.host,
                       env={"WOD_HUB_BLOCKED_PORTS": f"{cfg.aws_port},{cfg.smtp_port},{cfg.inbox_port}"})
        self.hub.start()
        self.parts.append(self.hub)

    def _sync(self, context: Context) -> str:
        from chalicelib.adapters.workshop_folders import load_catalog
        from chalicelib.services.catalog import sync_workshop
        from chalicelib.settings import get_settings

        workshops, problems = load_catalog(self.config.workshops, get_settings().locations.keys())
        for file, where, message in problems:
            print(f"\n    {file}: {where}: {message}", end="")
        if problems:
            raise SystemExit(f"\n{len(problems)} problem(s) in the workshop folders; fix them and run again.")
        for workshop in workshops:
            log.info(sync_workshop(context, workshop).line())
        return f"{len(workshops)} synced"

    def _start_app(self) -> None:
        from chalice.config import Config
        from chalice.local import (
            ChaliceRequestHandler,
            CustomLocalChalice,
            LocalChalice,
            LocalDevServer,
            ThreadedHTTPServer,
        )

        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from app import app

        class BurstServer(ThreadedHTTPServer):
            request_queue_size = 256  # socketserver's 5 resets connections when many arrive at once

        class LoggedHandler(ChaliceRequestHandler):
            def log_message(self, fmt, *args):
                logging.getLogger("wod.local.http").info(fmt, *args)

        CustomLocalChalice.__bases__ = (LocalChalice, app.__class__)
        app.__class__ = CustomLocalChalice
        config = Config.create(chalice_stage="local", app_name="wod")
        server = LocalDevServer(app, config, self.config.host, self.config.app_port, handler_cls=LoggedHandler,
                                server_cls=BurstServer)
        app_thread = self._thread(server.server.serve_forever, "app")
        self.parts.append(server)
        self.watched.append(("app", app_thread.is_alive, None))

    def _restart_hub(self) -> None:
        """Its state is on disk; the student servers are started again on demand."""
        code = self.hub.proc.returncode if self.hub.proc else None
        print(f"  (JupyterHub exit code {code})", flush=True)
        self.hub.stop()
        self.hub.start()

    def _watch(self) -> None:
        while not self.stopping.wait(2):
            for name, alive, restart in self.watched:
                if self.stopping.is_set() or alive():
                    continue
                if restart is None:
                    print(f"\n{name} stopped unexpectedly; stopping the platform (see {self.config.state_dir}/logs). "
                          "Its state is saved: `make run` brings it back.", file=sys.stderr, flush=True)
                    log.error("%s stopped; stopping the stack", name)
                    self.failed = name
                    self.stopping.set()
                    return
                print(f"{name} stopped unexpectedly; restarting it ...", flush=True)
                log.error("%s stopped; restarting it", name)
                try:
                    restart()
                    print(f"{name} is back.", flush=True)
                except Exception:
                    log.exception("%s did not restart; next try in 2 s", name)

    def _timer(self, context: Context) -> None:
        from chalicelib.services.time_checks import tick

        while not self.stopping.wait(self.config.tick_seconds):
            try:
                tick(context)
            except Exception:
                log.exception("time checks failed; the next tick retries")

    def stop(self) -> None:
        self.stopping.set()
        if self.context is not None:
            self.context.appliances.stop_all()
        for part in reversed(self.parts):
            try:
                (getattr(part, "shutdown", None) or part.stop)()
            except Exception:
                log.exception("stopping %s", part)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main() -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)  # also when started from a shell that ignores SIGINT
    stack = Stack(LocalConfig.from_env())
    try:
        stack.start()
        # Wake up every second: a signal delivered to another thread runs its handler only
        # when the main thread comes back to Python code.
        while not stack.stopping.wait(1):
            pass
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"\nCannot start: {exc}. Is another copy running? Ports can be changed with WOD_*_PORT.", file=sys.stderr)
        return 1
    finally:
        print("\nStopping ...", flush=True)
        stack.stop()
    return 1 if stack.failed else 0
