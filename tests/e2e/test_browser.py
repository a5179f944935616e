"""A participant registers in a real browser, confirms the seat through the emailed link, reads the
emails in the local web inbox, logs in to the real JupyterHub with the emailed credentials and runs
the workshop's first notebook.

Runs `python -m local` (tests/stack.py: app, SMTP + inbox, embedded AWS, order intake, Step Functions,
JupyterHub with the isolated spawner) and headless Chromium. Screenshots of each step land in
test-artifacts/e2e/.
"""
from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import expect

from tests.e2e.axe import assert_accessible
from tests.e2e.keyboard import assert_focus_visible, tab_through, tab_to

pytestmark = pytest.mark.e2e

REGISTRATION_URL = re.compile(r"/registrations/([A-Za-z0-9_-]{16,64}\.[A-Za-z0-9_-]{32})$")
ORDERS = "orders@backend.wod.local"
FIRST, LAST, COMPANY = "Zoë", "O'Brien", "Smith & Sons"
README = "0-ReadMeFirst.ipynb"
START_NEXT = "%2Fhub%2Fuser-redirect%2Flab%2Ftree%2F0-ReadMeFirst.ipynb"  # the quoted ?next= of Start workshop
# A seated registration right after the form: the backend may not have started, be at work, or be done.
SEATED_STATUS = re.compile(r"^Status: (Pending|Provisioning|Active)$")
SEATED_CLASS = re.compile(r"^status status-(pending|provisioning|active)$")


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


def catalog_until(stack, workshop_id: str, free: int, timeout: float = 15) -> dict:
    """The catalog's entry for a workshop once it shows ``free`` seats, or as it is at the deadline:
    each web process answers from its own snapshot of the workshops, a few seconds old."""
    deadline = time.monotonic() + timeout
    while True:
        entry = {w["id"]: w for w in requests.get(f"{stack.app_url}/api/workshops", timeout=10).json()}[workshop_id]
        if entry["seats_free"] == free or time.monotonic() > deadline:
            return entry
        time.sleep(0.5)


def token_of(page) -> str:
    """The participant's action token, from the status page's address."""
    match = REGISTRATION_URL.search(page.url)
    assert match, f"not on a registration status page: {page.url}"
    return match.group(1)


def assert_check_your_mailbox(page, response, workshop_id: str) -> None:
    """The form's POST answers "check your mailbox", whatever the address (no redirect, no id)."""
    assert response.status == 200, response.status
    assert response.request.method == "POST" and response.request.redirected_from is None
    expect(page).to_have_url(re.compile(rf"/workshops/{workshop_id}$"))
    expect(page.locator("h1")).to_have_text("Check your mailbox")
    assert "/registrations/" not in page.content()


def confirm_from_email(page, stack, email: str, title: str):
    """Open the confirmation email in the inbox, follow its link (a new tab), press the button: the
    tab lands, through a 303, on the registration's status page. Returns that tab."""
    message = stack.wait_for_message(lambda m: m["subject"] == f"Confirm your seat: {title}", timeout=20, to=email)
    frame = open_in_inbox(page, stack, message)
    link = frame.get_by_role("link", name="Confirm my seat", exact=True)
    expect(link).to_be_visible()
    tab = None
    for _ in range(3):  # a click while the sandboxed frame still settles may open nothing: click again
        try:
            with page.expect_popup(timeout=10_000) as popup_info:
                link.click()
            tab = popup_info.value
            break
        except PlaywrightTimeoutError:
            continue
    assert tab is not None, "the confirmation link opened no tab after three clicks"
    tab.wait_for_load_state()
    expect(tab.locator("h1")).to_have_text(title)
    assert_accessible(tab, "the confirmation page")
    button = tab.get_by_role("button", name="Confirm my seat")
    with tab.expect_navigation() as navigation:
        button.click()
    landed = navigation.value
    assert landed.status == 200 and landed.request.redirected_from.response().status == 303
    return tab


def dismiss_news_toast(page, wait: float = 0) -> None:
    """JupyterLab may ask "Would you like to get notified about official Jupyter news?" (a toast, bottom
    right, a few seconds after it loads): answer No if it shows within ``wait`` seconds."""
    question = "Would you like to get notified about official Jupyter news?"
    toast = page.get_by_role("alert").filter(has_text=question)
    try:
        toast.wait_for(state="visible", timeout=wait * 1000 or 1)
    except PlaywrightTimeoutError:
        return
    toast.get_by_role("button", name="No", exact=True).click()
    expect(page.get_by_text(question)).to_be_hidden()  # gone, exit animation included


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


def test_register_through_the_form_then_log_in_to_the_workshop(page, stack, workshops, shot, console):
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
    assert_accessible(page, "the catalog")

    # 2. Register opens the workshop's form.
    register.click()
    expect(page).to_have_url(f"{stack.app_url}/workshops/{workshop_id}")
    expect(page.locator("h1")).to_contain_text(title)
    expect(page.locator("h1 span.badge.beta")).to_have_text("Beta")
    form = page.locator("form.register")
    expect(form.locator("button[type=submit]")).to_have_text("Register")
    expect(form.locator("div.alert")).to_have_count(0)
    shot(page, "form")
    assert_accessible(page, "the registration form")

    # 3. An empty form comes back (422) with one message per field, a summary that links to each, and
    #    the first field in error focused.
    response = submit(page)
    assert response.status == 422
    assert response.request.method == "POST"
    expect(page).to_have_url(f"{stack.app_url}/workshops/{workshop_id}")
    summary = page.locator('div.alert[role="alert"]')
    expect(summary.locator("p")).to_have_text("Some fields need attention.")
    expect(page.locator("#email")).to_be_focused()
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
    expect(summary.locator("li a")).to_have_text(list(expected_errors.values()))
    expect(page.locator("p.error")).to_have_count(len(expected_errors))
    shot(page, "errors")
    assert_accessible(page, "the registration form with errors")

    # 4. A valid form (non-ASCII name, apostrophe, ampersand) answers "check your mailbox": the seat
    #    is held until the address confirms it, and only the confirmation email goes out.
    fill_form(page, email)
    response = submit(page)
    assert_check_your_mailbox(page, response, workshop_id)
    shot(page, "check-your-mailbox")
    assert_accessible(page, "check your mailbox")
    assert catalog_until(stack, workshop_id, free=1)["seats_free"] == 1, "the hold does not take its seat"
    confirm_subject = f"Confirm your seat: {title}"
    confirmation = stack.wait_for_message(lambda m: m["subject"] == confirm_subject, timeout=20, to=email)
    assert [m["subject"] for m in stack.messages(to=email)] == [confirm_subject]

    # 5. The confirmation link opens a page with a button; pressing it lands on the status page: the
    #    seat is taken and the environment is on its way (the backend may already be at work, or done).
    confirmed = confirm_from_email(page, stack, email, title)
    token = token_of(confirmed)
    status_url = f"{stack.app_url}/registrations/{token}"
    expect(confirmed.locator("p.status")).to_have_class(SEATED_CLASS)
    expect(confirmed.locator("p.status")).to_have_text(SEATED_STATUS)
    expect(confirmed.locator("dt", has_text="Workshop").locator("+ dd")).to_have_text(title)
    student_dd = confirmed.locator("dt", has_text="Your student account").locator("+ dd")
    expect(student_dd).to_have_text(re.compile(r"^e2e-[12]$"))
    student = student_dd.inner_text().strip()
    expect(confirmed.locator("dd.position")).to_have_count(0)
    shot(confirmed, "status")
    assert_accessible(confirmed, "the status page of a seated registration")
    confirmed.close()

    api = requests.get(f"{stack.app_url}/api/registrations/{token}", timeout=10).json()
    assert api["status"] in ("pending", "provisioning", "active"), api
    assert api["student"] == student
    assert api["position"] is None
    assert api["workshop"] == {"id": workshop_id, "title": title}
    assert api["status_url"] == status_url
    entry = catalog_until(stack, workshop_id, free=1)
    assert entry["seats_free"] == 1 and entry["seats_total"] == 2

    # 6. The welcome email arrives; the order goes to the backend, not to anyone's inbox.
    subject = f"You're registered: {title}"
    welcome = stack.wait_for_message(lambda m: m["subject"] == subject, timeout=20, to=email)
    assert welcome["to"] == [email]
    assert f"Hello {FIRST}," in welcome["text"]
    assert f"Your registration: {status_url}" in welcome["text"]
    assert stack.messages(to=ORDERS) == [], "an order was delivered to the inbox"

    # 6b. The inbox shows it; the HTML body greets the participant and links to the status page.
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
    expect(status_tab.locator("p.status")).to_have_text(SEATED_STATUS)
    expect(status_tab.locator("dt", has_text="Your student account").locator("+ dd")).to_have_text(student)
    shot(status_tab, "status-from-email")

    # 8. The environment is ready: a second email with the login, and still no order in the inbox.
    ready = stack.wait_for_message(lambda m: m["subject"] == f"Your workshop is ready: {title}", timeout=90,
                                   to=email)
    assert ready["to"] == [email]
    text = ready["text"]
    assert f"Hello {FIRST}," in text
    assert re.search(rf"^\s*Student name: {re.escape(student)}$", text, re.M), text
    password_line = re.search(r"^\s*Password:\s+(\S+)$", text, re.M)
    assert password_line, text
    password = password_line.group(1)
    assert len(password) == 12, "the generated password is 12 characters"
    assert password not in welcome["text"]
    start_url = f"{stack.hub_url}/hub/login?next={START_NEXT}"
    assert f"Start workshop: {start_url}" in text
    assert f"Your registration: {status_url}" in text
    assert stack.messages(to=ORDERS) == [], "an order was delivered to the inbox"
    assert [m["subject"] for m in stack.messages(to=email)] == [ready["subject"], subject, confirmation["subject"]]

    frame = open_in_inbox(page, stack, ready)
    expect(frame.locator("body")).to_contain_text(f"Your environment for {title} is ready.")
    expect(frame.locator("td", has_text=re.compile("^Student name$")).locator("+ td")).to_have_text(student)
    expect(frame.locator("td", has_text=re.compile("^Password$")).locator("+ td")).to_have_text(password)
    start = frame.get_by_role("link", name="Start workshop", exact=True)
    expect(start).to_have_attribute("href", start_url)
    expect(page.locator("pre")).to_contain_text(f"Start workshop: {start_url}")
    shot(page, "credentials-email")

    # 9. Start workshop opens the hub's login page in a new tab; a wrong password is refused.
    with page.expect_popup() as popup_info:
        start.click()
    hub = popup_info.value
    hub.wait_for_load_state()
    expect(hub).to_have_url(start_url)
    expect(hub.locator("body")).to_contain_text("from your Workshops-on-Demand welcome email")
    hub.locator("#username_input").fill(student)
    hub.locator("#password_input").fill(password[:-1] + ("x" if password[-1] != "x" else "y"))
    with hub.expect_navigation() as navigation:
        hub.locator("#login_submit").click()
    assert navigation.value.request.method == "POST"
    assert navigation.value.status == 403, navigation.value.status
    expect(hub).to_have_url(re.compile(rf"^{re.escape(stack.hub_url)}/hub/login\?next="))
    expect(hub.locator("p.login_error")).to_have_text("Invalid username or password")
    expect(hub.locator("#username_input")).to_have_value(student)
    shot(hub, "hub-wrong-password")

    # 10. The right password lands in JupyterLab, in the student's own server, on the ReadMeFirst notebook.
    hub.locator("#password_input").fill(password)
    hub.locator("#login_submit").click()
    expect(hub).to_have_url(f"{stack.hub_url}/user/{student}/lab/tree/{README}", timeout=60_000)
    main = hub.get_by_role("main")
    expect(main.get_by_role("tab", name=README, selected=True)).to_be_visible(timeout=60_000)
    notebook = main.get_by_role("tabpanel", name=README)
    expect(notebook).to_have_class(re.compile(r"\bjp-NotebookPanel\b"))
    markdown = notebook.locator(".jp-MarkdownCell .jp-RenderedMarkdown")
    expect(markdown.first).to_have_text(f"Welcome {student}")
    expect(markdown.first.locator("strong")).to_have_text(student)
    expect(notebook.locator(".jp-CodeCell")).to_have_count(1)
    code = notebook.locator(".jp-CodeCell").first
    expect(code.locator(".cm-content")).to_contain_text(f"print('hello from', '{student}', 'as', getpass.getuser())")
    dismiss_news_toast(hub)
    shot(hub, "notebook")

    # 11. Shift+Enter runs the cell in the student's kernel, as the student's own Linux user (once the
    #     kernel is connected; a keystroke a still-settling JupyterLab dropped is sent once more).
    expect(hub.get_by_role("button", name=re.compile(r"\| Idle$"))).to_be_visible(timeout=60_000)
    for attempt in range(2):
        code.locator(".cm-content").click()
        hub.keyboard.press("Shift+Enter")
        try:
            expect(code.locator(".jp-InputArea-prompt")).not_to_have_text("[ ]:", timeout=20_000)  # queued or run
            break
        except AssertionError:
            if attempt:
                raise
            expect(notebook.locator(".jp-CodeCell")).to_have_count(1)  # not run: nothing was added either
    output = code.locator(".jp-OutputArea-output")
    expect(output).to_have_text(f"hello from {student} as {student}", timeout=60_000)  # kernel start
    expect(code.locator(".jp-InputArea-prompt")).to_have_text("[1]:")
    expect(notebook.locator(".jp-CodeCell")).to_have_count(2)  # "run and advance" added an empty cell
    dismiss_news_toast(hub, wait=5)
    shot(hub, "notebook-run")
    hub.keyboard.press("Control+s")  # what the cleanup measures is what is saved in the home
    expect(hub.locator(".jp-mod-dirty")).to_have_count(0, timeout=30_000)

    # 11b. The kernel reported the cell through the hub; the toolbar's "Ask for help" button raises the
    #      participant's hand (by keyboard: focus, Enter). The facilitator's live room shows where the
    #      participant is and the raised hand, first.
    ask = notebook.locator(".jp-NotebookPanel-toolbar").get_by_role("button", name="Ask for help")
    ask.focus()
    hub.keyboard.press("Enter")
    expect(hub.get_by_role("alert").filter(has_text="Your hand is up: a facilitator will come to you.")).to_be_visible(
        timeout=30_000)
    expect(notebook.locator(".jp-CodeCell").nth(1).locator(".jp-OutputArea-output")).to_have_count(0)  # silent
    room = page.context.new_page()
    room.goto(f"{stack.app_url}/admin/login?next=/admin/live/{workshop_id}")
    room.locator("#name").fill("Grace Hopper")
    room.locator("#token").fill(stack.secret("admin_token"))
    with room.expect_navigation():
        room.get_by_role("button", name="Sign in").click()
    expect(room).to_have_url(f"{stack.app_url}/admin/live/{workshop_id}")
    seat = room.locator(f"#seat-{student}")
    expect(seat.locator("td").nth(6)).to_contain_text("Hand up since", timeout=30_000)  # the page refreshes itself
    expect(seat.locator("td").nth(3)).to_have_text(re.compile(rf"^{re.escape(README)}, step \d+ of \d+$"))
    expect(seat.locator("td").nth(2)).to_have_text("running")
    expect(room.locator("#live-rows tbody tr").first).to_have_id(f"seat-{student}")
    shot(room, "live-room")
    assert_accessible(room, "the live room")
    with room.expect_navigation():
        seat.get_by_role("button", name="Answered").click()
    expect(room.locator("p.flash")).to_have_text(f"{student}'s hand is answered.")
    expect(room.locator(f"#seat-{student} td").nth(6)).to_have_text("")
    # 11c. A message to every participant reaches the notebook: under a cell run after the kernel's
    #      next batch was answered, once, as text.
    room.locator("#live-message").fill("Break until 10:30 <b>back soon</b>")
    with room.expect_navigation():
        room.get_by_role("button", name="Show").click()
    expect(room.locator("p.flash")).to_have_text("Message shown to every participant.")
    room.close()
    hub.bring_to_front()
    banner = notebook.locator(".jp-OutputArea-output", has_text="Message from the facilitator")
    deadline = time.monotonic() + 90
    while banner.count() == 0:
        assert time.monotonic() < deadline, "the facilitator's message never reached the notebook"
        last = notebook.locator(".jp-CodeCell").last
        last.locator(".cm-content").click()
        hub.keyboard.type("1 + 1")
        hub.keyboard.press("Shift+Enter")
        try:
            expect(banner).to_have_count(1, timeout=7_000)  # the kernel sends its events every 5 s
        except AssertionError:
            continue
    expect(banner).to_have_text("Message from the facilitator: Break until 10:30 <b>back soon</b>")
    expect(banner.locator("b")).to_have_count(0)
    shot(hub, "notebook-message")

    # 12. Back on the status page (it refreshed itself): active, with the end time.
    status_tab.bring_to_front()
    expect(status_tab.locator("p.status")).to_have_text("Status: Active", timeout=30_000)
    expect(status_tab.locator("p.status")).to_have_class("status status-active")
    expect(status_tab.locator("ol.steps")).to_have_count(0)
    api = requests.get(f"{stack.app_url}/api/registrations/{token}", timeout=10).json()
    assert api["status"] == "active" and api["student"] == student, api
    ends_at = datetime.fromisoformat(api["ends_at"])
    assert timedelta(minutes=55) < ends_at - datetime.now(UTC) <= timedelta(minutes=60), api["ends_at"]
    ends = status_tab.locator("dt", has_text="Ends").locator("+ dd time")
    expect(ends).to_have_attribute("datetime", api["ends_at"])
    # the server's UTC text stays as the tooltip; the browser shows its own zone (here UTC), named
    expect(ends).to_have_attribute("title", f"{api['ends_at'][:16].replace('T', ' ')} UTC")
    expect(ends).to_have_text(re.compile(rf"{ends_at.year}.*{ends_at:%M}.*(UTC|GMT)"))
    assert f"until {ends_at.strftime('%H:%M UTC on %d %b %Y')}." in text
    shot(status_tab, "status-active")
    assert_accessible(status_tab, "the status page, active")

    # 13. The same email (any case) registering again gets the same answer, takes nothing, and the
    #     mailbox gets a short email with the registration's link.
    page.bring_to_front()
    page.goto(f"{stack.app_url}/workshops/{workshop_id}")
    fill_form(page, email.upper())
    response = submit(page)
    assert_check_your_mailbox(page, response, workshop_id)
    shot(page, "duplicate")
    seats = {w["id"]: w for w in requests.get(f"{stack.app_url}/api/workshops", timeout=10).json()}
    assert seats[workshop_id]["seats_free"] == 1, "the duplicate took a seat"
    already = stack.wait_for_message(lambda m: m["subject"] == f"You are already registered: {title}", timeout=20,
                                     to=email)
    assert f"Your registration: {status_url}" in already["text"]
    # confirm, welcome, credentials, the notice (the "one hour left" reminder of this 60-minute session
    # may have gone too, at the time checks' next tick after the start)
    subjects = [m["subject"] for m in stack.messages(to=email) if not m["subject"].startswith("One hour left")]
    assert len(subjects) == 4 and subjects.count(already["subject"]) == 1, subjects

    # Every tab: the app, the inbox, the hub's login page and JupyterLab (its kernel websocket included).
    assert console.errors == [], f"the browser reported errors: {console.errors}"

    # 14. End the workshop from the status page: cleanup runs, the thank-you email tells the completion.
    hub.close()
    status_tab.bring_to_front()
    status_tab.get_by_role("button", name="End now").click()
    expect(status_tab.locator("p.notice")).to_have_text("Your workshop is ending; the thank-you email follows.")
    thanks = stack.wait_for_message(lambda m: email in m["to"] and m["subject"].startswith("Thank you"), timeout=90)
    assert "You ran 100% of its code cells." in thanks["text"], thanks["text"]  # a workshop without checks
    status_tab.reload()
    expect(status_tab.locator("p.status")).to_have_text("Status: Finished", timeout=30_000)
    shot(status_tab, "finished")
    assert_accessible(status_tab, "the status page, finished")


def test_full_workshop_puts_the_form_registration_on_the_waitlist(page, stack, workshops, shot, console):
    workshop_id, title = workshops["waitlist"]["id"], workshops["waitlist"]["title"]
    email = "zoe.waitlist@example.com"

    # 1. Two API registrations, confirmed through their links, take both seats (the backend then
    #    prepares them, in the background).
    seated = {}
    for n in (1, 2):
        response = requests.post(f"{stack.app_url}/api/registrations", timeout=30, json={
            "workshop": workshop_id, "email": f"seat{n}@example.com", "first_name": f"Seat{n}",
            "last_name": "Holder", "company": "Example", "accept_terms": True,
        })
        assert response.status_code == 202 and "id" not in response.json(), response.text
        body = stack.confirm(f"seat{n}@example.com")
        assert body["status"] in ("pending", "provisioning", "active") and body["position"] is None, body
        seated[f"seat{n}@example.com"] = body
    assert sorted(body["student"] for body in seated.values()) == ["e2ewait-1", "e2ewait-2"]
    # 2. The catalog says so (once its few seconds' snapshot of the workshops is past), and offers
    #    the waitlist.
    deadline = time.monotonic() + 15
    while True:
        workshops = {w["id"]: w for w in requests.get(f"{stack.app_url}/api/workshops", timeout=10).json()}
        page.goto(f"{stack.app_url}/")
        full = card(page, workshop_id).locator("dd.seats").inner_text() == "Full, waitlist open"
        if (full and workshops[workshop_id]["seats_free"] == 0) or time.monotonic() > deadline:  # both fresh
            break
        time.sleep(0.5)
    assert workshops[workshop_id]["seats_free"] == 0
    assert workshops[workshop_id]["waitlist_open"] is True
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
    assert_check_your_mailbox(page, response, workshop_id)
    waiting = confirm_from_email(page, stack, email, title)
    token = token_of(waiting)
    status_url = f"{stack.app_url}/registrations/{token}"
    expect(waiting.locator("p.status")).to_have_class("status status-waitlisted")
    expect(waiting.locator("p.status")).to_have_text("Status: Waitlisted")
    expect(waiting.locator("dt", has_text="Waitlist position")).to_have_count(1)
    expect(waiting.locator("dd.position")).to_have_text("1")
    expect(waiting.locator("dt", has_text="Your student account")).to_have_count(0)
    expect(waiting.locator("dt", has_text="Workshop").locator("+ dd")).to_have_text(title)
    shot(waiting, "status")
    assert_accessible(waiting, "the status page, waitlisted")
    waiting.close()

    api = requests.get(f"{stack.app_url}/api/registrations/{token}", timeout=10).json()
    assert (api["status"], api["position"], api["student"]) == ("waitlisted", 1, None)
    assert api["status_url"] == status_url

    # 4. The waitlist email.
    subject = f"You're on the waitlist: {title}"
    message = stack.wait_for_message(lambda m: m["subject"] == subject, timeout=20, to=email)
    assert f"Hello {FIRST}," in message["text"]
    assert "on its waitlist at position 1." in message["text"]
    assert f"Your place in the waitlist: {status_url}" in message["text"]

    frame = open_in_inbox(page, stack, message)
    expect(frame.locator("body")).to_contain_text(f"Hello {FIRST},")
    expect(frame.locator("body")).to_contain_text("at position 1.")
    link = frame.get_by_role("link", name="See your place in the waitlist", exact=True)
    expect(link).to_have_attribute("href", status_url)
    shot(page, "email")

    # 5. The two seats were prepared (their holders got their logins); the waitlisted participant got
    #    no seat, no login, and is still first in line. No order ever lands in the inbox.
    ready_subject = f"Your workshop is ready: {title}"
    for seat_email, body in seated.items():
        ready = stack.wait_for_message(lambda m: m["subject"] == ready_subject, timeout=90, to=seat_email)
        assert f"Student name: {body['student']}" in ready["text"]
        state = requests.get(stack.app_url + stack.participant_path(body["id"]), timeout=10).json()
        assert (state["status"], state["student"]) == ("active", body["student"]), state
    assert [m["subject"] for m in stack.messages(to=email)] == [subject, f"Confirm your seat: {title}"], \
        "the waitlisted participant got a login"
    api = requests.get(f"{stack.app_url}/api/registrations/{token}", timeout=10).json()
    assert (api["status"], api["position"], api["student"]) == ("waitlisted", 1, None)
    assert stack.messages(to=ORDERS) == [], "an order was delivered to the inbox"

    assert console.errors == [], f"the browser reported errors: {console.errors}"


def goto_until(page, url: str, selector: str, text: str, timeout: float = 15) -> None:
    """Open ``url`` until ``selector`` reads ``text``: the pages show the workshops as they were a
    few seconds ago."""
    deadline = time.monotonic() + timeout
    while True:
        page.goto(url)
        if page.locator(selector).inner_text().strip() == text or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    expect(page.locator(selector)).to_have_text(text)


def test_a_duplicate_email_on_a_full_workshop_takes_nothing_and_reveals_nothing(page, stack, workshops, shot):
    workshop_id, title = workshops["full"]["id"], workshops["full"]["title"]
    email = "only.seat@example.com"
    response = requests.post(f"{stack.app_url}/api/registrations", timeout=30, json={
        "workshop": workshop_id, "email": email, "first_name": FIRST, "last_name": LAST,
        "company": COMPANY, "accept_terms": True,
    })
    assert response.status_code == 202, response.text
    assert stack.confirm(email)["status"] in ("pending", "provisioning", "active")

    goto_until(page, f"{stack.app_url}/workshops/{workshop_id}", "form.register h2", "Join the waitlist")
    fill_form(page, email)
    page.locator("#company").fill("Elsewhere Ltd")  # someone else with that address: not a retry
    response = submit(page)
    shot(page, "duplicate")
    assert_check_your_mailbox(page, response, workshop_id)
    stack.wait_for_message(lambda m: m["subject"] == f"You are already registered: {title}", timeout=20, to=email)
    assert stack.registration(email)["position"] is None  # still seated, nobody waits


EVIL_PAGE = """<!doctype html><meta charset="utf-8"><title>waiting</title><p>You won a prize!</p><script>
fetch(%(url)s, {method: "POST", mode: "no-cors", body: new Blob([%(body)s])})
  .then(function () { document.title = "sent"; }, function () { document.title = "failed"; });
</script>"""


def test_a_page_on_another_site_cannot_register_its_visitors(page, stack, workshops):
    """Another site's page POSTs a registration as a Blob: no Content-Type, so the browser sends it
    without asking first (no-cors); the platform must not take it for JSON."""
    import json
    import threading
    import time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    victim = "blob.visitor+e2e@example.com"
    registration = {"workshop": workshops["waitlist"]["id"], "email": victim, "first_name": "Vic",
                    "last_name": "Tim", "company": "Visitors", "accept_terms": True}
    html = (EVIL_PAGE % {"url": json.dumps(f"{stack.app_url}/api/registrations"),
                         "body": json.dumps(json.dumps(registration))}).encode()

    class Evil(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(html)))
            self.end_headers()
            self.wfile.write(html)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.2", 0), Evil)  # another site: 127.0.0.2 is not 127.0.0.1
    threading.Thread(target=server.serve_forever, daemon=True).start()
    evil = f"http://127.0.0.2:{server.server_address[1]}"
    try:
        page.goto(f"{evil}/prize")
        expect(page).to_have_title(re.compile("^(sent|failed)$"))
        assert page.title() == "sent", "the browser did not send the request (the test proves nothing)"
    finally:
        server.shutdown()
        server.server_close()
    web_log = stack.part_log("web")
    deadline, seen = time.monotonic() + 20, []
    while not seen and time.monotonic() < deadline:
        seen = [line for line in web_log.read_text(errors="replace").splitlines()
                if '"POST /api/registrations HTTP/1.1"' in line and evil in line]
        time.sleep(0.2)
    assert seen, "the platform never saw the page's POST"
    status = int(seen[-1].split('"POST /api/registrations HTTP/1.1" ', 1)[1].split()[0])
    assert status in (403, 415), seen[-1]
    assert stack.messages(to=victim) == []


def test_the_thank_you_mail_rates_in_one_click_and_the_organiser_sees_the_answer(page, stack, workshops, shot,
                                                                                 console):
    workshop_id, title = workshops["survey"]["id"], workshops["survey"]["title"]
    email = "sam.survey@example.com"

    # 1. A participant's workshop runs and ends; the cleanup thanks them.
    response = requests.post(f"{stack.app_url}/api/registrations", timeout=30, json={
        "workshop": workshop_id, "email": email, "first_name": "Sam", "last_name": "Survey", "company": "Example",
        "accept_terms": True})
    assert response.status_code == 202, response.text
    status_url = stack.confirm(email)["status_url"]
    api_url = status_url.replace("/registrations/", "/api/registrations/")
    deadline = time.monotonic() + 120
    while (state := requests.get(api_url, timeout=10).json())["status"] != "active":
        assert time.monotonic() < deadline, f"never active: {state}"
        time.sleep(1)
    assert requests.post(f"{api_url}/end", json={}, timeout=30).status_code == 200
    thanks = stack.wait_for_message(lambda m: m["subject"] == f"Thank you for taking {title}", timeout=120, to=email)

    # 2. The mail's "4" opens the survey; the page sends the rating by itself (one click).
    frame = open_in_inbox(page, stack, thanks)
    four = frame.get_by_role("link", name="Rate it 4 out of 5", exact=True)
    expect(four).to_be_visible()
    shot(page, "thanks-email")
    with page.expect_popup() as popup_info:
        four.click()
    survey = popup_info.value
    expect(survey.locator("p.notice")).to_contain_text("Thank you: your answer is saved.", timeout=30_000)
    expect(survey.get_by_role("radio", name="4")).to_be_checked()
    expect(survey).to_have_url(re.compile(r"/survey/[A-Za-z0-9_.-]+\?saved=1$"))
    assert_accessible(survey, "the survey")

    # 3. The rest of the page, from the keyboard where it is a form: pace, recommendation, the
    #    workshop's own question, a comment with markup (kept as text).
    survey.get_by_role("group", name="The pace was").get_by_role("radio", name="About right").check()
    survey.get_by_role("group", name="Would you recommend it to a colleague?").get_by_role("radio", name="Yes").check()
    survey.get_by_role("group", name="Your level before the workshop").get_by_role("radio", name="Some").check()
    survey.get_by_label(re.compile("^Anything else")).fill("Great pace <b>thanks</b>")
    shot(survey, "survey")
    with survey.expect_navigation():
        survey.get_by_role("button", name="Save my changes").click()
    expect(survey.locator("p.notice")).to_contain_text("your answer is saved")
    expect(survey.get_by_label(re.compile("^Anything else"))).to_have_value("Great pace <b>thanks</b>")

    # 4. The organiser's dashboard counts it, with the comment as text.
    survey.goto(f"{stack.app_url}/admin/login?next=/admin")
    survey.locator("#name").fill("Grace Hopper")
    survey.locator("#token").fill(stack.secret("admin_token"))
    with survey.expect_navigation():
        survey.get_by_role("button", name="Sign in").click()
    row = survey.locator(f"#survey-{workshop_id}")
    expect(row.locator("th")).to_have_text(title)
    expect(row.locator("td")).to_have_text(["1", "4.0", "0 / 0 / 0 / 1 / 0", "0 / 1 / 0", "100%"])
    expect(survey.locator("ul.comments li").filter(has_text="Great pace")).to_have_text("Great pace <b>thanks</b>")
    shot(survey, "dashboard-survey")
    assert_accessible(survey, "the dashboard overview with survey answers")


def sign_in(page, stack, next_path: str) -> None:
    page.goto(f"{stack.app_url}/admin/login?next={next_path}")
    page.locator("#name").fill("Grace Hopper")
    page.locator("#token").fill(stack.secret("admin_token"))
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{stack.app_url}{next_path}")


def test_the_pages_no_journey_reaches_pass_the_accessibility_scan(page, stack, workshops, console):
    """The journeys above scan the pages they reach; these are the rest."""
    # 1. A page that is not there.
    response = page.goto(f"{stack.app_url}/workshops/WKSHP-NOSUCH")
    assert response.status == 404
    expect(page.locator("h1")).to_have_text("Not found")
    assert_accessible(page, "the not-found page")

    # 2. A registration whose address is not confirmed yet.
    email = "not.yet+e2e@example.com"
    response = requests.post(f"{stack.app_url}/api/registrations", timeout=30, json={
        "workshop": workshops["full"]["id"], "email": email, "first_name": FIRST, "last_name": LAST,
        "company": COMPANY, "accept_terms": True})
    assert response.status_code == 202, response.text
    page.goto(stack.confirmation_link(email).replace("/confirm/", "/registrations/"))
    expect(page.locator("p.status")).to_have_text("Status: Unconfirmed")
    assert_accessible(page, "the status page, unconfirmed")

    # 3. The organiser's event report, the webhooks (refused, added) and a webhook's deliveries.
    sign_in(page, stack, f"/admin/reports/{workshops['seated']['id']}")
    expect(page.locator("h1")).to_contain_text(f"Event report: {workshops['seated']['title']}")
    assert_accessible(page, "the event report")
    page.get_by_role("link", name="Webhooks", exact=True).click()
    expect(page.locator("h1")).to_have_text("Webhooks")
    assert_accessible(page, "the webhooks")
    page.locator("#url").fill("ftp://nowhere.example/hook")
    with page.expect_navigation():
        page.get_by_role("button", name="Add webhook").click()
    expect(page.locator('form.hook [role="alert"]')).to_be_visible()
    assert_accessible(page, "the webhooks with a refused address")
    page.locator("#url").fill("http://127.0.0.1:9/hook")  # local mode takes this machine; nothing listens
    with page.expect_navigation():
        page.get_by_role("button", name="Add webhook").click()
    expect(page.locator("div.notice.secret")).to_contain_text("Webhook created")
    assert_accessible(page, "the webhooks with a new secret")
    page.get_by_role("link", name="Delivery log").click()
    expect(page.locator("h1")).to_contain_text("Deliveries to")
    assert_accessible(page, "a webhook's deliveries")
    page.get_by_role("link", name="All webhooks").click()
    page.locator("details.danger-zone summary").click()
    with page.expect_navigation():
        page.get_by_role("button", name="Delete").click()
    expect(page.locator("p.flash")).to_have_text("Webhook deleted.")
    assert console.errors == [], f"the browser reported errors: {console.errors}"


def test_register_confirm_and_start_the_workshop_with_the_keyboard_alone(page, stack, workshops, shot, console):
    """No click from the catalog to JupyterLab: Tab, Shift+Tab, Enter and Space, the focus visible at
    every stop on the platform's pages. Links in emails are opened as a mail client opens them."""
    workshop_id, title = workshops["seated"]["id"], workshops["seated"]["title"]
    email = "kay.board+e2e@example.com"

    # 1. The catalog: the first Tab shows the skip link; on to the workshop's Register link.
    page.goto(f"{stack.app_url}/")
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    assert_focus_visible(page)
    tab_to(page, card(page, workshop_id).get_by_role("link", name=f"Register for {title}"))
    shot(page, "catalog-focus")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    expect(page).to_have_url(f"{stack.app_url}/workshops/{workshop_id}")

    # 2. The form, typed field after field; the terms are passed over, so it comes back with the
    #    focus on them, the one field in error.
    tab_to(page, page.locator("#email"))
    page.keyboard.type(email)
    for field, value in (("first_name", FIRST), ("last_name", LAST), ("company", COMPANY)):
        page.keyboard.press("Tab")
        expect(page.locator(f"#{field}")).to_be_focused()
        assert_focus_visible(page)
        page.keyboard.type(value)
    tab_to(page, page.locator("form.register button[type=submit]"))
    with page.expect_navigation() as navigation:
        page.keyboard.press("Enter")
    assert navigation.value.status == 422
    terms = page.locator("#accept_terms")
    expect(terms).to_be_focused()
    expect(page.locator('div.alert[role="alert"] li')).to_have_text(["You must accept the terms to register."])
    page.keyboard.press("Space")
    expect(terms).to_be_checked()
    assert_focus_visible(page)
    shot(page, "form-focus")

    # 3. Shift+Tab back over what was typed (kept), then Tab to the button and send it.
    tab_to(page, page.locator("#email"), back=True)
    expect(page.locator("#email")).to_have_value(email)
    expect(page.locator("#company")).to_have_value(COMPANY)
    tab_to(page, page.locator("form.register button[type=submit]"))
    with page.expect_navigation() as navigation:
        page.keyboard.press("Enter")
    assert_check_your_mailbox(page, navigation.value, workshop_id)

    # 4. The confirmation email's link; its button, from the keyboard, lands on the status page.
    page.goto(stack.confirmation_link(email))
    expect(page.locator("h1")).to_have_text(title)
    tab_to(page, page.get_by_role("button", name="Confirm my seat"))
    with page.expect_navigation():
        page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/registrations/"))
    expect(page.locator("p.status")).to_have_text(SEATED_STATUS)
    status_url = page.url

    # 5. Once the workshop runs (the page refreshes itself until then), every control of the status
    #    page is reached with the focus visible.
    expect(page.locator("p.status")).to_have_text("Status: Active", timeout=120_000)
    page.reload()
    stops = tab_through(page)
    assert any('"End now"' in stop for stop in stops) and any('"Ask for help"' in stop for stop in stops), stops
    shot(page, "status-focus")

    # 6. Start: the credentials email's Start workshop link, then the hub's sign-in, by keyboard.
    ready = stack.wait_for_message(lambda m: m["subject"] == f"Your workshop is ready: {title}", timeout=90, to=email)
    student = re.search(r"^\s*Student name: (\S+)$", ready["text"], re.M).group(1)
    password = re.search(r"^\s*Password:\s+(\S+)$", ready["text"], re.M).group(1)
    page.goto(f"{stack.inbox_url}/messages/{ready['id']}")
    start = page.frame_locator('iframe[title="HTML body"]').get_by_role("link", name="Start workshop", exact=True)
    tab_to(page, start, visible=False)  # the mail client's page, not the platform's
    with page.expect_popup() as popup_info:
        page.keyboard.press("Enter")
    hub = popup_info.value
    hub.wait_for_load_state()
    tab_to(hub, hub.locator("#username_input"), visible=False)
    hub.keyboard.type(student)
    hub.keyboard.press("Tab")
    expect(hub.locator("#password_input")).to_be_focused()
    hub.keyboard.type(password)
    hub.keyboard.press("Enter")
    expect(hub).to_have_url(f"{stack.hub_url}/user/{student}/lab/tree/{README}", timeout=60_000)
    expect(hub.get_by_role("main").get_by_role("tab", name=README, selected=True)).to_be_visible(timeout=60_000)
    assert console.errors == [], f"the browser reported errors: {console.errors}"

    # 7. Done: End now on the status page, from the keyboard; the cleanup thanks the participant.
    hub.close()
    page.goto(status_url)
    tab_to(page, page.get_by_role("button", name="End now"))
    with page.expect_navigation():
        page.keyboard.press("Enter")
    expect(page.locator("p.notice")).to_have_text("Your workshop is ending; the thank-you email follows.")
    stack.wait_for_message(lambda m: m["subject"] == f"Thank you for taking {title}", timeout=90, to=email)
