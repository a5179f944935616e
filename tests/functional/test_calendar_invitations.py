"""The session in the participant's calendar: the welcome invites to it, the credentials give its
real times, an extension moves its end, an early end or a failure cancels it, one UID throughout
and each revision's SEQUENCE above the last; times on the pages as UTC <time> elements the
browser shows in its own zone."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest

from chalicelib.services import links
from chalicelib.services import time_checks as lifecycle
from tests.admintools import FORM, activate, api, callback, participant, sign_in
from tests.conftest import ses_sent
from tests.mailtools import invitation_of

WORKSHOP = "WKSHP-CAL"
TITLE = "Calendars, Time; Zones"


def event(mail):
    found = invitation_of(mail)
    assert found is not None, mail.subject
    method, calendar = found
    [session] = calendar.walk("VEVENT")
    assert calendar["METHOD"] == method
    return method, session


def words(text: str) -> str:
    return " ".join(text.split())


def mail(recording, subject: str):
    [found] = [e for e in recording.sent if e.subject.startswith(subject)]
    return found


@pytest.fixture
def workshop(sync):
    sync((WORKSHOP, {"seats": 1, "duration": 120, "title": TITLE}))


@pytest.fixture
def seated(client, platform, workshop, recording):
    return participant(platform, WORKSHOP, "mo@example.com")


@pytest.fixture
def active(client, platform, seated, clock):
    clock.advance(minutes=1)  # the environment is ready a minute after the welcome
    activate(client, platform, seated)
    return seated


def test_the_welcome_mail_invites_to_a_session_that_starts_now(platform, seated, recording, clock):
    welcome = mail(recording, "You're registered")
    method, session = event(welcome)
    assert method == "REQUEST" and session["STATUS"] == "CONFIRMED" and session["SEQUENCE"] == 0
    assert session["UID"] == f"{seated['id']}@wod.example"
    assert (session.start, session.end) == (clock(), clock() + timedelta(minutes=120))
    assert session["SUMMARY"] == TITLE
    assert session["URL"] == links.status_url(platform, seated["id"])
    assert session["ORGANIZER"] == "mailto:noreply@wod.local" and session["ATTENDEE"] == "mailto:mo@example.com"
    assert "The calendar invitation in this email puts the session in your calendar" in words(welcome.text)
    assert all(invitation_of(e) is None for e in recording.sent if e.to != "mo@example.com")  # the order


def test_the_credentials_mail_carries_the_real_start_and_end(platform, active, recording, tables):
    reg = tables.customers.get(active["id"])
    method, session = event(mail(recording, "Your workshop is ready"))
    assert method == "REQUEST" and session["SEQUENCE"] == 1
    assert session["UID"] == f"{active['id']}@wod.example"
    assert (session.start, session.end) == (reg.started_at, reg.ends_at)
    assert session.start > event(mail(recording, "You're registered"))[1].start


def test_each_extension_mails_the_moved_end_with_a_higher_sequence(client, platform, active, recording, tables):
    ends = tables.customers.get(active["id"]).ends_at
    response = client.http.post(f"/registrations/{links.action_token(platform, active['id'])}/extend", body="",
                                headers=FORM)
    assert response.status_code == 303
    assert api(client, platform, "POST", f"/api/admin/registrations/{active['id']}/extend", {"minutes": 15})[0] == 200
    extended = [e for e in recording.sent if e.subject == f"More time: {TITLE}"]
    assert len(extended) == 2
    sessions = [event(e)[1] for e in extended]
    assert [s["SEQUENCE"] for s in sessions] == [2, 3]  # the organiser's extension raises it too
    assert [s.end for s in sessions] == [ends + timedelta(minutes=30), ends + timedelta(minutes=45)]
    assert {s["UID"] for s in sessions} == {f"{active['id']}@wod.example"}
    assert f"now ends at {ends + timedelta(minutes=45):%H:%M UTC on %d %b %Y}" in words(extended[-1].text)
    assert tables.customers.get(active["id"]).extensions_used == 1  # the organiser's is not the participant's


def test_ending_early_cancels_the_session_in_the_thank_you(client, platform, active, recording, clock):
    client.http.post(f"/registrations/{links.action_token(platform, active['id'])}/extend", body="", headers=FORM)
    clock.advance(minutes=20)
    client.http.post(f"/registrations/{links.action_token(platform, active['id'])}/end", body="", headers=FORM)
    callback(client, platform, {"registration": active["id"], "student": active["student"], "outcome": "cleaned",
                                "completion": 50})
    method, session = event(mail(recording, "Thank you for taking"))
    assert method == "CANCEL" and session["STATUS"] == "CANCELLED"
    assert session["UID"] == f"{active['id']}@wod.example" and session["SEQUENCE"] == 3  # the extension's was 2


def test_a_session_that_ran_its_time_stays_in_the_calendar(client, platform, active, recording, clock):
    clock.advance(minutes=121)
    assert lifecycle.tick(platform)["expired"] == 1
    callback(client, platform, {"registration": active["id"], "student": active["student"], "outcome": "cleaned",
                                "completion": 100})
    assert invitation_of(mail(recording, "Thank you for taking")) is None


def test_a_failed_provisioning_cancels_the_welcomes_invitation(client, platform, seated, recording):
    callback(client, platform, {"registration": seated["id"], "student": seated["student"], "outcome": "failed",
                                "reason": "HubUnavailable: down"})
    apology = mail(recording, "We could not prepare your workshop")
    method, session = event(apology)
    assert method == "CANCEL" and session["STATUS"] == "CANCELLED" and session["SEQUENCE"] == 1
    assert session["UID"] == f"{seated['id']}@wod.example"
    assert "The calendar invitation in this email removes the session from your calendar" in words(apology.text)


def test_a_waitlist_promotion_invites_to_the_session(client, platform, active, recording, clock):
    waiting = participant(platform, WORKSHOP, "wait@example.com")
    assert invitation_of(recording.to("wait@example.com")[-1]) is None  # a place in the waitlist is no session
    api(client, platform, "POST", f"/api/admin/registrations/{active['id']}/end")
    clock.advance(minutes=2)
    callback(client, platform, {"registration": active["id"], "student": active["student"], "outcome": "cleaned"})
    method, session = event(mail(recording, "A seat is yours"))
    assert method == "REQUEST" and session["SEQUENCE"] == 0
    assert session["UID"] == f"{waiting['id']}@wod.example" and session.start == clock()


def test_a_workshop_time_zone_is_the_invitations_tzid(platform, sync, recording, clock):
    sync((WORKSHOP, {"seats": 1, "duration": 90, "timezone": "Asia/Kolkata"}))
    assert platform.stores.seats.get_workshop(WORKSHOP).timezone == "Asia/Kolkata"
    participant(platform, WORKSHOP, "mo@example.com")
    _, session = event(mail(recording, "You're registered"))
    assert session["DTSTART"].params["TZID"] == session["DTEND"].params["TZID"] == "Asia/Kolkata"
    assert session.start == clock() and session.start.utcoffset() == timedelta(hours=5, minutes=30)
    sync((WORKSHOP, {"seats": 1, "duration": 90}))  # the field removed from the folder
    assert platform.stores.seats.get_workshop(WORKSHOP).timezone is None


def test_the_invitation_goes_out_through_ses_in_the_raw_mime(platform, workshop):
    created = participant(platform, WORKSHOP, "mo@example.com")
    [welcome] = [m for m in ses_sent() if str(m["Subject"]).startswith("You're registered")]
    method, session = event(welcome)
    assert method == "REQUEST" and session["UID"] == f"{created['id']}@wod.example"


def test_the_pages_show_times_as_utc_time_elements_for_the_browser_to_localise(client, platform, active, tables):
    reg = tables.customers.get(active["id"])
    page = client.http.get(f"/registrations/{links.action_token(platform, active['id'])}").body.decode()
    for label, when in (("Registered", reg.created_at), ("Started", reg.started_at), ("Ends", reg.ends_at)):
        assert re.search(rf'<dt>{label}</dt><dd><time datetime="{re.escape(when.isoformat())}">'
                         rf'{when:%Y-%m-%d %H:%M} UTC</time></dd>', page), label
    assert reg.started_at.isoformat().endswith("+00:00")
    assert '<script src="/static/page.js" defer></script>' in page
    script = client.http.get("/static/page.js")
    assert script.status_code == 200 and script.headers["Content-Type"].startswith("text/javascript")
    assert "timeZoneName" in script.body.decode() and "data-autosend" in script.body.decode()

    api(client, platform, "POST", f"/api/admin/registrations/{active['id']}/end")
    callback(client, platform, {"registration": active["id"], "student": active["student"], "outcome": "cleaned"})
    survey = f"/survey/{links.action_token(platform, active['id'])}"
    client.http.post(survey, body=b"rating=4", headers=FORM)
    saved = client.http.get(f"{survey}?saved=1").body.decode()
    assert re.search(r'until <time datetime="[^"]+\+00:00">\d{4}-\d\d-\d\d \d\d:\d\d UTC</time>', saved)
    assert '<script src="/static/page.js" defer></script>' in saved

    cookie = sign_in(client, platform)
    audit = client.http.get("/admin/audit", headers={"Cookie": cookie}).body.decode()
    assert re.search(r'<time datetime="[^"]+">\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC</time>', audit)
    assert '<script src="/static/page.js" defer></script>' in audit
    listed = client.http.get("/admin/registrations", headers={"Cookie": cookie}).body.decode()
    assert re.search(r'started <time datetime="[^"]+">\d{4}-\d\d-\d\d \d\d:\d\d UTC</time>', listed)
    overview = client.http.get("/admin", headers={"Cookie": cookie}).body.decode()
    assert overview.count("<script") == 1 and '<script src="/static/page.js" defer></script>' in overview
