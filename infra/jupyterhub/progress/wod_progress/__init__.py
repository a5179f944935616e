"""A participant's progress, as it happens, for the facilitator's live room.

Loaded into every kernel the hub's servers start (an IPython extension, named in the hub venv's
``etc/ipython/ipython_kernel_config.py``), it reports what the participant did — the notebook
opened, each cell run (its place in the notebook), each exercise check run and whether it passed,
a raised hand (``%hand``) — in small batches, at most every few seconds, to the hub
(``$JUPYTERHUB_API_URL/wod/events``) with the student's own ``$JUPYTERHUB_API_TOKEN``. The hub
names the student and signs the batch for the platform. Outside a hub (no token) it does nothing.
The platform's answer carries the facilitator's message: it is shown once, under the next cell
the participant runs.

A check is a cell marked as nbgrader marks one (``nbgrader: {grade: true}``, not a solution); it
passed when it ran without an error. The notebook's cells are read from its saved file.
"""
from __future__ import annotations

import html
import json
import os
import secrets
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

FLUSH_SECONDS = 5.0
MAX_BATCH = 50
MAX_WAITING = 500  # events kept while the hub does not answer
MAX_NOTEBOOK_BYTES = 5 * 1024 * 1024  # a larger saved notebook (big outputs) is not read
MAX_PATH = 200
TIMEOUT = 10
SENT, KEPT, REFUSED = "sent", "kept", "refused"
HAND_SAYS = {
    "up": "Your hand is up: a facilitator will come to you.",
    "waiting": "The hub does not answer right now: your hand goes up as soon as it does. If it is urgent, "
               "press Ask for help on your registration page.",
    "refused": "Your hand could not be raised from here (is your workshop still running?): press Ask for "
               "help on your registration page.",
}


class Notebook:
    """The saved cells of the kernel's notebook: (id, source, grade_id of a check or None)."""

    def __init__(self, path: Path | None):
        self.path, self._seen, self.cells = path, None, []

    def refresh(self) -> list[tuple[str | None, str, str | None]]:
        if self.path is None:
            return self.cells
        try:
            info = self.path.stat()
            stamp = info.st_mtime_ns
            if stamp != self._seen and info.st_size > MAX_NOTEBOOK_BYTES:
                self.cells, self._seen = [], stamp
            elif stamp != self._seen:
                data = json.loads(self.path.read_text(encoding="utf-8"))
                self.cells = [_cell(c) for c in data.get("cells", []) if isinstance(c, dict)]
                self._seen = stamp
        except (OSError, ValueError, TypeError, AttributeError):
            self.cells = []
        return self.cells

    def find(self, cell_id: str | None, source: str) -> tuple[int | None, str | None]:
        """The place of the cell that ran, and its check's grade_id when it is a check."""
        cells = self.refresh()
        text = source.strip()
        for index, (cid, saved, grade_id) in enumerate(cells):
            if cell_id and cid == cell_id:
                return index, grade_id if saved.strip() == text else None
        for index, (_, saved, grade_id) in enumerate(cells):
            if saved.strip() == text and text:
                return index, grade_id
        return None, None


def _cell(cell: dict) -> tuple[str | None, str, str | None]:
    source = cell.get("source", "")
    source = "".join(source) if isinstance(source, list) else str(source)
    metadata = cell.get("metadata")
    marks = metadata.get("nbgrader") if isinstance(metadata, dict) else None
    marks = marks if isinstance(marks, dict) else {}
    check = cell.get("cell_type") == "code" and marks.get("grade") is True and not marks.get("solution")
    grade_id = marks.get("grade_id") if check and isinstance(marks.get("grade_id"), str) else None
    return cell.get("id"), source, grade_id


class Reporter:
    """Events queued by the kernel, sent by a thread of their own (a cell never waits for the hub)."""

    def __init__(self, url: str, token: str, notebook: str | None, background: bool = True):
        self.url, self.token, self.notebook = url, token, notebook
        self.source = secrets.token_urlsafe(12)  # this kernel: the platform knows a resent event by it
        self.queue: list[dict[str, Any]] = []
        self.lock, self.wake = threading.Lock(), threading.Event()
        self.sending = threading.Lock()  # one batch in flight: the platform takes a kernel's events in order
        self.refused = 0
        self.hand_state: str | None = None  # how the last raised hand went: up, waiting or refused
        self.message: dict[str, str] | None = None  # the facilitator's latest, as the platform answered
        self.shown: str | None = None  # the time of the message last shown
        self.thread = threading.Thread(target=self._run, name="wod-progress", daemon=True)
        if background:
            self.thread.start()

    def add(self, kind: str, now: bool = False, **fields: Any) -> None:
        event = {"kind": kind, "at": time.time(), **({"notebook": self.notebook} if self.notebook else {}), **fields}
        with self.lock:
            self.queue.append(event)
            del self.queue[:-MAX_WAITING]
            if now or len(self.queue) >= MAX_BATCH:
                self.wake.set()

    def _run(self) -> None:
        while True:
            self.wake.wait(FLUSH_SECONDS)
            self.wake.clear()
            try:
                self.flush()
            except Exception:  # the thread outlives any trouble: the events wait for the next round
                time.sleep(FLUSH_SECONDS)

    def flush(self) -> bool:
        """Send the oldest batch; True when it was taken (or nothing waited)."""
        with self.sending:
            return self._send() == SENT

    def send_all(self) -> str:
        """Send everything queued, in order, now (the caller waits): SENT, KEPT (the hub did not answer:
        it waits for the next round) or REFUSED."""
        with self.sending:
            for _ in range(MAX_WAITING // MAX_BATCH + 1):
                with self.lock:
                    if not self.queue:
                        return SENT
                outcome = self._send()
                if outcome != SENT:
                    return outcome
            return KEPT

    def _send(self) -> str:
        with self.lock:
            batch, self.queue = self.queue[:MAX_BATCH], self.queue[MAX_BATCH:]
        if not batch:
            return SENT
        body = json.dumps({"source": self.source, "events": batch}).encode()
        request = urllib.request.Request(self.url, data=body, method="POST",
                                         headers={"Authorization": f"token {self.token}",
                                                  "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                self._read_message(response.read(64 * 1024))
                return SENT
        except urllib.error.HTTPError as exc:
            if exc.code >= 500 or exc.code == 429:
                self._keep(batch)
                return KEPT
            self.refused += len(batch)  # refused for good (the workshop ended, a replay): nothing to retry
            return REFUSED
        except Exception:  # no answer, a cut one, a proxy restarting: the batch waits for the next round
            self._keep(batch)
            return KEPT

    def raise_hand(self) -> str:
        """Raise the participant's hand now, after what the kernel reported before it; what to tell them."""
        self.add("hand")
        self.hand_state = {SENT: "up", KEPT: "waiting"}.get(self.send_all(), "refused")
        return HAND_SAYS[self.hand_state]

    def _read_message(self, body: bytes) -> None:
        try:
            message = json.loads(body or b"{}").get("message")
        except (ValueError, AttributeError):
            return
        if isinstance(message, dict) and isinstance(message.get("text"), str) and isinstance(message.get("at"), str):
            self.message = {"text": message["text"][:280], "at": message["at"]}

    def unseen_message(self) -> str | None:
        """The facilitator's message not shown yet in this kernel (then it counts as shown)."""
        message = self.message
        if not message or message["at"] == self.shown:
            return None
        self.shown = message["at"]
        return message["text"]

    def _keep(self, batch: list[dict[str, Any]]) -> None:
        with self.lock:
            self.queue[:0] = batch
            del self.queue[:-MAX_WAITING]


_reporter: Reporter | None = None


def hand_state() -> str:
    """How the last raised hand went (``up``, ``waiting``, ``refused``; empty: none or no reporter): what
    JupyterLab's Ask for help button reads back after running ``%hand``."""
    return (_reporter.hand_state or "") if _reporter is not None else ""


def shown_path(session: str, home: Path | None = None) -> str:
    """The notebook as the participant sees it in JupyterLab: relative to their home."""
    path = Path(session)
    try:
        shown = str(path.relative_to(home or Path.home())) if path.is_absolute() else session
    except ValueError:
        shown = session
    shown = "".join(ch for ch in shown if ch.isprintable())
    return shown if len(shown) <= MAX_PATH else "…" + shown[-(MAX_PATH - 1):]


def load_ipython_extension(ip) -> None:
    global _reporter
    token, api = os.environ.get("JUPYTERHUB_API_TOKEN"), os.environ.get("JUPYTERHUB_API_URL")
    if not token or not api or _reporter is not None:
        return
    session = os.environ.get("JPY_SESSION_NAME") or ""
    name = Path(session).name if session.endswith(".ipynb") else None
    notebook = Notebook(Path.cwd() / name if name else None)
    _reporter = reporter = Reporter(api.rstrip("/") + "/wod/events", token, shown_path(session) or None)
    reporter.add("opened")

    def after(result) -> None:
        try:
            report(result)
        except Exception:  # a participant's cell never shows the reporter's trouble
            pass

    def report(result) -> None:
        info = getattr(result, "info", None)
        if info is None or getattr(info, "silent", False):
            return
        index, grade_id = notebook.find(getattr(info, "cell_id", None), info.raw_cell or "")
        if index is not None:
            reporter.add("executed", cell=index, cells=max(len(notebook.cells), index + 1))
        else:  # a cell not saved yet: activity, not a step
            reporter.add("executed")
        if grade_id:
            reporter.add("check", check=grade_id, passed=bool(result.success), now=True)
        text = reporter.unseen_message()
        if text:
            from IPython.display import display
            display({"text/plain": f"Message from the facilitator: {text}",
                     "text/html": '<div role="status" style="border-left:4px solid #0b7a5a;padding:4px 8px">'
                                  f"<strong>Message from the facilitator:</strong> {html.escape(text)}</div>"},
                    raw=True)

    def hand(line: str = "") -> None:
        print(reporter.raise_hand())

    ip.events.register("post_run_cell", after)
    ip.register_magic_function(hand, "line", "hand")
