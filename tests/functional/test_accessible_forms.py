"""Forms announce their errors: a summary with role="alert" that links to each field in error, each
field ``aria-invalid="true"`` and ``aria-describedby`` its own message, and the first field in error
focused on load (``autofocus``, no script needed). The registration form, the survey, the
confirmation page and the organiser's sign-in."""
from __future__ import annotations

import dataclasses
from html.parser import HTMLParser
from urllib.parse import urlencode

import pytest

from chalicelib.services import links
from tests.admintools import FORM, activate, api, callback, participant

WORKSHOP = "WKSHP-A11Y"
QUESTIONS = [{"id": "level", "text": "Your level before the workshop", "choices": ["New", "Some", "Expert"]},
             {"id": "next", "text": "What should the next workshop be about?"}]
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Page(HTMLParser):
    """Elements in document order (tag, attributes, text inside), found by id or attribute."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.elements: list[dict] = []
        self._open: list[dict] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        element = {"tag": tag, "attrs": dict(attrs), "text": "", "within": list(self._open)}
        self.elements.append(element)
        if tag not in VOID:
            self._open.append(element)

    def handle_endtag(self, tag):
        for n in range(len(self._open) - 1, -1, -1):
            if self._open[n]["tag"] == tag:
                del self._open[n:]
                break

    def handle_data(self, data):
        for element in self._open:
            element["text"] += data

    def by_id(self, element_id: str) -> dict:
        [found] = [e for e in self.elements if e["attrs"].get("id") == element_id]
        return found

    def inside(self, container: dict, tag: str) -> list[dict]:
        return [e for e in self.elements if e["tag"] == tag and any(p is container for p in e["within"])]

    def having(self, attribute: str, value: str | None = None) -> list[dict]:
        return [e for e in self.elements
                if attribute in e["attrs"] and (value is None or e["attrs"][attribute] == value)]


def text(element: dict) -> str:
    return " ".join(element["text"].split())


def assert_announced(page: Page, fields: list[str], first: dict) -> None:
    """Each field in error is invalid and described by its own message; the summary is an alert that
    links to each, in the page's order; ``first`` (the first field in error) alone has autofocus."""
    [summary] = page.having("role", "alert")
    assert [a["attrs"]["href"] for a in page.inside(summary, "a")] == [f"#{name}" for name in fields]
    for name in fields:
        message = page.by_id(f"{name}-error")
        assert text(message) and text(message) in text(summary)
        controls = [e for e in page.elements if e["attrs"].get("name") == name and e["tag"] in ("input", "textarea")]
        assert controls, name
        for control in controls:
            assert control["attrs"].get("aria-invalid") == "true", control
            assert f"{name}-error" in control["attrs"]["aria-describedby"].split(), control
    assert page.having("autofocus") == [first]


@pytest.fixture
def workshop(sync):
    sync((WORKSHOP, {"seats": 2, "title": "Accessible <forms>", "survey": QUESTIONS}))


def post(client, path: str, fields: dict, cookie: str | None = None):
    headers = FORM | ({"Cookie": cookie} if cookie else {})
    return client.http.post(path, headers=headers, body=urlencode(fields))


def test_the_registration_form_announces_each_error_and_focuses_the_first(client, workshop, tables):
    response = post(client, f"/workshops/{WORKSHOP}", {"email": "", "first_name": "Ada", "last_name": "",
                                                       "company": "AE"})
    assert response.status_code == 422
    page = Page(response.body.decode())
    assert_announced(page, ["email", "last_name", "accept_terms"], page.by_id("email"))
    assert text(page.having("role", "alert")[0]).startswith("Some fields need attention.")
    assert [e["attrs"]["id"] for e in page.having("aria-invalid")] == ["email", "last_name", "accept_terms"]

    only_terms = Page(post(client, f"/workshops/{WORKSHOP}", {"email": "ada@example.com", "first_name": "Ada",
                                                              "last_name": "Lovelace", "company": "AE"}).body.decode())
    assert_announced(only_terms, ["accept_terms"], only_terms.by_id("accept_terms"))
    assert tables.customers.count() == 0


def test_a_form_without_errors_has_no_alert_and_no_autofocus(client, workshop):
    page = Page(client.http.get(f"/workshops/{WORKSHOP}").body.decode())
    assert page.having("role", "alert") == [] and page.having("autofocus") == [] and page.having("aria-invalid") == []


@pytest.fixture
def finished(client, platform, workshop, recording):
    created = participant(platform, WORKSHOP, "sam@example.com", first="Sam")
    activate(client, platform, created)
    api(client, platform, "POST", f"/api/admin/registrations/{created['id']}/end")
    callback(client, platform, {"registration": created["id"], "student": created["student"], "outcome": "cleaned",
                                "completion": 100})
    return created


def test_the_survey_announces_each_error_and_focuses_the_first(client, platform, finished):
    survey = f"/survey/{links.action_token(platform, finished['id'])}"
    response = post(client, survey, {"rating": "9", "pace": "warp", "q_next": "x" * 400, "comment": "ok"})
    assert response.status_code == 422
    page = Page(response.body.decode())
    first_rating = next(e for e in page.elements if e["attrs"].get("name") == "rating")
    assert_announced(page, ["rating", "pace", "q_next"], first_rating)
    summary = text(page.having("role", "alert")[0])
    assert "Overall rating: Choose a rating" in summary
    assert "What should the next workshop be about?: At most" in summary
    for group in ("rating", "pace"):  # the group, not only its radios, is described by the message
        assert page.by_id(group)["tag"] == "fieldset"
        assert page.by_id(group)["attrs"]["aria-describedby"] == f"{group}-error"

    comment_only = Page(post(client, survey, {"rating": "4", "comment": "bell\x07"}).body.decode())
    assert_announced(comment_only, ["comment"], comment_only.by_id("comment"))


def test_an_expired_confirmation_is_an_alert(client, platform, workshop, recording, clock):
    platform.settings = dataclasses.replace(platform.settings, confirm_minutes=15)
    held = participant(platform, WORKSHOP, "late@example.com")
    link = f"/confirm/{links.action_token(platform, held['id'])}"
    page = Page(client.http.get(link).body.decode())
    assert page.having("role", "alert") == []
    [form] = page.having("action", link)
    [button] = page.inside(form, "button")
    assert text(button) == "Confirm my seat" and button["attrs"]["type"] == "submit"

    clock.advance(minutes=16)
    response = client.http.post(link, headers=FORM, body="")
    assert response.status_code == 409
    page = Page(response.body.decode())
    [alert] = page.having("role", "alert")
    assert text(alert) == "This registration was not confirmed in time, so its seat went back to the pool."
    assert page.having("action", link) == []


@pytest.mark.parametrize(("fields", "invalid", "status", "message"), [
    ({"name": "", "token": "whatever"}, "name", 422, None),
    ({"name": "Grace Hopper", "token": "not-the-token"}, "token", 403, "That is not the admin token."),
])
def test_the_sign_in_names_the_field_in_error_and_focuses_it(client, platform, fields, invalid, status, message):
    response = post(client, "/admin/login", fields | {"next": "/admin"})
    assert response.status_code == status
    page = Page(response.body.decode())
    [alert] = page.having("role", "alert")
    assert alert["attrs"]["id"] == "login-problem" and (message is None or text(alert) == message)
    field = page.by_id(invalid)
    assert field["attrs"].get("aria-invalid") == "true"
    assert field["attrs"]["aria-describedby"].split() == ["login-problem", f"{invalid}-hint"]
    assert page.having("autofocus") == [field] and page.having("aria-invalid") == [field]
    other = page.by_id("token" if invalid == "name" else "name")
    assert other["attrs"]["aria-describedby"] == f"{other['attrs']['id']}-hint"


def test_the_sign_in_form_has_no_error_markup_before_an_error(client, platform):
    page = Page(client.http.get("/admin/login").body.decode())
    assert page.having("role", "alert") == [] and page.having("autofocus") == [] and page.having("aria-invalid") == []
