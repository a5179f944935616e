"""Start the whole platform on one machine: embedded AWS, mail, app, timer."""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

from local.aws import EmbeddedAws
from local.config import LocalConfig, ensure_secrets
from local.mailbox import InboxServer, Mailbox, SmtpServer

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

    def _log_to_file(self) -> Path:
        logs = self.config.state_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(logs / "stack.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        return logs / "stack.log"

    def start(self) -> None:
        cfg = self.config
        print(f"Starting Workshops-on-Demand (state in {cfg.state_dir})", flush=True)
        log_file = self._log_to_file()
        ensure_secrets(cfg.secrets_file)
        os.environ.update(cfg.app_environment())

        t = _step(f"embedded AWS on {cfg.aws_endpoint}")
        aws = EmbeddedAws(cfg.host, cfg.aws_port).start()
        self.parts.append(aws)
        from chalicelib.settings import get_settings
        from chalicelib.store import models

        get_settings.cache_clear()
        models.bind(get_settings())
        models.create_tables()
        _done(t, "tables created")

        t = _step(f"mail: SMTP on {cfg.host}:{cfg.smtp_port}, inbox on {cfg.inbox_url}")
        self.mailbox = Mailbox(cfg.state_dir)
        smtp = SmtpServer(self.mailbox.add, cfg.host, cfg.smtp_port)
        smtp.start()
        inbox = InboxServer(self.mailbox, cfg.host, cfg.inbox_port)
        inbox.start()
        self.parts += [smtp, inbox]
        _done(t)

        t = _step(f"workshops from {cfg.workshops}")
        summary = self._sync()
        _done(t, summary)

        t = _step(f"app on {cfg.app_url}")
        self._start_app()
        _done(t)

        timer = threading.Thread(target=self._timer, name="time-checks", daemon=True)
        timer.start()
        print(
            "\nReady.\n"
            f"  Catalog        {cfg.app_url}/\n"
            f"  Inbox          {cfg.inbox_url}/\n"
            f"  JSON API       {cfg.app_url}/api/workshops\n"
            f"  Embedded AWS   {cfg.aws_endpoint}\n"
            f"  Logs           {log_file}\n"
            "Press Ctrl-C to stop.",
            flush=True,
        )

    def _sync(self) -> str:
        from chalicelib.catalog.folders import load_catalog
        from chalicelib.catalog.sync import sync_workshop
        from chalicelib.settings import get_settings

        workshops, problems = load_catalog(self.config.workshops, get_settings().locations.keys())
        for file, where, message in problems:
            print(f"\n    {file}: {where}: {message}", end="")
        if problems:
            raise SystemExit(f"\n{len(problems)} problem(s) in the workshop folders; fix them and run again.")
        for workshop in workshops:
            log.info(sync_workshop(workshop).line())
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
        threading.Thread(target=server.server.serve_forever, name="app", daemon=True).start()
        self.parts.append(server)

    def _timer(self) -> None:
        from chalicelib import lifecycle

        while not self.stopping.wait(self.config.tick_seconds):
            try:
                lifecycle.tick()
            except Exception:
                log.exception("time checks failed; the next tick retries")

    def stop(self) -> None:
        self.stopping.set()
        for part in reversed(self.parts):
            try:
                (getattr(part, "shutdown", None) or part.stop)()
            except Exception:
                log.exception("stopping %s", part)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main() -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    stack = Stack(LocalConfig.from_env())
    try:
        stack.start()
        stack.stopping.wait()
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"\nCannot start: {exc}. Is another copy running? Ports can be changed with WOD_*_PORT.", file=sys.stderr)
        return 1
    finally:
        print("\nStopping ...", flush=True)
        stack.stop()
    return 0
