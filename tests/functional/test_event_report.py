"""The event report: a scripted event whose figures are known, read as the page, JSON and CSV, and
mailed to the organisers once, an hour after the last seat came back."""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
from datetime import timedelta

import pytest

from chalicelib.adapters.workshop_folders import load_catalog
from chalicelib.services import links, registrations
from chalicelib.services.catalog import sync_workshop
from chalicelib.services.time_checks import tick
from tests.admintools import FORM, api, callback, sign_in
from tests.factory import write_checks, write_workshop
from tests.functional.test_live_room import batch, event, send

WORKSHOP = "WKSHP-REPORT"
ORGANISERS = ("events@example.org", "boss@example.org")


def register(platform, email: str, first: str) -> dict:
    return registrations.register(platform, {"workshop": WORKSHOP, "email": email, "first_name": first,
                                             "last_name": "Li", "company": "Acme", "accept_terms": True})


def confirm(client, platform, created: dict) -> None:
    response = client.http.post(f"/confirm/{links.action_token(platform, created['id'])}", headers=FORM, body="")
    assert response.status_code == 303, response.body


def ready(client, platform, registration_id: str) -> None:
    reg = platform.stores.registrations.get(registration_id)
    callback(client, platform, {"registration": reg.id, "student": reg.student_id, "outcome": "ready",
                                "password": "Pw123456789x", "hub_url": "http://hub"})


def cleaned(client, platform, created: dict, checks: int) -> None:
    assert api(client, platform, "POST", f"/api/admin/registrations/{created['id']}/end")[0] == 200
    callback(client, platform, {"registration": created["id"], "student": created["student"], "outcome": "cleaned",
                                "completion": 100 if checks == 2 else 0, "checks_passed": checks})


@pytest.fixture
def event_day(client, platform, clock, recording, tmp_path):
    """Four registrations of a three-seat workshop with two checks, confirmation on:

    - ada confirms after 2 min, gets credentials 60 s later, her notebook reports 180 s after her
      confirmation, passes both checks, finishes and rates the workshop 5;
    - bo confirms after 2 min, gets credentials 30 s later, never opens a notebook, finishes;
    - cy never confirms (her hold expires after 15 min);
    - di finds no seat, confirms her waitlist place, is promoted to cy's seat, and fails.
    """
    platform.settings = dataclasses.replace(platform.settings, confirm_minutes=15, report_to=ORGANISERS,
                                            report_delay_minutes=60)
    folder = write_workshop(tmp_path / "workshops", WORKSHOP, seats=3, duration=60, badge=None,
                            title="Reports & <charts>")
    write_checks(folder, ["q1", "q2"])
    [workshop], problems = load_catalog(tmp_path / "workshops", platform.settings.locations.keys())
    assert problems == []
    sync_workshop(platform, workshop)
    ada, bo, cy, di = (register(platform, f"{n}@example.com", n.capitalize()) for n in ("ada", "bo", "cy", "di"))
    assert di["status"] == "unconfirmed" and not di.get("student")
    clock.advance(minutes=2)
    confirm(client, platform, ada)
    confirm(client, platform, bo)
    confirm(client, platform, di)
    clock.advance(seconds=30)
    ready(client, platform, bo["id"])
    clock.advance(seconds=30)
    ready(client, platform, ada["id"])
    clock.advance(minutes=2)
    key = platform.key("events_key")
    at = clock.now.timestamp()
    status, _ = send(client, key, batch(ada["student"], [event("executed", cell=0, cells=4, at=at),
                                                          event("check", check="q1", passed=True, at=at),
                                                          event("check", check="q2", passed=True, at=at)]))
    assert status == 200
    clock.advance(minutes=11)  # cy's hold ends: di takes the seat
    tick(platform)
    promoted = platform.stores.registrations.get(di["id"])
    assert promoted.status == "pending" and promoted.student_id
    callback(client, platform, {"registration": di["id"], "student": promoted.student_id, "outcome": "failed",
                                "reason": "hub did not start\nTraceback (most recent call last): ..."})
    clock.advance(minutes=20)
    cleaned(client, platform, ada, 2)
    cleaned(client, platform, bo, 0)
    survey = f"/survey/{links.action_token(platform, ada['id'])}"
    assert client.http.post(survey, body=b"rating=5&pace=right&recommend=yes&comment=Great+%3Cb%3E",
                            headers={"Content-Type": "application/x-www-form-urlencoded"}).status_code == 303
    return {"ada": ada, "bo": bo, "cy": cy, "di": di}


def test_the_report_counts_a_scripted_event_right(client, platform, event_day):
    status, report = api(client, platform, "GET", f"/api/admin/reports/{WORKSHOP}")
    assert status == 200
    assert report["registrations"] == 4
    assert report["statuses"] == {"expired": 1, "failed": 1, "finished": 2}
    assert report["confirmation"] == {"asked": 4, "confirmed": 3, "expired": 1, "waiting": 0, "rate": 75.0}
    assert report["seats"] == {"seated": 3, "waitlisted": 1, "promoted": 1, "left_waitlist": 0, "still_waiting": 0}
    assert report["showed_up"] == {"count": 1, "of": 2, "rate": 50.0}
    assert report["seconds_to_credentials"] == {"n": 2, "p50": 30.0, "p95": 60.0}
    assert report["seconds_to_first_activity"] == {"n": 1, "p50": 180.0, "p95": 180.0}
    assert report["progress"] == [{"label": "1 of 2 checks passed", "count": 1, "percent": 50.0},
                                  {"label": "all 2 checks passed", "count": 1, "percent": 50.0}]
    assert report["completion"] == {"finished": 2, "average": 50.0, "badges": 1, "from_checks": True}
    assert report["survey"]["answers"] == 1 and report["survey"]["rating"] == 5
    assert report["survey"]["comments"] == ["Great <b>"]
    assert report["failures"] == [{"reason": "hub did not start", "count": 1}]
    assert report["per_day"] == [{"day": "2026-11-26", "count": 4}]


def test_the_page_draws_its_charts_without_script_and_escapes_what_people_wrote(client, platform, event_day):
    cookie = sign_in(client, platform)
    page = client.http.get(f"/admin/reports/{WORKSHOP}", headers={"Cookie": cookie})
    html = page.body.decode()
    assert page.status_code == 200
    assert "Reports &amp; &lt;charts&gt;" in html and "Great &lt;b&gt;" in html and "<b>" not in html
    assert html.count("<svg") >= 3 and "<script" not in html.split("<main", 1)[-1]
    assert re.search(r'id="fig-confirmation">.*?3 of 4 \(75.0 %\)', html)
    assert re.search(r'id="fig-showed">.*?1 of 2 who got credentials \(50.0 %\)', html)
    assert 'href="/admin/reports/WKSHP-REPORT/csv"' in html

    rows = list(csv.reader(io.StringIO(client.http.get(f"/admin/reports/{WORKSHOP}/csv",
                                                       headers={"Cookie": cookie}).body.decode())))
    figures = {(r[0], r[1]): r[2] for r in rows[1:]}
    assert rows[0] == ["section", "figure", "value"]
    assert figures[("confirmation", "rate")] == "75.0" and figures[("showed_up", "count")] == "1"
    assert figures[("failures", "hub did not start")] == "1"
    assert json.loads(client.http.get(f"/admin/reports/{WORKSHOP}/json",
                                      headers={"Cookie": cookie}).body)["registrations"] == 4

    # a range: the day before has nothing; a bad date is named and the whole record shown
    empty = json.loads(client.http.get(f"/admin/reports/{WORKSHOP}/json?from=2026-11-20&to=2026-11-25",
                                       headers={"Cookie": cookie}).body)
    assert empty["registrations"] == 0 and empty["survey"]["answers"] == 0
    bad = client.http.get(f"/admin/reports/{WORKSHOP}?from=26/11/2026", headers={"Cookie": cookie})
    assert bad.status_code == 422 and "a date as YYYY-MM-DD" in bad.body.decode()
    status, body = api(client, platform, "GET", f"/api/admin/reports/{WORKSHOP}?from=2026-11-27&to=2026-11-26")
    assert status == 422 and "the last day comes on or after the first" in json.dumps(body)


def test_the_report_needs_an_organiser_and_a_real_workshop(client, platform, event_day):
    assert client.http.get(f"/admin/reports/{WORKSHOP}").status_code == 401
    assert client.http.get(f"/api/admin/reports/{WORKSHOP}").status_code == 401
    status, _ = api(client, platform, "GET", "/api/admin/reports/WKSHP-NOPE")
    assert status == 404
    status, _ = api(client, platform, "GET", "/api/admin/reports/..%2Fadmin")
    assert status in (400, 404)


def test_the_organisers_get_the_report_once_an_hour_after_the_last_seat_came_back(
        client, platform, clock, recording, event_day):
    def reports():
        return [m for m in recording.sent if m.subject.startswith("Event report")]

    clock.advance(minutes=59)
    tick(platform)
    assert reports() == []
    clock.advance(minutes=2)
    tick(platform)
    mails = reports()
    assert sorted(m.to for m in mails) == sorted(ORGANISERS)
    mail = mails[0]
    assert mail.subject == "Event report: Reports & <charts>"
    assert "Confirmed their email:   3 of 4 (75.0 %)\nSeated:                  3\n" in mail.text
    assert "Showed up:               1 of 2 (50.0 %)\nTo credentials:          p50 30.0 s, p95 60.0 s\n" in mail.text
    assert "Failures:                1\n  1 x hub did not start\nUndelivered messages:    0\n" in mail.text
    assert f"https://wod.example/admin/reports/{WORKSHOP}" in mail.text
    assert "Reports &amp; &lt;charts&gt;" in mail.html and "<charts>" not in mail.html
    tick(platform)
    clock.advance(hours=3)
    tick(platform)
    assert len(reports()) == 2  # once

    # the next event: a new session later; its report covers what was registered since
    clock.advance(days=1)
    eve = register(platform, "eve@example.com", "Eve")
    confirm(client, platform, eve)
    ready(client, platform, eve["id"])
    cleaned(client, platform, eve, 1)
    tick(platform)
    assert len(reports()) == 2  # not an hour yet
    clock.advance(minutes=61)
    tick(platform)
    latest = reports()[-1]
    assert len(reports()) == 4 and "Registrations:           1\n" in latest.text


def test_a_report_whose_mail_fails_is_sent_by_a_later_run(client, platform, clock, recording, event_day):
    clock.advance(minutes=61)
    recording.failing = True
    tick(platform)
    assert not [m for m in recording.sent if m.subject.startswith("Event report")]
    recording.failing = False
    clock.advance(minutes=1)
    tick(platform)
    assert len([m for m in recording.sent if m.subject.startswith("Event report")]) == 2


def test_no_report_while_someone_still_waits_or_sits(client, platform, clock, recording, sync):
    platform.settings = dataclasses.replace(platform.settings, report_to=ORGANISERS, confirm_minutes=0)
    sync((WORKSHOP, {"seats": 1}))
    first = register(platform, "ada@example.com", "Ada")
    register(platform, "bo@example.com", "Bo")  # waits
    ready(client, platform, first["id"])
    cleaned(client, platform, first, 0)  # bo takes the seat
    clock.advance(hours=2)
    tick(platform)
    assert not [m for m in recording.sent if m.subject.startswith("Event report")]
    assert platform.stores.seats.get_workshop(WORKSHOP).last_return_at is not None
    assert timedelta(0) < clock.now - platform.stores.seats.get_workshop(WORKSHOP).last_return_at


def test_holds_nobody_confirmed_mail_no_report(client, platform, clock, recording, sync):
    """A stranger registering addresses and never confirming gives the organisers nothing to read."""
    platform.settings = dataclasses.replace(platform.settings, report_to=ORGANISERS, confirm_minutes=15)
    sync((WORKSHOP, {"seats": 2}))
    for n in range(3):
        register(platform, f"stranger{n}@example.com", "Eve")
    clock.advance(minutes=16)
    tick(platform)  # the holds go back
    clock.advance(hours=2)
    tick(platform)
    assert not [m for m in recording.sent if m.subject.startswith("Event report")]
    assert platform.stores.seats.get_workshop(WORKSHOP).last_return_at is None


def test_a_date_at_the_end_of_the_calendar_is_named(client, platform, sync):
    sync((WORKSHOP, {"seats": 1}))
    status, body = api(client, platform, "GET", f"/api/admin/reports/{WORKSHOP}?to=9999-12-31")
    assert status == 422 and "before 9999-12-31" in json.dumps(body)


def test_a_scheduled_sessions_wait_for_its_start_is_not_counted_as_time_to_credentials(client, platform, clock,
                                                                                        recording, sync):
    sync((WORKSHOP, {"seats": 1}))
    start = clock() + timedelta(days=1)
    api(client, platform, "PATCH", f"/api/admin/workshops/{WORKSHOP}", {"starts_at": start.isoformat()})
    created = register(platform, "ada@example.com", "Ada")
    clock.advance(days=1, minutes=-10)
    tick(platform)  # ordered now
    clock.advance(seconds=45)
    ready(client, platform, created["id"])
    status, report = api(client, platform, "GET", f"/api/admin/reports/{WORKSHOP}")
    assert report["seconds_to_credentials"] == {"n": 1, "p50": 45.0, "p95": 45.0}
