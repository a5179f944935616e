"""The participant's side in their language: a French registration sees every page and gets every
mail in French, with nothing English left (checked against the catalog itself); the language comes
from Accept-Language or the language switch's cookie, is kept on the registration for every later
mail, and a workshop's folder may give its title and description in French."""
from __future__ import annotations

import dataclasses
import functools
import json
import re
from datetime import timedelta
from html.parser import HTMLParser
from urllib.parse import urlencode

import pytest

from chalicelib.adapters import render, translations
from chalicelib.adapters.translations import catalog_path, read_catalog
from chalicelib.domain.values import Registration
from chalicelib.services import links, outbox
from chalicelib.services import time_checks as lifecycle
from local import messages
from tests.admintools import activate, callback
from tests.factory import registered
from tests.mailtools import invitation_of

WORKSHOP = "WKSHP-LANG"
TITLE, DESCRIPTION = "Python for data", "A workshop for tests, in English."
TITLE_FR, DESCRIPTION_FR = "Python pour les données", "Un atelier pour les tests, en français."
FRENCH = {"Accept-Language": "fr-CA,fr;q=0.9,en;q=0.4"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
JSON = {"Content-Type": "application/json"}
APPLICANT = {"email": "ada@example.com", "first_name": "Ada", "last_name": "Lovelace", "company": "AE",
             "accept_terms": "on"}
SHIPPED_CATALOGS = translations.LOCALE  # as shipped, whatever a test makes the platform read
FOLDER = {"seats": 1, "title": TITLE, "description": DESCRIPTION, "duration": 60,
          "translations": {"fr": {"title": TITLE_FR, "description": DESCRIPTION_FR}}}


@functools.cache
def french() -> dict[str, str]:
    """Each English message of the shipped catalog and its French (a plural: its singular form)."""
    pairs = {}
    for entry in list(read_catalog(catalog_path("fr", SHIPPED_CATALOGS), "fr"))[1:]:
        ids = entry.id if isinstance(entry.id, tuple) else (entry.id,)
        strings = entry.string if isinstance(entry.string, tuple) else (entry.string,)
        for message, translated in zip(ids, strings, strict=True):
            pairs.setdefault(message, translated)
    return pairs


class _Reader(HTMLParser):
    """What a page says: its text and the attributes read aloud (labels, titles, alternatives)."""

    SAID = ("aria-label", "title", "alt")

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.said: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag, attrs):
        self.skipping += tag in ("style", "script")
        self.said += [value for name, value in attrs if name in self.SAID and value]

    def handle_endtag(self, tag):
        self.skipping -= tag in ("style", "script")

    def handle_data(self, data):
        if not self.skipping:
            self.said.append(data)


def plain(text: str, html: bool = False) -> str:
    """Text as a reader takes it: tags out, entities decoded, each run of spaces (no-break ones too) one space."""
    if html:
        reader = _Reader()
        reader.feed(text)
        text = " ".join(reader.said)
    return " ".join(text.replace("\u00a0", " ").replace("\u202f", " ").split())


PIECES = re.compile(r"%\(\w+\)s|<[^>]+>")


def sentences(message: str) -> list[str]:
    """A message's own words: the pieces between its placeholders and tags."""
    return [plain(piece).strip(" \"'.,:;!?()") for piece in PIECES.split(message)]


def english_left(text: str, html: bool = False) -> list[str]:
    """The catalog's English messages (whole sentences of three words or more) that the text still
    shows, leaving out any the French says too (a name, "Open Badges 3.0")."""
    shown = plain(text, html)
    french_words = " ".join(plain(s) for s in french().values())
    return sorted({message for message, translated in french().items() if plain(translated) != plain(message)
                   for piece in sentences(message)
                   if len(piece.split()) >= 3 and piece not in french_words and piece in shown})


def says_in_french(text: str, *said: str, html: bool = False) -> None:
    """Each message's French (its own words, between its placeholders) is in the text."""
    shown = plain(text, html)
    for message in said:
        for piece in sentences(french()[message]):
            assert piece in shown, (message, piece)


def french_page(response, status: int = 200) -> str:
    page = response.body.decode()
    assert response.status_code == status, page
    assert '<html lang="fr">' in page and response.headers["Content-Language"] == "fr"
    assert english_left(page, html=True) == []
    return page


def french_mail(mail) -> None:
    assert english_left(mail.subject) == [] and english_left(mail.text) == []
    assert english_left(mail.html, html=True) == [] and '<html lang="fr">' in mail.html


@pytest.fixture
def workshop(platform, sync, recording):
    """Confirmation on (15 minutes), one seat, a title and description in French too."""
    platform.settings = dataclasses.replace(platform.settings, confirm_minutes=15)
    sync((WORKSHOP, FOLDER))
    return platform


def test_a_french_registration_sees_every_page_and_gets_every_mail_in_french(client, workshop, recording, clock):
    catalog = french_page(client.http.get("/", headers=FRENCH))
    assert TITLE_FR in catalog and DESCRIPTION_FR in catalog and TITLE not in catalog
    says_in_french(catalog, "Pick a workshop", "Register for %(title)s", "%(free)s of %(total)s left", html=True)

    form = french_page(client.http.get(f"/workshops/{WORKSHOP}", headers=FRENCH))
    assert '<input type="hidden" name="language" value="fr">' in form
    says_in_french(form, "I accept the terms: my details are used only to run this workshop and are deleted "
                   "afterwards.", "First name", "Register", html=True)

    wrong = client.http.post(f"/workshops/{WORKSHOP}", headers=FORM | FRENCH,
                             body=urlencode(APPLICANT | {"email": "nope", "first_name": "", "accept_terms": ""}))
    errors = french_page(wrong, 422)
    says_in_french(errors, "Some fields need attention.", "You must accept the terms to register.",
                   "Enter a valid email address (%(reason)s).", html=True)
    assert "« Prénom » est obligatoire." in plain(errors, html=True)

    received = french_page(client.http.post(f"/workshops/{WORKSHOP}", headers=FORM | FRENCH,
                                            body=urlencode(APPLICANT | {"language": "fr"})))
    says_in_french(received, "Check your mailbox: the next step is in the email we have sent to this address.",
                   "Nothing arrived after a few minutes? Look in your spam folder.", html=True)
    held = registered(workshop, APPLICANT["email"])
    assert workshop.stores.registrations.get(held["id"]).language == "fr"
    token = links.action_token(workshop, held["id"])

    [confirm_mail] = recording.to(APPLICANT["email"])
    assert confirm_mail.subject == f"Confirmez votre place\u00a0: {TITLE_FR}"
    says_in_french(confirm_mail.text, "A seat is held for you until %(time)s.")
    assert "09:15 UTC" in confirm_mail.text

    confirm = french_page(client.http.get(f"/confirm/{token}", headers=FRENCH))
    says_in_french(confirm, "A seat is held for this address until %(until)s.", "Confirm my seat", html=True)
    confirmed = client.http.post(f"/confirm/{token}", headers=FORM | FRENCH, body="")
    assert confirmed.status_code == 303
    status = french_page(client.http.get(f"/registrations/{token}", headers=FRENCH))
    says_in_french(status, "Your registration", "Your seat is reserved. We are preparing your environment; your "
                   "login arrives by email in a moment.", "Creating your account", html=True)
    assert "En attente" in status and TITLE_FR in status

    activate(client, workshop, held)
    clock.advance(minutes=1)
    assert lifecycle.tick(workshop)["reminders"] == 1  # a 60-minute workshop: its last hour from the start
    extended = client.http.post(f"/registrations/{token}/extend", headers=FORM | FRENCH, body="")
    assert extended.status_code == 303
    running = french_page(client.http.get(extended.headers["Location"], headers=FRENCH))
    says_in_french(running, "Your workshop was extended.", "Reset my notebooks", "Time left:", html=True)
    assert re.search(r"<time datetime=\"[^\"]+\">\d\d? [a-zéû.]+ 2026, \d\d:\d\d UTC</time>", running)

    refused = client.http.post(f"/registrations/{token}/leave", headers=FORM | FRENCH, body="")
    says_in_french(french_page(refused, 409), "Only a place in the waitlist can be left.", html=True)
    assert f'name="next" value="/registrations/{token}"' in refused.body.decode()  # the switch: back to a page
    assert client.http.post(f"/registrations/{token}/end", headers=FORM | FRENCH, body="").status_code == 303
    callback(client, workshop, {"registration": held["id"], "student": held["student"], "outcome": "cleaned",
                                "completion": 80})
    survey = french_page(client.http.get(f"/survey/{token}", headers=FRENCH))
    says_in_french(survey, "How was %(title)s?", "Overall, how was the workshop? (1 poor, 5 excellent)",
                   "Too fast", html=True)
    bad = client.http.post(f"/survey/{token}", headers=FORM | FRENCH, body=urlencode({"rating": "9"}))
    says_in_french(french_page(bad, 422), "Some answers need attention.",
                   "Choose a rating from 1 (poor) to 5 (excellent).", html=True)
    missing = french_page(client.http.get("/registrations/not-a-token-of-ours", headers=FRENCH), 404)
    says_in_french(missing, "Not found", "No registration has this link. Open the link from your latest email.",
                   html=True)

    mails = recording.to(APPLICANT["email"])
    assert [m.subject.split("\u00a0:")[0] for m in mails] == [
        "Confirmez votre place", "Vous êtes inscrit·e", "Votre atelier est prêt", "Plus qu'une heure",
        "Du temps en plus", f"Merci d'avoir suivi {TITLE_FR}"]
    for mail in mails:
        french_mail(mail)
        assert TITLE_FR in mail.text and TITLE not in mail.text
    welcome, credentials, thanks = mails[1], mails[2], mails[5]
    says_in_french(credentials.text, "Log in with the student name and password above; the workshop opens on "
                   "0-ReadMeFirst.ipynb. Your work is erased when the time is over, so download anything you want "
                   "to keep.", "Student name:")
    says_in_french(thanks.text, "You ran %(share)s of its code cells.")
    assert "80 %" in plain(thanks.text)  # a French percentage
    _, calendar = invitation_of(welcome)
    [event] = calendar.walk("VEVENT")
    assert str(event["SUMMARY"]) == TITLE_FR
    assert english_left(str(event["DESCRIPTION"])) == [] and "Votre inscription" in str(event["DESCRIPTION"])


def registration(**fields) -> Registration:
    return Registration(id="r" * 24, email="ada@example.com", first_name="Ada", last_name="Lovelace",
                        workshop_id=WORKSHOP, language="fr", **fields)


@pytest.mark.parametrize(("kind", "fields", "given"), [
    ("confirm", {"status": "unconfirmed", "student_id": "s-1"}, {}),
    ("confirm", {"status": "unconfirmed"}, {}),
    ("already", {"status": "unconfirmed"}, {}),
    ("already", {"status": "active"}, {}),
    ("welcome", {"status": "pending"}, {}),
    ("welcome", {"status": "pending", "due_state": "scheduled"}, {"starts_at": True}),
    ("waitlisted", {"status": "waitlisted"}, {"position": 3}),
    ("waitlisted", {"status": "waitlisted"}, {"position": 0}),
    ("apology", {"status": "failed"}, {}),
    ("promoted", {"status": "pending"}, {}),
    ("promoted", {"status": "pending", "due_state": "scheduled"}, {"starts_at": True}),
    ("reminder", {"status": "active", "student_id": "s-1"}, {}),
    ("extended", {"status": "active", "student_id": "s-1"}, {}),
    ("thanks", {"status": "finished", "completion": 100.0, "checks_passed": 3}, {"checks": 3}),
    ("thanks", {"status": "finished"}, {"checks": 3, "replay": True}),
    ("thanks", {"status": "finished", "completion": 50.0}, {}),
    ("level", {"status": "finished"}, {"level": 3}),
])
def test_every_participant_mail_is_in_the_registrations_language(workshop, clock, kind, fields, given):
    found = workshop.stores.seats.get_workshop(WORKSHOP)
    shown = dataclasses.replace(found, checks=given.get("checks", 0), badge="badge.svg",
                                replay_url="https://replay.example/1" if given.get("replay") else None,
                                starts_at=clock() + timedelta(days=1) if given.get("starts_at") else None)
    reg = registration(created_at=clock(), started_at=clock(), ends_at=clock() + timedelta(hours=1),
                       confirm_by=clock() + timedelta(minutes=15), finished_at=clock(), **fields)
    mail = outbox.participant_email(workshop, kind, reg, shown, level=given.get("level", 0),
                                    position=given.get("position"))
    french_mail(mail)
    assert TITLE_FR in mail.subject or kind == "level"
    says_in_french(mail.html, "You receive this email because this address registered for a workshop. Your "
                   "personal data is deleted after the workshop.", html=True)

    english = outbox.participant_email(workshop, kind, dataclasses.replace(reg, language=None), shown,
                                       level=given.get("level", 0), position=given.get("position"))
    assert english.subject == outbox.SUBJECTS[kind] % {"title": TITLE, "level": given.get("level", 0)}
    assert '<html lang="en">' in english.html and "Vous" not in english.text


@pytest.fixture
def a_catalog_missing_entries(tmp_path, monkeypatch):
    """The French catalog with "Pick a workshop" left out, "Register" empty and "Seats" fuzzy."""
    catalog = read_catalog(catalog_path("fr"), "fr")
    catalog.delete("Pick a workshop")
    catalog.get("Register").string = ""
    catalog.get("Seats").flags.add("fuzzy")
    messages._write(catalog, catalog_path("fr", tmp_path))
    monkeypatch.setattr(translations, "LOCALE", tmp_path)
    translations.translations.cache_clear()
    render.environment.cache_clear()
    yield catalog
    monkeypatch.undo()
    translations.translations.cache_clear()
    render.environment.cache_clear()


def test_a_message_the_catalog_lacks_shows_in_english_never_empty_or_as_a_key(client, workshop,
                                                                              a_catalog_missing_entries):
    page = client.http.get("/", headers=FRENCH).body.decode()
    assert "<h1>Pick a workshop</h1>" in page  # left out
    assert re.search(r'class="button"[^>]*>Register</a>', page)  # empty
    assert "<dt>Seats</dt>" in page  # fuzzy
    says_in_french(page, "Workshops catalog", "Register, get an email with your login, and start coding in your "
                   "browser. No installation needed.", html=True)
    assert "<h1></h1>" not in page and "<dt></dt>" not in page
    assert english_left(page, html=True) == ["Pick a workshop"]  # what the French pages are checked with sees it
    problems = messages.problems(messages.extract(), {"fr": a_catalog_missing_entries})
    assert {problem.split(":")[1].strip() for problem in problems} == {"not in the catalog (python -m local.messages "
                                                                        "update)", "untranslated", "fuzzy"}


@pytest.mark.parametrize(("header", "expected"), [
    ("en;q=0.5, fr;q=0.8", "fr"),
    ("de, fr-CA;q=0.1", "fr"),
    ("fr-BE", "fr"),
    ("fr;q=0, en;q=0.1", "en"),
    ("de-DE,de;q=0.9", "en"),
    ("", "en"),
])
def test_the_page_language_follows_accept_language_and_its_q_values(client, workshop, header, expected):
    response = client.http.get("/", headers={"Accept-Language": header})
    assert f'<html lang="{expected}">' in response.body.decode()
    assert response.headers["Content-Language"] == expected and response.headers["Vary"] == "Accept-Language, Cookie"


def test_the_language_switch_keeps_the_choice_in_a_cookie_that_wins_over_accept_language(client, workshop):
    page = client.http.get(f"/workshops/{WORKSHOP}", headers=FRENCH).body.decode()
    assert '<form class="languages" method="post" action="/language" aria-label="Langue">' in page
    assert f'<input type="hidden" name="next" value="/workshops/{WORKSHOP}">' in page
    assert re.search(r'<button type="submit" name="language" value="fr" lang="fr" aria-current="true">Français'
                     r'</button>', page)
    chosen = client.http.post("/language", headers=FORM | FRENCH,
                              body=urlencode({"language": "en", "next": f"/workshops/{WORKSHOP}"}))
    assert chosen.status_code == 303 and chosen.headers["Location"] == f"/workshops/{WORKSHOP}"
    cookie = chosen.headers["Set-Cookie"]
    assert cookie.startswith("wod_lang=en;") and "Path=/;" in cookie and "SameSite=Lax" in cookie
    assert "HttpOnly" in cookie and "Secure" in cookie  # the public URL is https
    english = client.http.get(f"/workshops/{WORKSHOP}", headers=FRENCH | {"Cookie": "wod_lang=en"}).body.decode()
    assert '<html lang="en">' in english and TITLE in english and "Register" in english
    assert "Pick a workshop" not in english and english_left(english, html=True)  # the check sees English
    french = client.http.get("/", headers={"Accept-Language": "en", "Cookie": "other=1; wod_lang=fr"})
    assert '<html lang="fr">' in french.body.decode()

    elsewhere = client.http.post("/language", headers=FORM, body=urlencode({"language": "fr",
                                                                            "next": "//evil.example/x"}))
    assert elsewhere.headers["Location"] == "/"
    unknown = client.http.post("/language", headers=FORM, body=urlencode({"language": "xx", "next": "/"}))
    assert unknown.status_code == 303 and "Set-Cookie" not in unknown.headers
    foreign = client.http.post("/language", headers=FORM | {"Origin": "https://evil.example"},
                               body=urlencode({"language": "fr"}))
    assert foreign.status_code == 403 and "Set-Cookie" not in foreign.headers


def test_a_cached_page_is_not_given_to_someone_of_another_language(client, workshop):
    english = client.http.get("/")
    etag = english.headers["ETag"]
    assert client.http.get("/", headers={"If-None-Match": etag}).status_code == 304
    again = client.http.get("/", headers=FRENCH | {"If-None-Match": etag})
    assert again.status_code == 200 and again.headers["ETag"] != etag and TITLE_FR in again.body.decode()
    assert client.http.get("/", headers={"If-None-Match": etag}).headers["Vary"] == "Accept-Language, Cookie"


def test_the_registrations_language_is_kept_for_every_later_mail(client, platform, sync, recording, clock):
    """Registered in French (the body's language), then every later mail in French, sent by requests
    and time checks that carry no language of their own."""
    sync((WORKSHOP, FOLDER))
    body = {"workshop": WORKSHOP, **APPLICANT, "accept_terms": True, "language": "fr"}
    assert client.http.post("/api/registrations", headers=JSON, body=json.dumps(body)).status_code == 202
    created = registered(platform, APPLICANT["email"])
    activate(client, platform, created)  # a signed callback: no Accept-Language
    clock.advance(minutes=61)
    assert lifecycle.tick(platform)["expired"] == 1
    callback(client, platform, {"registration": created["id"], "student": created["student"], "outcome": "cleaned",
                                "completion": 100})
    mails = recording.to(APPLICANT["email"])
    assert [m.subject for m in mails][-1] == f"Merci d'avoir suivi {TITLE_FR}"
    for mail in mails:
        french_mail(mail)


@pytest.mark.parametrize(("headers", "language", "stored"), [
    ({}, None, "en"),
    (FRENCH, None, "fr"),
    ({"Cookie": "wod_lang=fr"}, None, "fr"),
    (FRENCH, "en", "en"),
    ({}, "fr-CA", "fr"),
])
def test_the_registration_takes_the_bodys_language_else_the_requests(client, platform, sync, headers, language,
                                                                     stored):
    sync((WORKSHOP, FOLDER))
    body = {"workshop": WORKSHOP, **APPLICANT, "accept_terms": True} | ({"language": language} if language else {})
    assert client.http.post("/api/registrations", headers=JSON | headers, body=json.dumps(body)).status_code == 202
    reg = platform.stores.registrations.get(registered(platform, APPLICANT["email"])["id"])
    assert reg.language == stored


@pytest.mark.parametrize("language", ["xx", "klingon-tlh", 7, ""])
def test_a_language_the_platform_does_not_ship_is_refused(client, platform, sync, language):
    sync((WORKSHOP, FOLDER))
    body = {"workshop": WORKSHOP, **APPLICANT, "accept_terms": True, "language": language}
    response = client.http.post("/api/registrations", headers=JSON, body=json.dumps(body))
    assert response.status_code == 422
    assert json.loads(response.body)["fields"] == {"language": "Choose one of these languages: en, fr."}


def test_the_workshops_french_title_shows_on_the_french_catalog_only(client, platform, sync):
    sync((WORKSHOP, FOLDER), ("WKSHP-PLAIN", {"seats": 1, "title": "Only English"}))
    listed = {w["id"]: w for w in json.loads(client.http.get("/api/workshops", headers=FRENCH).body)}
    assert (listed[WORKSHOP]["title"], listed[WORKSHOP]["description"]) == (TITLE_FR, DESCRIPTION_FR)
    assert listed["WKSHP-PLAIN"]["title"] == "Only English"  # no French of its own: its own title
    english = client.http.get("/").body.decode()
    assert TITLE in english and TITLE_FR not in english
    sync((WORKSHOP, {**FOLDER, "translations": {"fr": {"title": "Autre titre"}}}))
    french = client.http.get("/", headers=FRENCH).body.decode()
    assert "Autre titre" in french and DESCRIPTION in french  # a description it does not give: the workshop's own
    sync((WORKSHOP, {key: value for key, value in FOLDER.items() if key != "translations"}))
    assert TITLE in client.http.get("/", headers=FRENCH).body.decode()  # removed from the folder: gone
