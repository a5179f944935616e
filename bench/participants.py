"""Simulated participants of a live event, for ``bench/event_day.py``: each one behaves as a person
with a browser does, through the platform's public pages and the local inbox.

A participant arrives, fills in the registration form, waits for the confirmation email, confirms
it some seconds later (GET the link's page, POST its form), keeps the status page open (refreshing
it as the page's own script does: every ``data-refresh`` seconds, conditionally with
``If-None-Match``, slower after each ``304`` up to a minute; or at the ``<meta refresh>`` pace),
and, once the credentials email arrives, logs in to JupyterHub and opens the workshop's first
notebook (the JupyterLab page, the notebook's contents and a kernel session, as JupyterLab does).
Each request's latency is recorded by kind.
"""
from __future__ import annotations

import math
import random
import re
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ReadTimeoutError
from urllib3.util.retry import Retry

CONFIRM_SUBJECT = "Confirm your seat"
CREDENTIALS_SUBJECT = "Your workshop is ready"
NOTEBOOK = "0-ReadMeFirst.ipynb"
FORM = "application/x-www-form-urlencoded"
KINDS = ("register", "confirm", "status", "hub login", "notebook")
MAX_REFRESH = 60.0  # the status page's script never waits longer than this between two looks
BACKOFF = 1.5  # ... and waits this much longer after each look that found nothing new
JITTER = 0.2  # ... each wait drawn within this share of its value


# -- what every request took -----------------------------------------------------------------------

@dataclass
class Call:
    kind: str
    ms: float  # math.inf without an answer
    status: int | None
    error: str | None = None
    at: float = 0.0  # when it was sent (wall time)


class AgainOnDroppedConnection(Retry):
    """Once more on a connection the server had closed; never after a timeout."""

    def increment(self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None):
        if isinstance(error, ReadTimeoutError):
            raise error
        return super().increment(method, url, response, error, _pool, _stacktrace)


def browser_session() -> requests.Session:
    """A session that, as a browser does, sends a GET again once when the server closed the kept-alive
    connection it was sent on (nothing else is retried: a timeout or a 5xx is what the person sees)."""
    session = requests.Session()
    again = AgainOnDroppedConnection(total=1, connect=1, read=1, status=0, redirect=0, other=0,
                                     allowed_methods=frozenset({"GET", "HEAD"}), raise_on_status=False)
    adapter = HTTPAdapter(max_retries=again)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class Calls:
    """Every request of the run, by kind (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.by_kind: dict[str, list[Call]] = defaultdict(list)

    def add(self, call: Call) -> None:
        with self._lock:
            self.by_kind[call.kind].append(call)

    def timed(self, kind: str, send, *args, **kwargs) -> requests.Response | None:
        """``send(*args, **kwargs)`` timed as one ``kind`` request; None when it got no answer."""
        started, at = time.perf_counter(), time.time()
        try:
            response = send(*args, **kwargs)
        except requests.Timeout:
            self.add(Call(kind, math.inf, None, "timeout"))
            return None
        except requests.RequestException as exc:
            self.add(Call(kind, math.inf, None, type(exc).__name__))
            return None
        self.add(Call(kind, (time.perf_counter() - started) * 1000, response.status_code, at=at))
        return response


# -- the inbox, shared -------------------------------------------------------------------------------

class Inbox:
    """One poller of the local inbox for every participant: new messages (``?after=``) handed to
    their recipients."""

    def __init__(self, inbox_url: str, interval: float = 1.0):
        self.url, self.interval = inbox_url.rstrip("/"), interval
        self.http = requests.Session()
        self._lock = threading.Condition()
        self._mail: dict[str, list[dict]] = defaultdict(list)
        self._last = ""
        self._stop = threading.Event()
        self.errors = 0
        self._thread = threading.Thread(target=self._run, name="inbox", daemon=True)

    def start(self) -> Inbox:
        response = self.http.get(f"{self.url}/api/messages", params={"subject": "\0"}, timeout=60)
        response.raise_for_status()  # reachable (and nothing matches)
        newest = self.http.get(f"{self.url}/api/messages", timeout=120).json()
        self._last = newest[0]["id"] if newest else ""  # only this run's mail from here on
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                fresh = self.http.get(f"{self.url}/api/messages", params={"after": self._last}, timeout=60).json()
            except (requests.RequestException, ValueError):
                self.errors += 1
                fresh = []
            if fresh:
                self._last = fresh[0]["id"]  # newest first
                with self._lock:
                    for message in reversed(fresh):
                        message["arrived"] = time.time()
                        for to in message["to"]:
                            self._mail[to.lower()].append(message)
                    self._lock.notify_all()
            self._stop.wait(self.interval)

    def wait_for(self, address: str, subject: str, until: float, stop: threading.Event) -> dict | None:
        """The first message to ``address`` whose subject starts with ``subject``, waiting until the
        wall time ``until`` at most."""
        with self._lock:
            while not stop.is_set():
                for message in self._mail.get(address.lower(), ()):
                    if message["subject"].startswith(subject):
                        return message
                left = until - time.time()
                if left <= 0:
                    return None
                self._lock.wait(min(left, 1.0))
        return None


# -- one participant -------------------------------------------------------------------------------

_STATUS = re.compile(r'class="status status-([a-z]+)"')
_DATA_REFRESH = re.compile(r'data-refresh="(\d+(?:\.\d+)?)"')
_META_REFRESH = re.compile(r'http-equiv="refresh" content="(\d+)')
_CONFIRM = re.compile(r"(\S+)/confirm/([A-Za-z0-9_.-]+)")
_STUDENT = re.compile(r"Student name:\s*(\S+)")
_PASSWORD = re.compile(r"Password:\s*(\S+)")
_START = re.compile(r"Start workshop:\s*(\S+)")
_XSRF = re.compile(r'name="_xsrf" value="([^"]+)"')


def refresh_hint(page: str) -> float | None:
    """How soon the status page looks again by itself: its script's ``data-refresh``, else its
    ``<meta refresh>``; None when it does not refresh."""
    found = _DATA_REFRESH.search(page) or _META_REFRESH.search(page)
    return float(found.group(1)) if found else None


@dataclass
class Participant:
    n: int
    email: str
    arrives: float  # wall time
    confirms_after: float  # seconds after the confirmation email arrives
    status: str = "not registered"
    registered_at: float = math.nan
    confirmed_at: float = math.nan
    credentials_at: float = math.nan
    logged_in_at: float = math.nan
    notebook_at: float = math.nan
    student: str = ""
    problem: str = ""
    looks: int = 0  # status page requests
    unchanged: int = 0  # of which answered 304
    timeline: list[tuple[float, str]] = field(default_factory=list)


class Event:
    """The run: its participants, their requests and the shared inbox."""

    def __init__(self, app_url: str, inbox: Inbox, workshop: str, calls: Calls, timeout: float,
                 mail_wait: float, stop: threading.Event):
        self.app_url, self.inbox, self.workshop, self.calls = app_url.rstrip("/"), inbox, workshop, calls
        self.timeout, self.mail_wait, self.stop = timeout, mail_wait, stop
        self.origin = f"{urlsplit(self.app_url).scheme}://{urlsplit(self.app_url).netloc}"

    def live(self, p: Participant) -> None:
        """A participant's whole visit; never raises (a problem is kept on ``p.problem``)."""
        try:
            self._live(p)
        except Exception as exc:  # the run goes on; the figures name it
            p.problem = p.problem or f"{type(exc).__name__}: {exc}"[:200]

    def _wait_until(self, moment: float) -> bool:
        return not self.stop.wait(max(0.0, moment - time.time()))

    def _live(self, p: Participant) -> None:
        web = browser_session()
        if not self._wait_until(p.arrives):
            return
        form = {"email": p.email, "first_name": "Event", "last_name": f"Day{p.n}", "company": "Bench & Co",
                "accept_terms": "on"}
        answer = self.calls.timed("register", web.post, f"{self.app_url}/workshops/{self.workshop}", data=form,
                                  headers={"Origin": self.origin}, timeout=self.timeout, allow_redirects=False)
        if answer is None or answer.status_code >= 300:
            p.problem = f"registration answered {answer.status_code if answer is not None else 'nothing'}"
            return
        p.registered_at, p.status = time.time(), "registered"
        mail = self.inbox.wait_for(p.email, CONFIRM_SUBJECT, time.time() + self.mail_wait, self.stop)
        if mail is None:
            p.problem = p.problem or "no confirmation email"
            return
        link = _CONFIRM.search(mail["text"])
        if not link:
            p.problem = "no link in the confirmation email"
            return
        token = link.group(2)
        if not self._wait_until(mail["arrived"] + p.confirms_after):
            return
        self.calls.timed("confirm", web.get, f"{self.app_url}/confirm/{token}", timeout=self.timeout)
        answer = self.calls.timed("confirm", web.post, f"{self.app_url}/confirm/{token}", data="",
                                  headers={"Origin": self.origin, "Content-Type": FORM}, timeout=self.timeout,
                                  allow_redirects=False)
        if answer is None or answer.status_code != 303:
            p.problem = f"the confirmation answered {answer.status_code if answer is not None else 'nothing'}"
            return
        p.confirmed_at, p.status = time.time(), "confirmed"
        credentials = self._watch(p, web, f"{self.app_url}/registrations/{token}")
        if credentials is not None:
            self._work(p, credentials)

    def _watch(self, p: Participant, web: requests.Session, url: str) -> dict | None:
        """The status page, open until the credentials email arrives (or the run ends)."""
        etag, wait, hint = "", 0.0, None
        while not self.stop.is_set():
            mail = self.inbox.wait_for(p.email, CREDENTIALS_SUBJECT,
                                       time.time() + wait * random.uniform(1 - JITTER, 1 + JITTER), self.stop)
            if mail is not None:
                p.credentials_at = mail["arrived"]
                return mail
            if self.stop.is_set():  # the run is over: the page is closed, not looked at once more
                return None
            headers = {"If-None-Match": etag} if etag else {}
            answer = self.calls.timed("status", web.get, url, headers=headers, timeout=self.timeout)
            p.looks += 1
            if answer is None or answer.status_code >= 500:
                wait = hint or 5.0  # the script tries again at its pace
                continue
            if answer.status_code == 304:
                p.unchanged += 1
                wait = min(MAX_REFRESH, wait * BACKOFF)
                continue
            etag = answer.headers.get("ETag", "")
            found = _STATUS.search(answer.text)
            if found and found.group(1) != p.status:
                p.status = found.group(1)
                p.timeline.append((time.time(), p.status))
            hint = refresh_hint(answer.text)
            if p.status in ("failed", "cancelled", "expired", "finished"):
                p.problem = p.problem or f"registration {p.status}"
                return None
            wait = hint if hint is not None else MAX_REFRESH  # a page that no longer refreshes: mail only
        return None

    def _work(self, p: Participant, mail: dict) -> None:
        """Log in to the hub as the credentials email says and open the first notebook."""
        student, password, start = (_STUDENT.search(mail["text"]), _PASSWORD.search(mail["text"]),
                                    _START.search(mail["text"]))
        if not (student and password and start):
            p.problem = "credentials email without student, password or start link"
            return
        p.student = student.group(1)
        parts = urlsplit(start.group(1))
        hub = f"{parts.scheme}://{parts.netloc}"
        browser = browser_session()
        started = time.perf_counter()
        try:
            page = browser.get(f"{hub}/hub/login", timeout=self.timeout)
            xsrf = browser.cookies.get("_xsrf", path="/hub/") or browser.cookies.get("_xsrf") or ""
            found = _XSRF.search(page.text)
            answer = browser.post(f"{hub}/hub/login?next=/user/{p.student}/lab", timeout=self.timeout,
                                  data={"username": p.student, "password": password.group(1),
                                        "_xsrf": found.group(1) if found else xsrf})
        except requests.RequestException as exc:
            self.calls.add(Call("hub login", math.inf, None, "timeout" if isinstance(exc, requests.Timeout)
                                else type(exc).__name__))
            p.problem = f"hub login: {type(exc).__name__}"
            return
        ok = answer.status_code == 200 and f"/user/{p.student}/" in answer.url
        self.calls.add(Call("hub login", (time.perf_counter() - started) * 1000, answer.status_code))
        if not ok:
            p.problem = f"hub login ended on {answer.status_code} {urlsplit(answer.url).path}"
            return
        p.logged_in_at = time.time()
        base = f"{hub}/user/{p.student}/api"
        xsrf = browser.cookies.get("_xsrf", path=f"/user/{p.student}/") or browser.cookies.get("_xsrf") or ""
        opened = self.calls.timed("notebook", browser.get, f"{base}/contents/{NOTEBOOK}", params={"content": 1},
                                  timeout=self.timeout)
        session = self.calls.timed("notebook", browser.post, f"{base}/sessions", timeout=self.timeout,
                                   json={"path": NOTEBOOK, "name": NOTEBOOK, "type": "notebook",
                                         "kernel": {"name": "python3"}}, headers={"X-XSRFToken": xsrf})
        if opened is None or opened.status_code != 200 or session is None or session.status_code != 201:
            p.problem = (f"notebook: contents {opened.status_code if opened is not None else 'no answer'}, "
                         f"session {session.status_code if session is not None else 'no answer'}")
            return
        p.notebook_at, p.status = time.time(), "working"


def arrivals(n: int, over: float, start: float, rng: random.Random) -> list[float]:
    """``n`` arrival times from ``start``: a Poisson process of rate n/over (all at ``start`` when
    ``over`` is 0)."""
    if over <= 0:
        return [start] * n
    times, at = [], start
    for _ in range(n):
        at += rng.expovariate(n / over)
        times.append(at)
    return times


def run_event(event: Event, participants: list[Participant]) -> list[threading.Thread]:
    threads = [threading.Thread(target=event.live, args=(p,), name=f"participant-{p.n}", daemon=True)
               for p in participants]
    for thread in threads:
        thread.start()
    return threads


def summary(calls: list[Call]) -> dict[str, Any]:
    """Count, timeouts, 5xx and p50/p99/max (ms; a request without an answer counts as slowest)."""
    ordered = sorted(c.ms for c in calls)

    def pct(p: float) -> float:
        return ordered[max(1, math.ceil(len(ordered) * p / 100)) - 1] if ordered else math.nan

    return {"count": len(calls), "timeouts": sum(c.error == "timeout" for c in calls),
            "errors": sum(c.error not in (None, "timeout") for c in calls),
            "5xx": sum(c.status is not None and c.status >= 500 for c in calls),
            "4xx": sum(c.status is not None and 400 <= c.status < 500 for c in calls),
            "p50": pct(50), "p99": pct(99), "max": pct(100)}
