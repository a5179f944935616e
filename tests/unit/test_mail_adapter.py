"""MIME building: multipart text + HTML, custom headers, and no header injection."""
from __future__ import annotations

from email import message_from_bytes, policy

import pytest

from chalicelib.adapters.mail import SmtpMailer, to_mime
from chalicelib.adapters.render import email as render_email
from chalicelib.adapters.render import format_duration
from chalicelib.domain.errors import Unavailable
from chalicelib.domain.mail import Email


def test_mime_has_both_bodies_and_custom_headers():
    msg = to_mime(Email(to="zoë@example.com", subject="Héllo", text="plain", html="<p>rich</p>",
                        headers={"X-WOD-Signature": "v1=abc"}), "WoD <noreply@wod.local>")
    parsed = message_from_bytes(msg.as_bytes(), policy=policy.default)
    assert parsed["Subject"] == "Héllo" and parsed["X-WOD-Signature"] == "v1=abc"
    assert parsed.get_body(("plain",)).get_content().strip() == "plain"
    assert parsed.get_body(("html",)).get_content().strip() == "<p>rich</p>"
    assert parsed["Message-ID"].endswith("@wod.local>")


@pytest.mark.parametrize("field", ["to", "subject"])
def test_line_breaks_in_headers_are_refused(field):
    values = {"to": "a@example.com", "subject": "hi", "text": "x"} | {field: "a@example.com\r\nBcc: evil@example.com"}
    with pytest.raises(ValueError):
        to_mime(Email(**values), "noreply@wod.local")


def test_unreachable_relay_is_unavailable():
    with pytest.raises(Unavailable, match="SMTP relay 127.0.0.1:9"):
        SmtpMailer("127.0.0.1", 9, "noreply@wod.local", timeout=1).send(
            Email(to="a@example.com", subject="s", text="t"))


def test_email_templates_escape_html_but_not_text():
    from chalicelib.domain.values import Registration, Workshop

    reg = Registration("r-1", first_name="<b>Bob</b> & Co")
    workshop = Workshop("WKSHP-T", title="T & <T>", duration_minutes=90)
    msg = render_email("welcome", to="a@example.com", subject="s", registration=reg, workshop=workshop,
                       status_url="https://wod.example/registrations/x")
    assert "&lt;b&gt;Bob&lt;/b&gt; &amp; Co" in msg.html and "<b>Bob</b>" not in msg.html
    assert "Hello <b>Bob</b> & Co," in msg.text
    assert "1 h 30 min" in msg.text


@pytest.mark.parametrize("minutes, text", [(45, "45 min"), (60, "1 h"), (150, "2 h 30 min")])
def test_durations_read_naturally(minutes, text):
    assert format_duration(minutes) == text
