"""A participant registers in a real browser; the emails are read in the local web inbox.

Runs `python -m local` (tests/stack.py) and headless Chromium. Screenshots of each
step land in test-artifacts/e2e/.
"""
from __future__ import annotations

import re

import pytest
import requests
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e

REGISTRATION_URL = re.compile(r"/registrations/([A-Za-z0-9_-]{16,64})$")
ORDERS = "orders@backend.wod.local"
FIRST, LAST, COMPANY = "Zoë", "O'Brien", "Smith & Sons"


def card(page, workshop_id: str):
    return page.locator(f"li.card#{workshop_id}")


def submit(page):
    """Click the form's submit button; return the response of the page it lands on."""
    with page.expect_navigation() as navigation:
        page.locator("form.register button[type=submit]").click()
    return navigation.value


def fill_form(page, email: str) -> None:
    page.locator("#email").fill(email)
    page.locator("#first_name").fill(FIRST)
    page.locator("#last_name").fill(LAST)
    page.locator("#company").fill(COMPANY)
    page.locator("#accept_terms").check()


def registration_id_of(page) -> str:
    match = REGISTRATION_URL.search(page.url)
    assert match, f"not on a registration status page: {page.url}"
    return match.group(1)


def assert_redirected_after_post(response, workshop_id: str) -> None:
    """The status page was reached through a 303 from the form's POST (post/redirect/get)."""
    assert response.status == 200, response.status
    posted = response.request.redirected_from
    assert posted is not None, "the form POST did not redirect"
    assert posted.method == "POST" and posted.url.endswith(f"/workshops/{workshop_id}"), posted.url
    assert posted.response().status == 303


def open_in_inbox(page, stack, message: dict):
    """Open the inbox page, click the message's subject in its row, return the HTML body's frame."""
    page.goto(f"{stack.inbox_url}/")
    expect(page.locator("h1")).to_have_text("Local inbox")
    row = page.locator("tr", has=page.locator(f'a[href="/messages/{message["id"]}"]'))
    expect(row).to_have_count(1)
    expect(row.locator("td").nth(1)).to_have_text(", ".join(message["to"]))
    row.get_by_role("link", name=message["subject"], exact=True).click()
    expect(page).to_have_url(f'{stack.inbox_url}/messages/{message["id"]}')
    expect(page.locator("h1")).to_have_text(message["subject"])
    return page.frame_locator('iframe[title="HTML body"]')


def test_register_through_the_form_and_read_the_welcome_email(page, stack, workshops, shot, console):
    workshop_id, title = workshops["seated"]["id"], workshops["seated"]["title"]
    email = "zoe.obrien+e2e@example.com"

    # 1. The catalog shows the workshop with its seats and the Beta badge.
    response = page.goto(f"{stack.app_url}/")
    assert response.status == 200
    item = card(page, workshop_id)
    expect(item).to_have_count(1)
    expect(item.locator("h2")).to_have_text(title)
    expect(item.locator("dd.seats")).to_have_text("2 of 2 left")
    expect(item.locator("span.badge.beta")).to_have_text("Beta")
    expect(card(page, workshops["waitlist"]["id"]).locator("span.badge.beta")).to_have_count(0)
    register = item.locator("a.button")
    expect(register).to_have_text("Register")
    expect(register).to_have_attribute("href", f"/workshops/{workshop_id}")
    shot(page, "catalog")

    # 2. Register opens the workshop's form.
    register.click()
    expect(page).to_have_url(f"{stack.app_url}/workshops/{workshop_id}")
    expect(page.locator("h1")).to_contain_text(title)
    expect(page.locator("h1 span.badge.beta")).to_have_text("Beta")
    form = page.locator("form.register")
    expect(form.locator("button[type=submit]")).to_have_text("Register")
    expect(form.locator("div.alert")).to_have_count(0)
    shot(page, "form")

    # 3. An empty form comes back (422) with one message per field.
    response = submit(page)
    assert response.status == 422
    assert response.request.method == "POST"
    expect(page).to_have_url(f"{stack.app_url}/workshops/{workshop_id}")
    expect(page.locator('div.alert[role="alert"]')).to_have_text("Some fields need attention.")
    expected_errors = {
        "email": "Email is required.",
        "first_name": "First name is required.",
        "last_name": "Last name is required.",
        "company": "Company is required.",
        "accept_terms": "You must accept the terms to register.",
    }
    for field, message in expected_errors.items():
        expect(page.locator(f"p.error#{field}-error")).to_have_text(message)
        expect(page.locator(f"#{field}")).to_have_attribute("aria-invalid", "true")
        expect(page.locator(f"#{field}")).to_have_attribute("aria-describedby", f"{field}-error")
    expect(page.locator("p.error")).to_have_count(len(expected_errors))
    shot(page, "errors")

    # 4. A valid form (non-ASCII name, apostrophe, ampersand) redirects to the status page.
    fill_form(page, email)
    response = submit(page)
    assert_redirected_after_post(response, workshop_id)
    registration_id = registration_id_of(page)
    status_url = f"{stack.app_url}/registrations/{registration_id}"
    expect(page.locator("p.status")).to_have_class("status status-pending")
    expect(page.locator("p.status")).to_have_text("Status: Pending")
    expect(page.locator("dt", has_text="Workshop").locator("+ dd")).to_have_text(title)
    student_dd = page.locator("dt", has_text="Your student account").locator("+ dd")
    expect(student_dd).to_have_text(re.compile(r"^e2e-[12]$"))
    student = student_dd.inner_text().strip()
    expect(page.locator("dd.position")).to_have_count(0)
    shot(page, "status")

    api = requests.get(f"{stack.app_url}/api/registrations/{registration_id}", timeout=10).json()
    assert api["status"] == "pending"
    assert api["student"] == student
    assert api["position"] is None
    assert api["workshop"] == {"id": workshop_id, "title": title}
    assert api["status_url"] == status_url
    seats = {w["id"]: w for w in requests.get(f"{stack.app_url}/api/workshops", timeout=10).json()}
    assert seats[workshop_id]["seats_free"] == 1 and seats[workshop_id]["seats_total"] == 2

    # 5. The welcome email and the signed order arrive.
    subject = f"You're registered: {title}"
    welcome = stack.wait_for_message(lambda m: m["subject"] == subject, timeout=20, to=email)
    assert welcome["to"] == [email]
    assert f"Hello {FIRST}," in welcome["text"]
    assert f"Your registration: {status_url}" in welcome["text"]
    order = stack.wait_for_message(lambda m: m["subject"] == f"CREATE {workshop_id} {student}", timeout=20, to=ORDERS)
    assert re.fullmatch(r"v1=[0-9a-f]{64}", order["headers"].get("X-WOD-Signature", "")), order["headers"]
    assert len([m for m in stack.messages(to=email)]) == 1, "the participant got more than one email"

    # 6. The inbox shows it; the HTML body greets the participant and links to the status page.
    frame = open_in_inbox(page, stack, welcome)
    expect(frame.locator("body")).to_contain_text(f"Hello {FIRST},")
    expect(frame.locator("body")).to_contain_text(f"Thank you for registering for {title} (1 h)")
    link = frame.get_by_role("link", name="See your registration", exact=True)
    expect(link).to_have_attribute("href", status_url)
    expect(page.locator("pre")).to_contain_text(f"Your registration: {status_url}")
    shot(page, "email")

    # 7. The link opens the status page (a new tab, out of the sandboxed frame).
    with page.expect_popup() as popup_info:
        link.click()
    status_tab = popup_info.value
    status_tab.wait_for_load_state()
    assert status_tab.url == status_url
    expect(status_tab.locator("p.status")).to_have_text("Status: Pending")
    expect(status_tab.locator("dt", has_text="Your student account").locator("+ dd")).to_have_text(student)
    shot(status_tab, "status-from-email")

    # 8. The same email (any case) cannot register again: 409, the form keeps what was typed.
    page.goto(f"{stack.app_url}/workshops/{workshop_id}")
    fill_form(page, email.upper())
    response = submit(page)
    assert response.status == 409
    expect(page).to_have_url(f"{stack.app_url}/workshops/{workshop_id}")
    expect(page.locator("#email-error")).to_have_text(
        "This email address already has a live registration. Check your inbox for its status link.")
    expect(page.locator("#first_name")).to_have_value(FIRST)
    expect(page.locator("#last_name")).to_have_value(LAST)
    expect(page.locator("#company")).to_have_value(COMPANY)
    shot(page, "duplicate")
    seats = {w["id"]: w for w in requests.get(f"{stack.app_url}/api/workshops", timeout=10).json()}
    assert seats[workshop_id]["seats_free"] == 1, "the refused duplicate took a seat"
    assert len(stack.messages(to=email)) == 1, "the refused duplicate was emailed"

    assert console.errors == [], f"the browser reported errors: {console.errors}"


def test_full_workshop_puts_the_form_registration_on_the_waitlist(page, stack, workshops, shot, console):
    workshop_id, title = workshops["waitlist"]["id"], workshops["waitlist"]["title"]
    email = "zoe.waitlist@example.com"

    # 1. Two API registrations take both seats.
    seated = []
    for n in (1, 2):
        response = requests.post(f"{stack.app_url}/api/registrations", timeout=30, json={
            "workshop": workshop_id, "email": f"seat{n}@example.com", "first_name": f"Seat{n}",
            "last_name": "Holder", "company": "Example", "accept_terms": True,
        })
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["status"] == "pending" and body["position"] is None, body
        seated.append(body["student"])
    assert sorted(seated) == ["e2ewait-1", "e2ewait-2"]
    workshops = {w["id"]: w for w in requests.get(f"{stack.app_url}/api/workshops", timeout=10).json()}
    assert workshops[workshop_id]["seats_free"] == 0
    assert workshops[workshop_id]["waitlist_open"] is True

    # 2. The catalog says so, and offers the waitlist.
    page.goto(f"{stack.app_url}/")
    item = card(page, workshop_id)
    expect(item.locator("h2")).to_have_text(title)
    expect(item.locator("dd.seats")).to_have_text("Full, waitlist open")
    expect(item.locator("span.badge.beta")).to_have_count(0)
    join = item.locator("a.button")
    expect(join).to_have_text("Join the waitlist")
    shot(page, "catalog-full")

    # 3. The form registration lands on the waitlist, first in line.
    join.click()
    expect(page).to_have_url(f"{stack.app_url}/workshops/{workshop_id}")
    expect(page.locator("form.register h2")).to_have_text("Join the waitlist")
    expect(page.locator("form.register button[type=submit]")).to_have_text("Join the waitlist")
    fill_form(page, email)
    shot(page, "form")
    response = submit(page)
    assert_redirected_after_post(response, workshop_id)
    registration_id = registration_id_of(page)
    status_url = f"{stack.app_url}/registrations/{registration_id}"
    expect(page.locator("p.status")).to_have_class("status status-waitlisted")
    expect(page.locator("p.status")).to_have_text("Status: Waitlisted")
    expect(page.locator("dt", has_text="Waitlist position")).to_have_count(1)
    expect(page.locator("dd.position")).to_have_text("1")
    expect(page.locator("dt", has_text="Your student account")).to_have_count(0)
    expect(page.locator("dt", has_text="Workshop").locator("+ dd")).to_have_text(title)
    shot(page, "status")

    api = requests.get(f"{stack.app_url}/api/registrations/{registration_id}", timeout=10).json()
    assert (api["status"], api["position"], api["student"]) == ("waitlisted", 1, None)
    assert api["status_url"] == status_url

    # 4. The waitlist email, and no order for a seat that was not given.
    subject = f"You're on the waitlist: {title}"
    message = stack.wait_for_message(lambda m: m["subject"] == subject, timeout=20, to=email)
    assert f"Hello {FIRST}," in message["text"]
    assert "on its waitlist at position 1." in message["text"]
    assert f"Your place in the waitlist: {status_url}" in message["text"]
    orders = [m["subject"] for m in stack.messages(to=ORDERS) if m["subject"].startswith(f"CREATE {workshop_id} ")]
    assert sorted(orders) == [f"CREATE {workshop_id} e2ewait-1", f"CREATE {workshop_id} e2ewait-2"]

    frame = open_in_inbox(page, stack, message)
    expect(frame.locator("body")).to_contain_text(f"Hello {FIRST},")
    expect(frame.locator("body")).to_contain_text("at position 1.")
    link = frame.get_by_role("link", name="See your place in the waitlist", exact=True)
    expect(link).to_have_attribute("href", status_url)
    shot(page, "email")

    assert console.errors == [], f"the browser reported errors: {console.errors}"


def test_duplicate_email_on_a_full_workshop_is_a_conflict(page, stack, workshops, shot):
    workshop_id = workshops["full"]["id"]
    email = "only.seat@example.com"
    response = requests.post(f"{stack.app_url}/api/registrations", timeout=30, json={
        "workshop": workshop_id, "email": email, "first_name": FIRST, "last_name": LAST,
        "company": COMPANY, "accept_terms": True,
    })
    assert response.status_code == 201 and response.json()["status"] == "pending", response.text

    page.goto(f"{stack.app_url}/workshops/{workshop_id}")
    expect(page.locator("form.register h2")).to_have_text("Join the waitlist")
    fill_form(page, email)
    response = submit(page)
    shot(page, "duplicate")
    assert response.status == 409
    expect(page.locator("#email-error")).to_contain_text("already has a live registration")
