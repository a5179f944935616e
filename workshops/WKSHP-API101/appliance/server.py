"""Inventory API: the practice server behind the WKSHP-API101 workshop.

Every student gets a private copy of this process on their own port, so all
state lives in memory: it costs nothing to set up, a restart resets it, and
one student can never see or break another student's data.  Only the
standard library is used, so it runs wherever the platform's Python runs.

    python appliance/server.py --port 9100 [--host 127.0.0.1] [--token TOKEN]

The write token is --token, else APPLIANCE_TOKEN (how the platform hands each student's
appliance its own: the environment is private to the process's owner, a command line is not),
else the practice default.
"""
import argparse
import hmac
import json
import os
import re
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

DEFAULT_TOKEN = "workshop-token"
MAX_PER_PAGE = 50
ITEM_PATH = re.compile(r"^/items/(\d+)$")
ENDPOINTS = ["GET /health", "GET /items?page=&per_page=", "POST /items",
             "GET /items/<id>", "PUT /items/<id>", "DELETE /items/<id>"]
SEED = [  # (name, quantity, price): 24 items, enough for a few pages
    ("Hex bolt M6", 400, 0.05), ("Hex nut M6", 650, 0.03), ("Washer 6 mm", 900, 0.01),
    ("Cable tie 200 mm", 1200, 0.02), ("Ethernet cable 2 m", 85, 3.49), ("Ethernet cable 5 m", 40, 5.99),
    ("SFP+ transceiver", 12, 24.9), ("Rack shelf 1U", 8, 39.0), ("Patch panel 24 port", 5, 54.5),
    ("Power strip 8 way", 14, 29.99), ("Label tape 12 mm", 30, 11.25), ("Screwdriver set", 6, 18.75),
    ("Torx bit T20", 75, 0.9), ("Zip bag small", 500, 0.04), ("Thermal paste 4 g", 22, 6.4),
    ("USB-C cable 1 m", 60, 4.2), ("HDMI cable 2 m", 33, 5.1), ("Cage nut M6", 700, 0.08),
    ("Blanking panel 1U", 48, 3.3), ("Fan 120 mm", 18, 12.0), ("SSD 1 TB", 9, 79.0),
    ("DIMM 32 GB", 16, 88.0), ("Velcro roll 5 m", 25, 7.5), ("Anti-static wrist strap", 11, 4.99),
]


class ApiError(Exception):
    """A failure that becomes a JSON reply.  Every error keeps one shape,
    {"error": ..., "details": ...}, which the notebooks teach clients to rely on."""

    def __init__(self, status: int, message: str, details=None, headers=None):
        super().__init__(message)
        self.status, self.message = status, message
        self.details, self.headers = details, headers or {}


class Inventory:
    """In-memory item store.  ThreadingHTTPServer answers each request on its
    own thread, so one lock guards the dict and the id counter.  A deleted
    item keeps answering 404 rather than its id becoming another item."""

    def __init__(self, seed=SEED):
        self._lock = threading.Lock()
        self._items: dict[int, dict] = {}
        self._next_id = 1  # ids are handed out in order and never reused
        for name, quantity, price in seed:
            self.add({"name": name, "quantity": quantity, "price": price})

    def add(self, data: dict) -> dict:
        with self._lock:
            item = {"id": self._next_id, **data}
            self._items[item["id"]] = item
            self._next_id += 1
            return dict(item)

    def page(self, page: int, per_page: int) -> tuple[list[dict], int]:
        with self._lock:
            ordered = [dict(self._items[k]) for k in sorted(self._items)]
        start = (page - 1) * per_page
        return ordered[start:start + per_page], len(ordered)

    def get(self, item_id: int) -> dict | None:
        with self._lock:
            return dict(self._items[item_id]) if item_id in self._items else None

    def replace(self, item_id: int, data: dict) -> dict | None:
        with self._lock:
            if item_id in self._items:
                self._items[item_id] = {"id": item_id, **data}
                return dict(self._items[item_id])
            return None

    def delete(self, item_id: int) -> bool:
        with self._lock:
            return self._items.pop(item_id, None) is not None


def validate_item(body) -> dict:
    """Check a client-supplied item and return a clean copy.  400 means "I
    could not read your request"; 422 means "I read it, but the values are
    wrong".  The workshop teaches that difference, so the server is strict
    about it and names every bad field at once."""
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object")
    errors = {}
    name, quantity, price = body.get("name"), body.get("quantity"), body.get("price", 0)
    if not isinstance(name, str) or not name.strip():
        errors["name"] = "required: a non-empty string"
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 0:
        errors["quantity"] = "required: an integer >= 0"
    if isinstance(price, bool) or not isinstance(price, (int, float)) or not 0 <= price < 1e9:
        errors["price"] = "optional: a number >= 0 (default 0)"
    if unknown := sorted(set(body) - {"id", "name", "quantity", "price"}):
        errors["unknown_fields"] = unknown
    if errors:
        raise ApiError(422, "validation failed", errors)
    return {"name": name.strip(), "quantity": quantity, "price": round(float(price), 2)}


class Handler(BaseHTTPRequestHandler):
    """Routes each request; the server object carries the store and the token,
    so tests can run several independent servers in one process."""

    server_version = "InventoryAPI/1.0"

    def log_message(self, fmt, *args):
        if not getattr(self.server, "quiet", False):
            super().log_message(fmt, *args)

    def _dispatch(self, method: str) -> None:
        # Read the body first, always: closing a socket with unread data makes
        # the kernel send a reset, and the client would lose our error reply.
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        try:
            status, body, headers = self._route(method, raw)
        except ApiError as exc:
            status, headers = exc.status, exc.headers
            body = {"error": exc.message} if exc.details is None else \
                {"error": exc.message, "details": exc.details}
        data = b"" if body is None else (json.dumps(body, indent=2) + "\n").encode()
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _route(self, method: str, raw: bytes):
        url = urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        store: Inventory = self.server.store
        if path in ("/", "/health"):
            self._allow(method, "GET")
            return 200, ({"status": "ok"} if path == "/health" else {"endpoints": ENDPOINTS}), {}
        if path == "/items":
            self._allow(method, "GET", "POST")
            if method == "GET":
                return self._list(parse_qs(url.query))
            self._authorize()
            item = store.add(validate_item(self._json(raw)))
            return 201, item, {"Location": f"/items/{item['id']}"}
        match = ITEM_PATH.match(path)
        if not match:
            raise ApiError(404, f"no such resource: {path}")
        self._allow(method, "GET", "PUT", "DELETE")
        item_id = int(match.group(1))
        if method != "GET":
            self._authorize()
        if method == "DELETE" and store.delete(item_id):
            return 204, None, {}
        if method == "PUT":
            item = store.replace(item_id, validate_item(self._json(raw)))
        else:  # a GET, or a DELETE of a missing id (ids are never reused, so still None)
            item = store.get(item_id)
        if item is None:
            raise ApiError(404, f"item {item_id} not found")
        return 200, item, {}

    def _list(self, query: dict):
        """Page through items.  `next` is a path relative to the API root (None
        on the last page): behind a proxy the server cannot know its public
        URL, so clients prepend their own.  A Link header repeats it."""
        values = {}
        for key, default in (("page", 1), ("per_page", 10)):
            text = query.get(key, [str(default)])[-1]
            if not (text.isascii() and text.isdigit()) or int(text) < 1:
                raise ApiError(400, f"'{key}' must be a positive integer", {key: text})
            values[key] = int(text)
        page, per_page = values["page"], values["per_page"]
        if per_page > MAX_PER_PAGE:
            raise ApiError(400, f"'per_page' must be at most {MAX_PER_PAGE}", {"per_page": per_page})
        items, total = self.server.store.page(page, per_page)
        next_link = f"/items?page={page + 1}&per_page={per_page}" if page * per_page < total else None
        headers = {"Link": f'<{next_link}>; rel="next"'} if next_link else {}
        body = {"items": items, "page": page, "per_page": per_page, "total": total, "next": next_link}
        return 200, body, headers

    def _allow(self, method: str, *allowed: str) -> None:
        if method not in allowed:
            raise ApiError(405, f"{method} is not allowed here", headers={"Allow": ", ".join(allowed)})

    def _authorize(self) -> None:
        """Writes need `Authorization: Bearer <token>`; reads stay open so the
        first lab can start without any credentials."""
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
                token.strip().encode(), self.server.token.encode()):
            raise ApiError(401, "missing or invalid bearer token",
                           headers={"WWW-Authenticate": 'Bearer realm="inventory"'})

    @staticmethod
    def _json(raw: bytes):
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ApiError(400, "request body is not valid JSON", {"reason": str(exc)}) from None


# One do_<VERB> per verb, all into one dispatcher (PATCH: a JSON 405, not a 501 page).
for _verb in ("GET", "POST", "PUT", "DELETE", "PATCH"):
    setattr(Handler, f"do_{_verb}", lambda self, verb=_verb: self._dispatch(verb))


def make_server(host="127.0.0.1", port=0, token=DEFAULT_TOKEN, quiet=False) -> ThreadingHTTPServer:
    """Build a ready-to-serve server (port 0 picks a free port: handy in tests)."""
    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    server.store, server.token, server.quiet = Inventory(), token, quiet
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--token", default=os.environ.get("APPLIANCE_TOKEN") or DEFAULT_TOKEN)
    args = parser.parse_args(argv)
    server = make_server(args.host, args.port, args.token)

    def stop(signum, frame):
        # shutdown() waits for serve_forever() to return, and serve_forever()
        # runs on this very thread: call it from a helper thread, or deadlock.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"Inventory API listening on http://{args.host}:{server.server_port}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
