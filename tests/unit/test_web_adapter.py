"""The web process's WSGI adapter over Chalice's local gateway: every request goes through the
app's routes and middleware as API Gateway's proxy event, and the answer keeps its status,
headers (several Set-Cookie too) and body. No server: WSGI environs by hand."""
from __future__ import annotations

import io
import json

from chalice import Chalice, Response

from local.web import ChaliceWsgi


def make_app() -> tuple[Chalice, list]:
    app = Chalice(app_name="adapter-test")
    seen: list = []

    @app.middleware("all")
    def observe(event, get_response):
        seen.append(event.path)
        return get_response(event)

    @app.route("/items/{item}", methods=["GET", "POST"])
    def item(item):
        request = app.current_request
        return {"item": item, "method": request.method, "query": request.query_params,
                "body": request.json_body, "agent": request.headers.get("user-agent")}

    @app.route("/cookies")
    def cookies():
        return Response(body="<p>hi</p>", status_code=201, headers={
            "Content-Type": "text/html", "Set-Cookie": ["a=1; Path=/", "b=2; Path=/"]})

    return app, seen


def call(wsgi, method, target, body=b"", headers=None):
    path, _, query = target.partition("?")
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query, "RAW_URI": target,
               "wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body)) if body else "",
               "CONTENT_TYPE": "application/json" if body else ""}
    environ.update({f"HTTP_{k.upper().replace('-', '_')}": v for k, v in (headers or {}).items()})
    answer = {}

    def start_response(status, pairs):
        answer["status"], answer["headers"] = status, pairs

    answer["body"] = b"".join(wsgi(environ, start_response))
    return answer


def test_a_route_gets_the_event_through_the_middleware():
    app, seen = make_app()
    wsgi = ChaliceWsgi(app)
    answer = call(wsgi, "POST", "/items/abc?x=1&x=2", b'{"n": 1}', {"User-Agent": "tester"})
    assert answer["status"] == "200 OK"
    assert json.loads(answer["body"]) == {"item": "abc", "method": "POST", "query": {"x": "2"}, "body": {"n": 1},
                                          "agent": "tester"}
    assert ("Content-Type", "application/json") in answer["headers"]
    assert ("Content-Length", str(len(answer["body"]))) in answer["headers"]
    assert seen == ["/items/{item}"]


def test_status_headers_and_several_cookies_are_kept():
    app, _ = make_app()
    answer = call(ChaliceWsgi(app), "GET", "/cookies")
    assert answer["status"] == "201 Created" and answer["body"] == b"<p>hi</p>"
    assert ("Content-Type", "text/html") in answer["headers"]
    assert [v for k, v in answer["headers"] if k == "Set-Cookie"] == ["a=1; Path=/", "b=2; Path=/"]


def test_an_unknown_route_is_answered_as_api_gateway_does():
    app, _ = make_app()
    answer = call(ChaliceWsgi(app), "GET", "/nowhere")
    assert answer["status"] == "403 Forbidden"
    assert json.loads(answer["body"]) == {"message": "Missing Authentication Token"}


def test_head_has_no_body():
    app, _ = make_app()
    answer = call(ChaliceWsgi(app), "HEAD", "/cookies")
    assert answer["body"] == b""


class Trickle(io.RawIOBase):
    """A body that arrives one byte at a time, slowly (a slowloris)."""

    def __init__(self, pause: float):
        self.pause = pause

    def read(self, size=-1):
        import time

        time.sleep(self.pause)
        return b"{"


def test_a_body_larger_than_api_gateway_takes_is_refused_unread():
    import local.web

    wsgi = ChaliceWsgi(make_app()[0])
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/items/1", "RAW_URI": "/items/1",
               "CONTENT_LENGTH": str(local.web.MAX_BODY + 1), "wsgi.input": Trickle(60)}  # never read
    answer = {}
    body = b"".join(wsgi(environ, lambda status, pairs: answer.update(status=status)))
    assert answer["status"].startswith("413") and b"at most" in body


def test_a_body_that_trickles_in_is_cut_off(monkeypatch):
    import time

    import local.web

    monkeypatch.setattr(local.web, "BODY_SECONDS", 0.5)
    app, seen = make_app()
    wsgi = ChaliceWsgi(app)
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/items/1", "RAW_URI": "/items/1", "CONTENT_LENGTH": "1000",
               "CONTENT_TYPE": "application/json", "wsgi.input": Trickle(0.1)}
    answer = {}
    started = time.monotonic()
    body = b"".join(wsgi(environ, lambda status, pairs: answer.update(status=status)))
    assert answer["status"].startswith("408") and b"did not arrive" in body
    assert time.monotonic() - started < 2 and seen == []  # the app never saw it


def test_the_master_compiles_every_template_and_loads_every_service_before_forking():
    """A worker's first requests find them ready instead of making the requests behind them wait."""
    import sys

    from chalicelib.adapters import render
    from local.web import warm

    render.environment.cache_clear()
    compiled = warm()
    env = render.environment()
    assert compiled >= 30 and len(env.cache) == compiled  # every page and email, already compiled
    assert {"status.html", "email/credentials.html"} <= {template.name for template in env.cache.values()}
    assert "chalicelib.services.registrations" in sys.modules and "chalicelib.services.organiser" in sys.modules
