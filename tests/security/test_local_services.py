"""The local stack's own services on 127.0.0.1 (the embedded AWS, the task workers, the inbox) answer
the stack and a person at the machine, never a web page that the machine's browser opens.

* moto's server answers every origin's CORS preflight: a page on another site, in a real Chromium,
  read the embedded AWS's tables (every participant's registration, the students' password hashes).
* The workers run whatever task function a request names with the event it carries: a page's
  no-cors POST (no preflight) ran one, a teardown of any student among them.
* The inbox holds every participant's credentials: a page on a domain its owner re-points at
  127.0.0.1 (DNS rebinding) is same-origin with the inbox and read it.
"""
from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import pytest
import requests

from local.mailbox import InboxServer, Mailbox
from local.workers import TaskPool, WorkersServer

pytestmark = pytest.mark.timeout(120)
CHROMIUM = Path(os.environ.get("CHROMIUM") or "/usr/bin/chromium")
EVIL_HOSTS = ["127.0.0.2", "127.0.0.1"]  # another site; another port of this machine (a student's page)


@contextmanager
def evil_site(host: str, html: str) -> Iterator[str]:
    """A page served from ``host`` on a port of its own: its URL."""
    body = html.encode()

    class Page(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer((host, 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://{host}:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def browser():
    assert CHROMIUM.exists(), f"{CHROMIUM} is not installed (`make test` installs Debian's chromium)"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                              args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        try:
            yield chromium
        finally:
            chromium.close()


def title_after(browser, url: str) -> str:
    """Open ``url`` in a fresh context; the title its script sets when done."""
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(url)
        page.wait_for_function("document.title.length > 0", timeout=20_000)
        return page.title()
    finally:
        context.close()


READ_TABLES = """<!doctype html><meta charset="utf-8"><script>
fetch(%s, {method: "POST", body: "{}", headers: {
  "Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "DynamoDB_20120810.ListTables",
  "Authorization": "AWS4-HMAC-SHA256 Credential=x/20250101/us-east-1/dynamodb/aws4_request, " +
                   "SignedHeaders=host, Signature=0"}})
  .then(function (r) { return r.text(); })
  .then(function (t) { document.title = "read " + t; }, function () { document.title = "refused"; });
</script>"""


@pytest.mark.parametrize("host", EVIL_HOSTS)
def test_a_page_elsewhere_cannot_read_the_embedded_aws(embedded_aws, browser, host):
    table = f"wod-private-{host.replace('.', '-')}"
    dynamodb = boto3.client("dynamodb", endpoint_url=embedded_aws.endpoint, region_name="us-east-1")
    dynamodb.create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                          AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                          KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}])
    with evil_site(host, READ_TABLES % json.dumps(embedded_aws.endpoint + "/")) as url:
        seen = title_after(browser, url)
    assert seen == "refused", seen
    assert table in dynamodb.list_tables()["TableNames"]  # the stack's own clients still are served


RUN_TASK = """<!doctype html><meta charset="utf-8"><script>
fetch(%s, {method: "POST", mode: "no-cors", body: '{"student": "student101"}'})
  .then(function () { document.title = "sent"; }, function () { document.title = "failed"; });
</script>"""


@pytest.fixture
def workers():
    """The workers' HTTP server with one recording task function."""
    ran: list[dict] = []

    def teardown(event, context):
        ran.append(event)
        return {"done": True}

    server = WorkersServer(("127.0.0.1", 0), TaskPool({"purge-teardown": teardown}, threads=2))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", ran
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("host", EVIL_HOSTS)
def test_a_page_elsewhere_cannot_run_a_task(workers, browser, host):
    url, ran = workers
    invoke = f"{url}/2015-03-31/functions/purge-teardown/invocations"
    with evil_site(host, RUN_TASK % json.dumps(invoke)) as page:
        assert title_after(browser, page) == "sent"  # the browser sent it: the test proves something
    assert requests.post(invoke, data=b'{"student": "mine"}', timeout=10).json() == {"done": True}
    assert ran == [{"student": "mine"}]  # the embedded AWS's invoke ran; the page's did not


def test_a_domain_re_pointed_at_the_machine_cannot_read_the_inbox(tmp_path):
    """What a DNS-rebinding page sends: its own domain as Host, same-origin with itself."""
    mailbox = Mailbox(tmp_path)
    mailbox.add(b"Subject: Your credentials\r\nTo: ada@example.com\r\n\r\npassword: hunter2\r\n",
                "noreply@wod.local", ["ada@example.com"])
    inbox = InboxServer(mailbox, "127.0.0.1", 0)
    inbox.start()
    try:
        base = f"http://127.0.0.1:{inbox.port}"
        for host in (f"evil.example:{inbox.port}", "evil.example", f"127.0.0.1.nip.io:{inbox.port}"):
            for path in ("/", "/api/messages"):
                response = requests.get(base + path, headers={"Host": host}, timeout=10)
                assert response.status_code == 421 and "credentials" not in response.text, (host, path)
        cleared = requests.delete(f"{base}/api/messages", timeout=10,
                                  headers={"Origin": "http://127.0.0.2:8000", "Sec-Fetch-Site": "cross-site"})
        assert cleared.status_code == 403
        assert [m["subject"] for m in requests.get(f"{base}/api/messages", timeout=10).json()] == ["Your credentials"]
        assert requests.get(base + "/", headers={"Host": f"localhost:{inbox.port}"}, timeout=10).status_code == 200
        opened = requests.get(base + "/", timeout=10, headers={  # a person following a link to the inbox
            "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"})
        assert opened.status_code == 200 and "Your credentials" in opened.text
    finally:
        inbox.stop()
