"""An organiser in a real browser: signs in to the dashboard with the local stack's admin token, finds
a participant whose workshop runs on the real JupyterHub, extends it, and sees the audit entry.

Runs `python -m local` (tests/stack.py) and headless Chromium; screenshots land in test-artifacts/e2e/.
"""
from __future__ import annotations

import re
import time
from datetime import datetime, timedelta

import pytest
import requests
from playwright.sync_api import expect

from tests.e2e.axe import assert_accessible

pytestmark = pytest.mark.e2e

FIRST, LAST, COMPANY = "Zoë", "Ñúñez, Jr.", '"Quoted" & Co'
ORGANISER = "Grace Hopper"


def wait_until_active(stack, registration_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stack.assert_alive()
        view = requests.get(stack.app_url + stack.participant_path(registration_id), timeout=10).json()
        if view["status"] == "active":
            return view
        assert view["status"] in ("pending", "provisioning"), view
        time.sleep(0.5)
    raise AssertionError(f"{registration_id} was not active within {timeout:.0f}s: {view}")


def test_an_organiser_signs_in_extends_a_participant_and_sees_the_audit_entry(page, stack, workshops, shot,
                                                                                  console):
    workshop_id = workshops["seated"]["id"]
    email = "zoe.admin+e2e@example.com"
    created = requests.post(f"{stack.app_url}/api/registrations", timeout=10, json={
        "workshop": workshop_id, "email": email, "first_name": FIRST, "last_name": LAST, "company": COMPANY,
        "accept_terms": True})
    assert created.status_code == 202, created.text
    registration_id = stack.confirm(email)["id"]
    running = wait_until_active(stack, registration_id)

    # 1. The dashboard asks who is there; a wrong token is refused.
    response = page.goto(f"{stack.app_url}/admin")
    assert response.status == 401
    expect(page.locator("h1")).to_have_text("Organiser sign-in")
    assert_accessible(page, "the sign-in page")
    page.locator("#name").fill(ORGANISER)
    page.locator("#token").fill("not-the-token")
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()
    expect(page.locator('p.alert[role="alert"]')).to_have_text("That is not the admin token.")
    expect(page.locator("#token")).to_be_focused()
    expect(page.locator("#token")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#token")).to_have_attribute("aria-describedby", "login-problem token-hint")
    assert_accessible(page, "the sign-in page with an error")

    # 2. With the stack's admin token: the overview, with one seat of the workshop taken.
    page.locator("#name").fill(ORGANISER)
    page.locator("#token").fill(stack.secret("admin_token"))
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{stack.app_url}/admin")
    expect(page.locator(".admin-nav .who")).to_have_text(f"Signed in as {ORGANISER}")
    seats = page.locator(f"#workshop-{workshop_id} svg.seats")
    expect(seats.locator("rect.taken")).to_have_count(1)
    expect(seats.locator("rect.free")).to_have_count(1)
    expect(page.locator("svg.chart.hourly rect.bar")).to_have_count(24)
    shot(page, "overview")
    assert_accessible(page, "the dashboard overview")

    # 3. The participant, found by a piece of their name, with their state and times.
    page.get_by_role("link", name="Registrations", exact=True).click()
    page.locator("#q").fill("ñúñez")
    with page.expect_navigation():
        page.get_by_role("button", name="Search").click()
    row = page.locator(f"#reg-{registration_id}")
    expect(row).to_have_count(1)
    expect(row.locator(".name")).to_have_text(f"{FIRST} {LAST}")
    expect(row.locator(".state")).to_have_text("active")
    shot(page, "registrations")
    assert_accessible(page, "the registrations")

    # 4. Extend: back on the same search with the result; the session ends 30 minutes later.
    with page.expect_navigation():
        row.get_by_role("button", name="Extend", exact=True).click()
    ends = datetime.fromisoformat(running["ends_at"]) + timedelta(minutes=30)
    expect(page.locator("p.flash")).to_have_text(f"{running['student']}'s workshop now ends at {ends:%H:%M} UTC.")
    assert email not in page.url
    expect(page.locator("#q")).to_have_value("ñúñez")
    after = requests.get(stack.app_url + stack.participant_path(registration_id), timeout=10).json()
    assert datetime.fromisoformat(after["ends_at"]) == ends
    shot(page, "extended")
    assert_accessible(page, "the registrations with an action's result")

    # 5. The audit log names who did it, to whom, and that it was done.
    page.get_by_role("link", name="Audit log", exact=True).click()
    newest = page.locator("table.audit tbody tr").first
    expect(newest.locator(".actor")).to_have_text(ORGANISER)
    expect(newest.locator(".action")).to_have_text("registration.extend")
    expect(newest.locator("code")).to_have_text(registration_id)
    expect(newest.locator(".outcome")).to_have_text("done")
    expect(newest.locator(".detail")).to_contain_text(running["student"])
    expect(newest.locator(".detail")).not_to_contain_text(email)  # the audit log holds no personal data
    shot(page, "audit")
    assert_accessible(page, "the audit log")

    # 6. Signing out ends the session: the dashboard asks again.
    with page.expect_navigation():
        page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/admin/login$"))
    assert page.goto(f"{stack.app_url}/admin/audit").status == 401
    assert console.errors == []
