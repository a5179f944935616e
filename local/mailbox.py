"""Local-mode mail: an SMTP sink (127.0.0.1:2525) and a web inbox (127.0.0.1:8025).

In local mode nothing leaves the machine: every email the platform sends lands in
a durable on-disk mailbox so a person (or a test) can read it like a real inbox.
"""
from __future__ import annotations

import asyncio
import email
import html
import json
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

from local.loopback import guarded

log = logging.getLogger("wod.local.mail")

Router = Callable[[bytes, str, list[str]], Any]
MAX_MESSAGE_BYTES = 10 * 1024 * 1024
_ID_RE = re.compile(r"^\d{1,20}-[0-9a-f]{32}$")
# The envelope is prepended as the first two header lines (as MTAs do) so it survives restarts.
_ENVELOPE_RE = re.compile(rb"\AReturn-Path: <([^\r\n]*)>\r\nX-Envelope-To: ([^\r\n]*)\r\n")
_ONE_LINE = str.maketrans("\r\n", "  ")


def _part_text(msg: EmailMessage, subtype: str) -> str:
    """Decode one body part; an unknown charset degrades to replacement characters."""
    part = msg.get_body(preferencelist=(subtype,))
    if part is None:
        return ""
    try:
        text = part.get_content()
    except (LookupError, ValueError, AssertionError):
        payload = part.get_payload(decode=True)
        text = payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else str(payload or "")
    return text.replace("\r\n", "\n")  # SMTP's CRLF is wire format, not content


def _parse(msg_id: str, raw: bytes) -> dict:
    """Turn a stored .eml into the message dict; never raises, malformed mail stays visible."""
    env = _ENVELOPE_RE.match(raw)
    mail_from = env.group(1).decode("utf-8", "replace") if env else ""
    to = [a for a in env.group(2).decode("utf-8", "replace").split(", ") if a] if env else []
    received = datetime.fromtimestamp(int(msg_id.split("-", 1)[0]) / 1e9, UTC)
    base: dict[str, Any] = {"id": msg_id, "from": mail_from, "to": to, "subject": "", "text": "", "html": "",
            "date": received.isoformat(timespec="milliseconds"), "headers": {}}
    try:
        msg = email.message_from_bytes(raw, policy=policy.default)
        headers: dict[str, str] = {}
        for name, value in msg.items():
            if name.lower().startswith("x-") and name.lower() != "x-envelope-to":
                headers.setdefault(name, str(value).strip())
        if not to:
            to = [a.addr_spec for h in ("To", "Cc") for a in getattr(msg.get(h), "addresses", ())]
        return {**base, "from": str(msg.get("From", "")) or mail_from, "to": to,
                "subject": str(msg.get("Subject", "")), "text": _part_text(msg, "plain"),
                "html": _part_text(msg, "html"), "headers": headers}
    except Exception:
        log.warning("message %s is malformed; storing it as raw text", msg_id, exc_info=True)
        return {**base, "text": raw.decode("utf-8", errors="replace")}


def _arrival(msg_id: str) -> int:
    """The arrival (epoch ns) a message id starts with; 0 for anything else."""
    head = msg_id.split("-", 1)[0]
    return int(head) if head.isascii() and head.isdigit() else 0  # "²" is a digit too


def _copy(msg: dict) -> dict:
    return {**msg, "to": list(msg["to"]), "headers": dict(msg["headers"])}


class Mailbox:
    """Durable inbox: one `<epoch-ns>-<uuid>.eml` per message plus an in-memory index."""

    def __init__(self, state_dir: str | os.PathLike) -> None:
        self.dir = Path(state_dir) / "mail"
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._index: dict[str, dict] = {}
        self._last_ns = 0
        for path in self.dir.iterdir():
            if path.name.startswith(".tmp-"):
                path.unlink(missing_ok=True)  # a write interrupted before os.replace
            elif path.suffix == ".eml" and _ID_RE.match(path.stem):
                try:
                    self._index[path.stem] = _parse(path.stem, path.read_bytes())
                except OSError:
                    log.exception("cannot read %s", path)
        if self._index:
            self._last_ns = max(int(i.split("-", 1)[0]) for i in self._index)
        log.info("mailbox %s loaded %d message(s)", self.dir, len(self._index))

    def add(self, raw: bytes, mail_from: str, rcpt_tos: Iterable[str]) -> dict:
        """Store a message atomically (temp file + os.replace) and return its dict."""
        envelope = (f"Return-Path: <{mail_from.translate(_ONE_LINE)}>\r\n"
                    f"X-Envelope-To: {', '.join(rcpt_tos).translate(_ONE_LINE)}\r\n")
        data = envelope.encode("utf-8") + raw
        with self._lock:  # ids are strictly increasing, so name order == arrival order
            self._last_ns = max(time.time_ns(), self._last_ns + 1)
            msg_id = f"{self._last_ns}-{uuid.uuid4().hex}"
        tmp = self.dir / f".tmp-{msg_id}"
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        msg = _parse(msg_id, data)
        with self._lock:
            os.replace(tmp, self.dir / f"{msg_id}.eml")
            self._index[msg_id] = msg
        log.info("stored mail %s to %s: %r", msg_id, msg["to"], msg["subject"])
        return _copy(msg)

    def list(self) -> list[dict]:
        """All messages, newest first."""
        with self._lock:
            msgs = list(self._index.values())
        msgs.sort(key=lambda m: int(m["id"].split("-", 1)[0]), reverse=True)
        return [_copy(m) for m in msgs]

    def get(self, msg_id: str) -> dict | None:
        with self._lock:
            msg = self._index.get(msg_id)
        return _copy(msg) if msg else None

    def raw(self, msg_id: str) -> bytes | None:
        """The stored .eml bytes; the id is checked against the index so no path escapes."""
        with self._lock:
            path = self.dir / f"{msg_id}.eml" if msg_id in self._index else None
            return path.read_bytes() if path and path.is_file() else None

    def clear(self) -> None:
        with self._lock:
            for msg_id in self._index:
                (self.dir / f"{msg_id}.eml").unlink(missing_ok=True)
            self._index.clear()


class SmtpServer:
    """SMTP sink; `router(raw, mail_from, rcpt_tos)` decides where each message goes.

    A failing router answers 451 so the sender retries instead of losing the mail.
    """

    def __init__(self, router: Router, host: str = "127.0.0.1", port: int = 2525) -> None:
        self.router, self.host, self.port = router, host, port
        self._controller = Controller(self, hostname=host, port=port,
                                      data_size_limit=MAX_MESSAGE_BYTES, enable_SMTPUTF8=True)

    def start(self) -> None:
        self._controller.start()
        log.info("SMTP sink listening on %s:%d", self.host, self.port)

    def stop(self) -> None:
        self._controller.stop()

    @property
    def alive(self) -> bool:
        thread = getattr(self._controller, "_thread", None)
        return bool(thread and thread.is_alive())

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """aiosmtpd hook; the router does disk I/O, so it runs off the SMTP event loop."""
        raw = envelope.original_content or envelope.content or b""
        try:
            await asyncio.get_running_loop().run_in_executor(
                None, self.router, raw, envelope.mail_from or "", list(envelope.rcpt_tos))
        except Exception:
            log.exception("routing mail from %s to %s failed", envelope.mail_from, envelope.rcpt_tos)
            return "451 Requested action aborted: local error in processing"
        return "250 Message accepted for delivery"


_CSP = ("default-src 'none'; style-src 'unsafe-inline'; frame-src 'self'; img-src * data:; "
        "base-uri 'none'; form-action 'none'")
_STYLE = """body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1d2330;background:#f4f5f7}
header{background:#01a982;color:#fff;padding:.8rem 1.2rem}header a{color:#fff}
main{max-width:1100px;margin:1rem auto;padding:0 1rem}a{color:#0b5cab}
table{width:100%;border-collapse:collapse;background:#fff;box-shadow:0 1px 3px #0002}
th,td{padding:.55rem .7rem;text-align:left;border-bottom:1px solid #e3e5e8;vertical-align:top;
overflow-wrap:anywhere}th{background:#eef0f3;font-weight:600}
.empty{padding:2rem;text-align:center;color:#666}
iframe{width:100%;height:70vh;border:1px solid #d0d4d9;background:#fff;resize:vertical}
pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#fff;padding:1rem;border:1px solid #d0d4d9}
@media(max-width:700px){thead{display:none}tr,td{display:block}td{border:0;padding:.15rem .7rem}
tr{border-bottom:1px solid #e3e5e8;padding:.5rem 0;background:#fff}}"""
_HEAD_RES = (re.compile(r"<head\b[^>]*>", re.I), re.compile(r"\A\s*<!doctype[^>]*>", re.I))


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _page(title: str, body: str, refresh: bool = False) -> str:
    meta = '<meta http-equiv="refresh" content="5">' if refresh else ""
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">{meta}'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>"
            f'<header><a href="/"><strong>Local inbox</strong></a></header><main>{body}</main>'
            f"</body></html>")


def _srcdoc(body_html: str) -> str:
    """Email HTML with `<base target=_blank>` so links leave the sandboxed frame in a new tab."""
    for pattern in _HEAD_RES:
        if m := pattern.search(body_html):
            return f'{body_html[:m.end()]}<base target="_blank">{body_html[m.end():]}'
    return f'<base target="_blank">{body_html}'


class InboxServer:
    """Threaded web inbox and JSON API over a Mailbox (werkzeug, no framework)."""

    _urls = Map([
        Rule("/", endpoint="inbox", methods=["GET"]),
        Rule("/messages/<msg_id>", endpoint="message", methods=["GET"]),
        Rule("/api/messages", endpoint="api_list", methods=["GET", "DELETE"]),
        Rule("/api/messages/<msg_id>", endpoint="api_get", methods=["GET"]),
        Rule("/api/messages/<msg_id>/raw", endpoint="api_raw", methods=["GET"]),
    ])

    def __init__(self, mailbox: Mailbox, host: str = "127.0.0.1", port: int = 8025) -> None:
        self.mailbox, self.host, self.port = mailbox, host, port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        # every participant's credentials are here: no web page may read them (local/loopback.py)
        self._server = make_server(self.host, self.port, guarded(self.wsgi_app, self.host), threaded=True)
        self.port = self._server.server_port  # resolves port=0
        self._thread = threading.Thread(target=self._server.serve_forever, name="wod-inbox",
                                        daemon=True)
        self._thread.start()
        log.info("web inbox on http://%s:%d", self.host, self.port)

    @property
    def alive(self) -> bool:
        return bool(self._thread and self._thread.is_alive())

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            if self._thread:
                self._thread.join(5)
            self._server = self._thread = None

    def wsgi_app(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        request = Request(environ)
        api = request.path.startswith("/api/")
        try:
            endpoint, args = self._urls.bind_to_environ(environ).match()
            response = getattr(self, f"_{endpoint}")(request, **args)
        except HTTPException as exc:
            response = exc.get_response(environ)
            if api:
                response.set_data(json.dumps({"error": exc.name}))
                response.mimetype = "application/json"
        except Exception:
            log.exception("inbox request %s %s failed", request.method, request.path)
            response = Response("internal error", 500, mimetype="text/plain")
        response.headers["Content-Security-Policy"] = _CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response(environ, start_response)

    @staticmethod
    def _json(data: Any, status: int = 200) -> Response:
        return Response(json.dumps(data, ensure_ascii=False), status, mimetype="application/json")

    def _api_list(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.mailbox.clear()
            return Response(status=204)
        to = request.args.get("to", "").strip().lower()
        subject = request.args.get("subject", "").lower()
        after = _arrival(request.args.get("after", ""))  # only what arrived after that message id
        msgs = [m for m in self.mailbox.list()
                if (not to or to in (a.lower() for a in m["to"]))
                and subject in m["subject"].lower() and _arrival(m["id"]) > after]
        return self._json(msgs)

    def _api_get(self, request: Request, msg_id: str) -> Response:
        msg = self.mailbox.get(msg_id)
        return self._json(msg) if msg else self._json({"error": "message not found"}, 404)

    def _api_raw(self, request: Request, msg_id: str) -> Response:
        raw = self.mailbox.raw(msg_id)
        if raw is None:
            return self._json({"error": "message not found"}, 404)
        if request.args.get("download"):
            return Response(raw, mimetype="message/rfc822", headers={
                "Content-Disposition": f'attachment; filename="{msg_id}.eml"'})
        return Response(raw, content_type="text/plain; charset=utf-8")

    def _inbox(self, request: Request) -> Response:
        msgs = self.mailbox.list()
        rows = "".join(
            f'<tr><td>{_e(m["from"])}</td><td>{_e(", ".join(m["to"]))}</td>'
            f'<td><a href="/messages/{_e(m["id"])}">{_e(m["subject"] or "(no subject)")}</a></td>'
            f'<td><time datetime="{_e(m["date"])}">{_e(m["date"][:19].replace("T", " "))} UTC'
            f"</time></td></tr>" for m in msgs)
        table = (f"<table><thead><tr><th>From</th><th>To</th><th>Subject</th><th>Received</th>"
                 f"</tr></thead><tbody>{rows}</tbody></table>" if msgs
                 else '<p class="empty">No messages yet. This page refreshes every 5 seconds.</p>')
        body = f"<h1>Local inbox</h1><p>{len(msgs)} message(s), newest first.</p>{table}"
        return Response(_page("Local inbox", body, refresh=True), mimetype="text/html")

    def _message(self, request: Request, msg_id: str) -> Response:
        msg = self.mailbox.get(msg_id)
        if msg is None:
            return Response(_page("Not found", "<p>Message not found.</p>"), 404,
                            mimetype="text/html")
        fields = [("From", msg["from"]), ("To", ", ".join(msg["to"])), ("Subject", msg["subject"]),
                  ("Received", msg["date"]), *msg["headers"].items()]
        rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in fields)
        parts = [f'<p><a href="/">&larr; Inbox</a> · <a href="/api/messages/{_e(msg_id)}/raw">'
                 f'Raw</a> · <a href="/api/messages/{_e(msg_id)}/raw?download=1">Download .eml'
                 f"</a></p><h1>{_e(msg['subject'] or '(no subject)')}</h1><table>{rows}</table>"]
        if msg["html"]:
            parts.append('<h2>HTML</h2><iframe title="HTML body" '
                         'sandbox="allow-popups allow-popups-to-escape-sandbox" '
                         f'srcdoc="{_e(_srcdoc(msg["html"]))}"></iframe>')
        if msg["text"]:
            parts.append(f"<h2>Text</h2><pre>{_e(msg['text'])}</pre>")
        return Response(_page(msg["subject"] or "Message", "".join(parts)), mimetype="text/html")
