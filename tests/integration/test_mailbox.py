"""Local mail stack over real sockets: SMTP sink -> durable Mailbox -> web inbox / JSON API."""
from __future__ import annotations

import smtplib
import socket
import threading
from email.message import EmailMessage
from html.parser import HTMLParser

import pytest
import requests

from local.mailbox import InboxServer, Mailbox, SmtpServer

SENDER = "noreply@wod.example"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mailbox(tmp_path):
    return Mailbox(tmp_path)


@pytest.fixture
def smtp(mailbox):
    server = SmtpServer(mailbox.add, port=free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def inbox(mailbox):
    server = InboxServer(mailbox, port=0)
    server.start()
    yield f"http://127.0.0.1:{server.port}"
    server.stop()


def send(port: int, to: list[str], subject: str, text: str = "hello", html: str | None = None,
         headers: dict[str, str] | None = None) -> None:
    msg = EmailMessage()
    msg["From"] = f"Workshops <{SENDER}>"
    msg["To"] = ", ".join(to)
    msg["Subject"] = subject
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(text)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:  # a busy machine is no failure
        client.send_message(msg, from_addr=SENDER, to_addrs=to)


class Iframes(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.frames: list[dict] = []

    def handle_starttag(self, tag, attrs):
        if tag == "iframe":
            self.frames.append(dict(attrs))


def test_multipart_mail_is_parsed_and_served(smtp, inbox):
    subject = "Bienvenue à l'atelier — Jupyter ✓"
    send(smtp.port, ["student@example.com"], subject, text="Votre mot de passe : é€",
         html="<p>Bonjour <b>étudiant</b></p>", headers={"X-WOD-Signature": "abc123"})

    resp = requests.get(f"{inbox}/api/messages", timeout=5)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("application/json")
    [msg] = resp.json()
    assert msg["subject"] == subject
    assert msg["from"] == f"Workshops <{SENDER}>"
    assert msg["to"] == ["student@example.com"]
    assert msg["text"] == "Votre mot de passe : é€\n"
    assert "<b>étudiant</b>" in msg["html"]
    assert msg["headers"] == {"X-WOD-Signature": "abc123"}
    assert msg["date"].endswith("+00:00")

    one = requests.get(f"{inbox}/api/messages/{msg['id']}", timeout=5)
    assert one.status_code == 200 and one.json() == msg

    raw = requests.get(f"{inbox}/api/messages/{msg['id']}/raw", timeout=5)
    assert raw.status_code == 200
    assert raw.headers["Content-Type"].startswith("text/plain")
    assert "X-WOD-Signature: abc123" in raw.text
    assert "X-Envelope-To: student@example.com" in raw.text
    download = requests.get(f"{inbox}/api/messages/{msg['id']}/raw?download=1", timeout=5)
    assert download.headers["Content-Type"] == "message/rfc822"
    assert "attachment" in download.headers["Content-Disposition"]


def test_filters_by_recipient_and_subject(smtp, inbox, mailbox):
    send(smtp.port, ["alice@example.com"], "Your workshop is ready")
    send(smtp.port, ["bob@example.com", "carol@example.com"], "Registration received")
    send(smtp.port, ["bob@example.com"], "Your workshop is ready")

    to_bob = requests.get(f"{inbox}/api/messages", params={"to": "BOB@Example.com"}, timeout=5)
    assert [m["subject"] for m in to_bob.json()] == ["Your workshop is ready",
                                                     "Registration received"]  # newest first
    to_carol = requests.get(f"{inbox}/api/messages", params={"to": "carol@example.com"}, timeout=5)
    assert [m["to"] for m in to_carol.json()] == [["bob@example.com", "carol@example.com"]]
    ready = requests.get(f"{inbox}/api/messages", params={"subject": "READY"}, timeout=5).json()
    assert sorted(m["to"][0] for m in ready) == ["alice@example.com", "bob@example.com"]
    both = requests.get(f"{inbox}/api/messages",
                        params={"to": "alice@example.com", "subject": "ready"}, timeout=5).json()
    assert len(both) == 1
    assert requests.get(f"{inbox}/api/messages", params={"to": "nobody@example.com"},
                        timeout=5).json() == []

    cleared = requests.delete(f"{inbox}/api/messages", timeout=5)
    assert cleared.status_code == 204
    assert requests.get(f"{inbox}/api/messages", timeout=5).json() == []
    assert list(mailbox.dir.glob("*.eml")) == []


def test_only_what_arrived_after_a_message_and_any_other_after_lists_all(smtp, inbox):
    send(smtp.port, ["dan@example.com"], "First")
    send(smtp.port, ["dan@example.com"], "Second")
    listed = requests.get(f"{inbox}/api/messages", timeout=5).json()
    assert [m["subject"] for m in listed] == ["Second", "First"]
    later = requests.get(f"{inbox}/api/messages", params={"after": listed[1]["id"]}, timeout=5)
    assert [m["subject"] for m in later.json()] == ["Second"]
    for after in ("", "nope", "-1", "\u00b2", "\u0663-x"):
        answer = requests.get(f"{inbox}/api/messages", params={"after": after}, timeout=5)
        assert answer.status_code == 200 and len(answer.json()) == 2, after


def test_unknown_ids_paths_and_methods(inbox):
    resp = requests.get(f"{inbox}/api/messages/1-{'0' * 32}", timeout=5)
    assert resp.status_code == 404 and "error" in resp.json()
    assert requests.get(f"{inbox}/api/messages/../../etc/passwd/raw", timeout=5).status_code == 404
    assert requests.get(f"{inbox}/messages/nope", timeout=5).status_code == 404
    assert requests.get(f"{inbox}/nope", timeout=5).status_code == 404
    wrong = requests.post(f"{inbox}/api/messages", timeout=5)
    assert wrong.status_code == 405 and "error" in wrong.json()
    assert requests.put(f"{inbox}/", timeout=5).status_code == 405


def test_inbox_page_escapes_message_content(smtp, inbox):
    send(smtp.port, ["x@example.com"], "<script>alert(1)</script>",
         headers={"X-Evil": '"><img src=x onerror=alert(2)>'})
    resp = requests.get(f"{inbox}/", timeout=5)
    assert resp.status_code == 200
    assert "<title>Local inbox</title>" in resp.text
    assert "<script>" not in resp.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in resp.text
    assert "script-src" not in resp.headers["Content-Security-Policy"]
    assert "default-src 'none'" in resp.headers["Content-Security-Policy"]
    assert resp.headers["X-Content-Type-Options"] == "nosniff"

    msg_id = requests.get(f"{inbox}/api/messages", timeout=5).json()[0]["id"]
    assert f'href="/messages/{msg_id}"' in resp.text
    page = requests.get(f"{inbox}/messages/{msg_id}", timeout=5).text
    assert "<script>" not in page and "<img src=x" not in page
    assert "&quot;&gt;&lt;img src=x onerror=alert(2)&gt;" in page


def test_message_page_sandboxes_html_body(smtp, inbox):
    body = ('<!DOCTYPE html><html><head><title>t</title></head><body>'
            '<script>alert("pwned")</script><a href="https://example.com/?a=1&b=2">go</a>'
            '</body></html>')
    send(smtp.port, ["x@example.com"], "HTML mail", text="plain <part>", html=body)
    msg_id = requests.get(f"{inbox}/api/messages", timeout=5).json()[0]["id"]
    page = requests.get(f"{inbox}/messages/{msg_id}", timeout=5).text

    assert "<script>" not in page and 'alert("pwned")' not in page
    assert "&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;" in page
    assert "<pre>plain &lt;part&gt;" in page
    assert f'href="/api/messages/{msg_id}/raw"' in page
    parser = Iframes()
    parser.feed(page)
    [frame] = parser.frames
    assert frame["sandbox"] == "allow-popups allow-popups-to-escape-sandbox"
    srcdoc = frame["srcdoc"]  # the parser unescapes the attribute: this is what the frame renders
    assert srcdoc.startswith('<!DOCTYPE html><html><head><base target="_blank"><title>')
    assert '<a href="https://example.com/?a=1&b=2">go</a>' in srcdoc


def test_restart_keeps_messages(smtp, mailbox, tmp_path):
    send(smtp.port, ["a@example.com"], "first ✓")
    send(smtp.port, ["b@example.com", "c@example.com"], "second", headers={"X-WOD-Kind": "k"})
    before = mailbox.list()
    assert [m["subject"] for m in before] == ["second", "first ✓"]
    assert len(list((tmp_path / "mail").glob("*.eml"))) == 2
    assert not list((tmp_path / "mail").glob(".tmp-*"))

    reloaded = Mailbox(tmp_path)
    assert reloaded.list() == before
    assert reloaded.get(before[0]["id"])["to"] == ["b@example.com", "c@example.com"]
    reloaded.clear()
    assert Mailbox(tmp_path).list() == []


def test_failing_router_answers_451_and_stores_nothing(mailbox):
    def router(raw: bytes, mail_from: str, rcpt_tos: list[str]) -> None:
        raise RuntimeError("orders backend down")

    server = SmtpServer(router, port=free_port())
    server.start()
    try:
        with pytest.raises(smtplib.SMTPResponseException) as err:
            send(server.port, ["orders@wod.example"], "order")
        assert err.value.smtp_code == 451
        assert isinstance(err.value, smtplib.SMTPDataError)
    finally:
        server.stop()
    assert mailbox.list() == []
    assert list(mailbox.dir.iterdir()) == []


def test_custom_router_receives_envelope(mailbox):
    seen: list[tuple[str, list[str]]] = []

    def router(raw: bytes, mail_from: str, rcpt_tos: list[str]) -> None:
        seen.append((mail_from, rcpt_tos))
        if "orders@wod.example" not in rcpt_tos:
            mailbox.add(raw, mail_from, rcpt_tos)

    server = SmtpServer(router, port=free_port())
    server.start()
    try:
        send(server.port, ["orders@wod.example"], "order")
        send(server.port, ["student@example.com"], "welcome")
    finally:
        server.stop()
    assert seen == [(SENDER, ["orders@wod.example"]), (SENDER, ["student@example.com"])]
    assert [m["subject"] for m in mailbox.list()] == ["welcome"]


def test_fifty_messages_from_five_threads(smtp, mailbox, tmp_path):
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(10):
                send(smtp.port, [f"user{n}@example.com"], f"mail {n}-{i}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    msgs = mailbox.list()
    assert sorted(m["subject"] for m in msgs) == sorted(
        f"mail {n}-{i}" for n in range(5) for i in range(10))
    assert len({m["id"] for m in msgs}) == 50
    assert [m["id"] for m in msgs] == sorted((m["id"] for m in msgs),
                                             key=lambda i: int(i.split("-")[0]), reverse=True)
    assert len(list((tmp_path / "mail").glob("*.eml"))) == 50
    assert len(Mailbox(tmp_path).list()) == 50


def test_malformed_message_is_still_stored(mailbox, inbox):
    bad = (b"Subject: =?x-unknown-charset?q?=FF?=\r\nContent-Type: text/plain; charset=bogus\r\n"
           b"\r\nbody \xff\xfe bytes\r\n")
    msg = mailbox.add(bad, "a@example.com", ["b@example.com"])
    assert msg["to"] == ["b@example.com"]
    assert "body" in msg["text"] and "\ufffd" in msg["text"]
    garbage = mailbox.add(b"\x00\xff not an email at all", "", ["c@example.com"])
    assert "not an email" in garbage["text"]
    listed = requests.get(f"{inbox}/api/messages", timeout=5).json()
    assert [m["id"] for m in listed] == [garbage["id"], msg["id"]]
    assert requests.get(f"{inbox}/messages/{msg['id']}", timeout=5).status_code == 200
    assert requests.get(f"{inbox}/", timeout=5).status_code == 200
