"""Every email a person gets reads without its HTML: each has a text part, every image in the HTML
has alt text (empty only for a decorative one), every link has a name, and text on a coloured
background keeps WCAG AA contrast. Every template in templates/email is rendered from a real
registration's context."""
from __future__ import annotations

import dataclasses
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from chalicelib.adapters import render
from chalicelib.adapters.mail import to_mime
from chalicelib.services import event_report, outbox
from tests.admintools import activate, api, callback, participant

WORKSHOP = "WKSHP-MAILS"
BADGE = "https://badges.example/mails.png"
TEMPLATES = Path(render.TEMPLATES) / "email"
IMAGE_NAME = re.compile(r"\.(png|jpe?g|gif|svg|webp)$|^(image|img|picture|photo|logo|badge|icon)$", re.I)


# The state of the registration each participant email is sent for.
SENT_WHEN = {"confirm": "held", "already": "held", "welcome": "active", "waitlisted": "active", "apology": "active",
             "promoted": "active", "reminder": "active", "extended": "active", "thanks": "finished",
             "level": "finished", "rescheduled": "held"}


@pytest.fixture
def emails(client, platform, sync, recording) -> dict[str, object]:
    """Every kind of email, by template name: the credentials from a real provisioning callback, each
    participant email for a registration in the state it is sent in (held unconfirmed, running, or
    finished with the badge earned), the organiser's event report."""
    sync((WORKSHOP, {"seats": 3, "title": "Mail & <accessibility>", "badge": BADGE,
                     "replay": "https://replay.example/mails"}))
    platform.settings = dataclasses.replace(platform.settings, confirm_minutes=15)
    held = participant(platform, WORKSHOP, "held@example.com")
    platform.settings = dataclasses.replace(platform.settings, confirm_minutes=0)
    running = participant(platform, WORKSHOP, "run@example.com")
    activate(client, platform, running)
    [credentials] = [m for m in recording.sent if m.subject.startswith("Your workshop is ready")]
    finished = participant(platform, WORKSHOP, "done@example.com")
    activate(client, platform, finished)
    api(client, platform, "POST", f"/api/admin/registrations/{finished['id']}/end")
    callback(client, platform, {"registration": finished["id"], "student": finished["student"], "outcome": "cleaned",
                                "completion": 100})
    registrations = {state: platform.stores.registrations.get(created["id"])
                     for state, created in (("held", held), ("active", running), ("finished", finished))}
    workshop = platform.stores.seats.get_workshop(WORKSHOP)
    rendered = {name: outbox.participant_email(platform, name, registrations[SENT_WHEN[name]], workshop, level=2,
                                               position=1)
                for name in outbox.SUBJECTS}
    rendered["credentials"] = credentials
    rendered["report"] = render.email("report", to="organiser@example.com", subject="Event report",
                                      report=event_report.report(platform, WORKSHOP),
                                      report_url=f"https://wod.example/admin/reports/{WORKSHOP}")
    return rendered


class Html(HTMLParser):
    """The parts of an HTML email a screen reader or a text-only client depends on."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.lang: str | None = None
        self.title = ""
        self.images: list[dict[str, str | None]] = []
        self.links: list[dict] = []
        self.styles: list[str] = []
        self._in_title = False
        self._link: dict | None = None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "html":
            self.lang = attributes.get("lang")
        if tag == "title":
            self._in_title = True
        if tag == "img":
            self.images.append(attributes)
            if self._link is not None:
                self._link["text"] += attributes.get("alt") or ""
        if tag == "a":
            self._link = {"href": attributes.get("href"), "label": attributes.get("aria-label") or "", "text": ""}
            self.links.append(self._link)
        if attributes.get("style"):
            self.styles.append(attributes["style"])

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False
        if tag == "a":
            self._link = None

    def handle_data(self, data):
        if self._in_title:
            self.title += data
        if self._link is not None:
            self._link["text"] += data


def parsed(html: str) -> Html:
    parser = Html()
    parser.feed(html)
    parser.close()
    return parser


def luminance(colour: str) -> float:
    hex6 = colour.lstrip("#")
    hex6 = "".join(c * 2 for c in hex6) if len(hex6) == 3 else hex6
    channels = [int(hex6[i:i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(one: str, other: str) -> float:
    light, dark = sorted((luminance(one), luminance(other)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def colours(style: str) -> tuple[str | None, str | None]:
    """The text colour and the background colour an inline style sets (hex only), if it sets them."""
    declarations = dict(part.split(":", 1) for part in style.replace(" ", "").lower().split(";") if ":" in part)
    text = declarations.get("color")
    background = declarations.get("background-color") or declarations.get("background")
    hex_colour = re.compile(r"^#(?:[0-9a-f]{3}|[0-9a-f]{6})$")
    return (text if text and hex_colour.match(text) else None,
            background if background and hex_colour.match(background) else None)


def test_every_email_template_is_rendered_here(emails):
    templates = {p.stem for p in TEMPLATES.glob("*.html")} - {"layout"}
    assert set(emails) == templates
    without_text = {name for name in templates if "{% block text %}" not in (TEMPLATES / f"{name}.html").read_text()}
    assert without_text == set(), "an email template without its text part"
    escaped = {name for name in templates
               if "{% block text %}{% autoescape false %}" not in (TEMPLATES / f"{name}.html").read_text()}
    assert escaped == set(), "a text part written as HTML (its entities would show)"


def test_every_email_has_a_text_part_that_says_it_all_without_html(emails):
    for name, email in emails.items():
        mime = to_mime(email, "Workshops-on-Demand <noreply@wod.local>")
        plain = mime.get_body(preferencelist=("plain",))
        html = mime.get_body(preferencelist=("html",))
        assert plain is not None and html is not None, name
        text = plain.get_content()
        assert text.strip(), f"{name}: an empty text part"
        assert not re.search(r"<(p|a|br|table|td|strong|img)\b", text, re.I), f"{name}: HTML in the text part"
        assert not re.search(r"&(amp|lt|gt|quot|#\d+);", text), f"{name}: an HTML entity in the text part"
        if "Mail &amp; &lt;accessibility&gt;" in email.html:  # the title, escaped in the HTML, is as it is here
            assert "Mail & <accessibility>" in text, f"{name}: the title not written as it is"
        for link in parsed(email.html).links:  # every address the HTML offers, the text offers too
            href = (link["href"] or "").replace("&amp;", "&")
            if href.startswith("http") and "?rating=" not in href:
                assert href in text, f"{name}: {href} is only in the HTML"


def test_every_image_has_alt_text_and_every_link_a_name(emails):
    images = 0
    for name, email in emails.items():
        html = parsed(email.html)
        assert html.lang and html.title.strip() == email.subject, name
        for image in html.images:
            images += 1
            assert "alt" in image, f"{name}: <img src={image.get('src')}> has no alt attribute"
            alt = (image["alt"] or "").strip()
            if alt:  # meaningful: not the file's name or a bare word like "image"
                assert alt != image.get("src") and not IMAGE_NAME.search(alt), f"{name}: alt={alt!r}"
            else:  # decorative: kept out of the accessibility tree
                assert image.get("role") == "presentation" or image["alt"] == "", name
        for link in html.links:
            assert (link["label"] or link["text"]).strip(), f"{name}: a link without a name: {link['href']}"
    assert images, "no email shows an image: the alt text check checked nothing"
    badge = parsed(emails["thanks"].html).images
    assert [(i["src"], i["alt"]) for i in badge] == [(BADGE, "Mail & <accessibility> badge")]


def test_text_on_a_coloured_background_keeps_aa_contrast(emails):
    checked = 0
    for name, email in emails.items():
        for style in parsed(email.html).styles:
            text, background = colours(style)
            if text and background:
                checked += 1
                ratio = contrast(text, background)
                assert ratio >= 4.5, f"{name}: {text} on {background} is {ratio:.2f}:1 (AA needs 4.5:1): {style}"
    assert checked, "no coloured button or banner found: the contrast check checked nothing"
