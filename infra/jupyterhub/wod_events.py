"""The hub's relay of participants' notebook events to the platform (``POST /hub/api/wod/events``).

A participant's kernel (``wod_progress``) posts its batch here with the student's own
``$JUPYTERHUB_API_TOKEN``; the hub checks the token (it must be allowed to report the user's
activity), names the student itself, gives the batch the next sequence number (growing with the
hub's clock, so the platform refuses a replayed or older batch) and signs it with the location's
events key (``WOD_EVENTS_KEY``, shared with the platform's API, which never holds the hub's own
token) before posting it to ``WOD_EVENTS_URL``. Nothing a student sends can name another student
or skip the signature.

One student's batches are relayed one at a time, in the order they came (two notebooks' kernels
never overtake each other), and at most :data:`RATE` per second with bursts of :data:`BURST`
(a ``429`` past that: a student posting by hand cannot flood the platform).
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import time

from jupyterhub.apihandlers.base import APIHandler
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

MAX_BODY = 64 * 1024
MAX_IN_FLIGHT = 100  # batches relayed at once, every student together
SIGNATURE_HEADER = "X-WOD-Signature"
SOURCE = re.compile(r"[A-Za-z0-9_-]{1,40}")
RATE, BURST = 1.0, 10.0  # batches per second one student may send, and at once
_last_seq = 0


class Bucket:
    """A token bucket per student."""

    def __init__(self, rate: float = RATE, burst: float = BURST):
        self.rate, self.burst = rate, burst
        self.tokens: dict[str, tuple[float, float]] = {}

    def take(self, name: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        tokens, since = self.tokens.get(name, (self.burst, now))
        tokens = min(self.burst, tokens + (now - since) * self.rate)
        if tokens < 1:
            self.tokens[name] = (tokens, now)
            return False
        self.tokens[name] = (tokens - 1, now)
        return True


_bucket = Bucket()
_locks: dict[str, asyncio.Lock] = {}


def next_seq(now: float | None = None) -> int:
    """Microseconds of the hub's clock, always past the last one given."""
    global _last_seq
    _last_seq = max(int((now if now is not None else time.time()) * 1_000_000), _last_seq + 1)
    return _last_seq


def signed(student: str, events: list, key: str, now: float | None = None,
           source: str | None = None) -> tuple[bytes, str]:
    """The body the platform takes and its signature (``v1=`` HMAC-SHA256, as its callbacks)."""
    now = time.time() if now is None else now
    data = {"student": student, "seq": next_seq(now), "issued_at": int(now), "events": events}
    if source:
        data["source"] = source
    body = json.dumps(data, separators=(",", ":")).encode()
    return body, "v1=" + hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


_client: AsyncHTTPClient | None = None


def client() -> AsyncHTTPClient:
    """The relay's own HTTP client: many batches in flight at once (tornado's shared one takes ten), none
    of them queued behind the hub's own requests to its proxy."""
    global _client
    if _client is None:
        _client = AsyncHTTPClient(force_instance=True, max_clients=MAX_IN_FLIGHT)
    return _client


@web.stream_request_body
class EventsRelay(APIHandler):
    """The body is read as it comes, after the headers were checked, and never past :data:`MAX_BODY`
    (a declared length over it is refused at once, a chunked body is cut off there)."""

    events_url = ""
    key = ""

    def prepare(self):
        self.request.connection.set_max_body_size(MAX_BODY)
        self.chunks: list[bytes] = []
        declared = self.request.headers.get("Content-Length", "0")
        if not declared.isdigit() or int(declared) > MAX_BODY:
            raise web.HTTPError(413, "at most 64 KB of events")
        return super().prepare()

    def data_received(self, chunk: bytes) -> None:
        self.chunks.append(chunk)

    async def post(self):
        user = self.current_user
        if user is None or getattr(user, "kind", "user") != "user" \
                or not self.has_scope(f"users:activity!user={user.name}"):
            raise web.HTTPError(403, "a student's own token is needed")
        raw = b"".join(self.chunks)
        if len(raw) > MAX_BODY:
            raise web.HTTPError(413, "at most 64 KB of events")
        if not _bucket.take(user.name):
            self.set_header("Retry-After", "5")
            raise web.HTTPError(429, "too many batches: at most one a second")
        try:
            data = json.loads(raw or b"{}")
        except (ValueError, RecursionError):
            raise web.HTTPError(400, "the body is not JSON (or is nested too deeply)") from None
        events = data.get("events") if isinstance(data, dict) else None
        if not isinstance(events, list) or not events:
            raise web.HTTPError(400, "expected {\"events\": [...]}")
        source = data.get("source")
        source = source if isinstance(source, str) and SOURCE.fullmatch(source) else None
        async with _locks.setdefault(user.name, asyncio.Lock()):  # one student's batches in order
            body, signature = signed(user.name, events, self.key, source=source)
            request = HTTPRequest(self.events_url, method="POST", body=body, request_timeout=10, headers={
                "Content-Type": "application/json", SIGNATURE_HEADER: signature})
            try:
                response = await client().fetch(request)
                code, answer = response.code, response.body
            except HTTPClientError as exc:
                code, answer = exc.code, (exc.response.body if exc.response else b"")
            except OSError as exc:
                self.log.warning("notebook events of %s not relayed: %s", user.name, exc)
                raise web.HTTPError(503, "the platform did not answer") from None
        self.set_status(code if 200 <= code < 599 else 503)  # 599: no answer in time
        self.set_header("Content-Type", "application/json")
        self.finish(answer or b"{}")


def handlers(events_url: str, key: str) -> list:
    """The hub's extra handler, bound to the platform's events URL and the location's events key."""
    relay = type("WodEventsRelay", (EventsRelay,), {"events_url": events_url, "key": key})
    return [(r"/api/wod/events", relay)]
