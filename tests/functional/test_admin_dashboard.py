"""The dashboard, server-rendered: pictures of the seats, a searchable list with actions, the
audit log, webhooks; every action posts and comes back with its result (post/redirect/get)."""
from __future__ import annotations

import base64
import json
import re
from datetime import timedelta
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.admintools import activate, bearer, csrf_of, form_post, participant, sign_in
from tests.stack import free_port

WORKSHOP = "WKSHP-DASH"


@pytest.fixture
def active(client, platform, sync, recording):
    sync((WORKSHOP, {"seats": 3, "title": "Dashboards & charts", "extension": {"minutes": 30, "max": 0}}))
    created = participant(platform, WORKSHOP, "zoe@example.com", first='Zoë "Z"', last="Ñúñez & Sons")
    activate(client, platform, created)
    return created


@pytest.fixture
def cookie(client, platform):
    return sign_in(client, platform, "Grace Hopper")


def page(client, cookie, path):
    response = client.http.get(path, headers={"Cookie": cookie})
    assert response.status_code == 200, response.body
    return response.body.decode()


def act(client, cookie, path, fields, back="/admin/registrations"):
    """Post a dashboard form like the browser does; follow the 303; return the page it lands on."""
    csrf = csrf_of(page(client, cookie, back))
    response = form_post(client, cookie, path, fields | {"csrf": csrf, "back": back})
    assert response.status_code == 303, response.body
    return page(client, cookie, response.headers["Location"])


def flash(html):
    found = re.search(r'<p class="(notice|alert) flash" role="status">(.*?)</p>', html, re.S)
    return (found.group(1), unescape(found.group(2))) if found else None


def test_signed_out_the_dashboard_asks_to_sign_in(client, platform, active):
    response = client.http.get("/admin/registrations?q=zo")
    assert response.status_code == 401
    assert b'name="next" value="/admin/registrations?q=zo"' in response.body


def test_the_overview_draws_each_seat_and_each_waiting_person(client, platform, active, cookie):
    participant(platform, WORKSHOP, "b@example.com")
    participant(platform, WORKSHOP, "c@example.com")
    participant(platform, WORKSHOP, "w@example.com")
    response = client.http.get("/admin", headers={"Cookie": cookie})
    html = response.body.decode()
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    seats = html[html.index(f'id="workshop-{WORKSHOP}"'):]
    seats = seats[:seats.index("</svg>")]
    assert (seats.count('class="taken"'), seats.count('class="free"'), seats.count('class="waiting"')) == (3, 0, 1)
    assert "Dashboards &amp; charts: 3 of 3 seats taken, 0 free (0 warm), 1 waiting" in seats
    assert 'class="chart hourly"' in html and html.count('<rect class="bar"') == 24
    assert " style=" not in html and html.count("<script") == 1  # the pages' own script, nothing inline


def test_the_list_finds_a_participant_and_escapes_their_name(client, platform, active, cookie):
    html = page(client, cookie, "/admin/registrations?q=%C3%B1%C3%BA%C3%B1ez")
    assert "1 found" in html
    assert "Zoë &#34;Z&#34; Ñúñez &amp; Sons" in html
    assert f'action="/admin/registrations/{active["id"]}/extend"' in html
    assert "/admin/registrations.csv?q=%C3%B1%C3%BA%C3%B1ez" in html and "/api/admin/registrations.csv" not in html
    assert "0 found" in page(client, cookie, "/admin/registrations?q=nobody")
    bad = client.http.get("/admin/registrations?status=weird", headers={"Cookie": cookie})
    assert bad.status_code == 422 and b"One of:" in bad.body


def test_extend_from_the_list_shows_the_result_and_the_audit_entry(client, platform, tables, active, cookie):
    ends = tables.customers.get(active["id"]).ends_at
    landed = act(client, cookie, f"/admin/registrations/{active['id']}/extend", {},
                 back="/admin/registrations?q=zoe")
    student = tables.customers.get(active["id"]).student_id
    assert flash(landed) == ("notice", f"{student}'s workshop now ends at {ends + timedelta(minutes=30):%H:%M} UTC.")
    csrf = csrf_of(page(client, cookie, "/admin/registrations"))
    again = form_post(client, cookie, f"/admin/registrations/{active['id']}/extend", {"csrf": csrf})
    token = parse_qs(urlsplit(again.headers["Location"]).query)["flash"][0].split(".")[0]
    carried = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    assert again.status_code == 303 and "now ends at" in carried and "zoe" not in carried  # no email in URLs
    assert 'value="zoe"' in landed  # back on the same search
    assert tables.customers.get(active["id"]).extensions_used == 0
    audit = page(client, cookie, "/admin/audit")
    row = audit[audit.index("<tbody>"):].split("</tr>")[0]
    assert "Grace Hopper" in row and "registration.extend" in row and active["id"] in row and "done" in row


def test_a_refused_action_comes_back_as_an_error(client, platform, active, cookie):
    act(client, cookie, f"/admin/registrations/{active['id']}/end", {})
    landed = act(client, cookie, f"/admin/registrations/{active['id']}/extend", {})
    assert flash(landed) == ("alert", "Only a running workshop can be extended; this one is expiring.")
    landed = act(client, cookie, "/admin/students/purge", {"student": "ghost7"})
    assert flash(landed) == ("alert", "There is no student ghost7.")


def test_a_forged_flash_is_not_shown(client, platform, active, cookie):
    html = page(client, cookie, "/admin?flash=eyJtIjoiUGxlYXNlIHBheSJ9.00")
    assert flash(html) is None and "Please pay" not in html


def test_workshop_edits_record_only_what_changed(client, platform, tables, active, cookie):
    landed = act(client, cookie, f"/admin/workshops/{WORKSHOP}",
                 {"capacity": "5", "was_capacity": "3", "duration_minutes": "60", "was_duration_minutes": "60"},
                 back="/admin")
    assert flash(landed) == ("notice", "Dashboards & charts: capacity 5.")
    assert tables.workshops.get(WORKSHOP).overrides == {"capacity": 5}
    landed = act(client, cookie, f"/admin/workshops/{WORKSHOP}", {"active": "false"}, back="/admin")
    assert flash(landed) == ("notice", "Dashboards & charts: registration closed.")
    assert ">Closed</span>" in landed
    landed = act(client, cookie, f"/admin/workshops/{WORKSHOP}", {"release": "active,capacity"}, back="/admin")
    # handed back, not yet the folder's: the values stay until the next sync, and the page says so
    assert flash(landed) == ("notice", "Dashboards & charts: registration and capacity handed back to the folder: "
                                       "the next sync applies the folder's values.")
    item = tables.workshops.get(WORKSHOP)
    assert (item.overrides, item.handed_back, item.active, item.seats_total) == (None, ["active", "capacity"], False, 5)
    assert "Back to the folder at the next sync: active, capacity" in landed and ">Closed</span>" in landed
    landed = act(client, cookie, f"/admin/workshops/{WORKSHOP}", {"capacity": "0", "was_capacity": "5"}, back="/admin")
    assert flash(landed) == ("alert", "The workshop edit is not valid. capacity: A whole number from 1 to 1000.")


def test_purge_from_the_list(client, platform, tables, active, cookie):
    landed = act(client, cookie, "/admin/students/purge", {"student": active["student"]})
    assert flash(landed)[1].startswith(f"Purged {active['student']}: its registration failed")
    assert tables.customers.get(active["id"]).status == "failed"


def test_a_webhook_secret_is_shown_once(client, platform, active, cookie):
    csrf = csrf_of(page(client, cookie, "/admin/webhooks"))
    response = form_post(client, cookie, "/admin/webhooks", {"csrf": csrf, "url": "https://crm.example/hook",
                                                             "event_extended": "on", "description": "CRM"})
    assert response.status_code == 201
    secret = re.search(r'<code class="secret-value">(whsec_[^<]+)</code>', response.body.decode()).group(1)
    listing = page(client, cookie, "/admin/webhooks")
    assert secret not in listing and secret[:10] in listing and "https://crm.example/hook" in listing
    hooks = json.loads(client.http.get("/api/admin/webhooks", headers=bearer(platform)).body)
    assert [(h["url"], h["events"]) for h in hooks] == [("https://crm.example/hook", ["extended"])]
    assert secret not in json.dumps(hooks)
    refused = form_post(client, cookie, "/admin/webhooks", {"csrf": csrf, "url": "ftp://x.example/"})
    assert refused.status_code == 422 and b"Only http:// and https:// URLs." in refused.body


def test_the_csv_link_works_with_the_session(client, platform, active, cookie):
    response = client.http.get("/admin/registrations.csv?q=zoe", headers={"Cookie": cookie})
    assert response.status_code == 200 and response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in response.headers["Content-Disposition"]
    entry = json.loads(client.http.get("/api/admin/audit", headers=bearer(platform)).body)[0]
    assert (entry["actor"], entry["action"], entry["detail"]) == (
        "Grace Hopper", "registrations.export", {"filter": {}, "text_search": True, "rows": 1})  # not the text


def test_after_an_action_the_redirect_stays_on_the_dashboard(client, platform, active, cookie):
    csrf = csrf_of(page(client, cookie, "/admin"))
    response = form_post(client, cookie, f"/admin/registrations/{active['id']}/reset",
                         {"csrf": csrf, "back": "https://evil.example/steal"})
    target = urlsplit(response.headers["Location"])
    assert target.path == "/admin/registrations" and not target.netloc
    assert set(parse_qs(target.query)) == {"flash"}


def test_a_test_ping_to_an_unreachable_hook_comes_back_as_an_error(client, platform, active, cookie):
    hook = json.loads(client.http.post("/api/admin/webhooks",
                                       headers=bearer(platform) | {"Content-Type": "application/json"},
                                       body=json.dumps({"url": f"http://127.0.0.1:{free_port()}/"})).body)
    landed = act(client, cookie, f"/admin/webhooks/{hook['id']}/test", {}, back=f"/admin/webhooks/{hook['id']}")
    kind, message = flash(landed)
    assert kind == "alert" and message.startswith("Ping not delivered (") and "it will be retried" in message
    row = landed[landed.index("<tbody>"):].split("</tr>")[0]
    assert ">ping<" in row and ">pending<" in row and ">1<" in row


def test_a_flash_or_csrf_token_with_non_ascii_characters_is_refused_not_a_crash(client, platform, tables, active,
                                                                                 cookie):
    response = client.http.get("/admin?flash=a.%C3%A9", headers={"Cookie": cookie})
    assert response.status_code == 200 and flash(response.body.decode()) is None
    refused = form_post(client, cookie, f"/admin/registrations/{active['id']}/end", {"csrf": "é", "back": "/admin"})
    assert refused.status_code == 403 and b"out of date" in refused.body
    assert tables.customers.get(active["id"]).status == "active"


def test_non_ascii_digits_in_dashboard_forms_come_back_as_errors(client, platform, active, cookie):
    landed = act(client, cookie, f"/admin/workshops/{WORKSHOP}", {"capacity": "²", "was_capacity": "3"}, back="/admin")
    assert flash(landed) == ("alert", "The workshop edit is not valid. capacity: A whole number from 1 to 1000.")
    landed = act(client, cookie, f"/admin/registrations/{active['id']}/extend", {"minutes": "³⁰"})
    assert flash(landed)[0] == "alert" and "minutes: A whole number of minutes" in flash(landed)[1]
