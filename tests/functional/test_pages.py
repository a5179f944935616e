"""Server-rendered pages: catalog, form with field errors, status page, escaping."""
from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urlencode

import pytest

from chalicelib.domain.lifecycle import PROGRESS, PROVISIONED
from chalicelib.services import links
from chalicelib.services.commit import commit
from tests.factory import registered

FORM = {"email": "grace@example.com", "first_name": "Grace", "last_name": "Hopper", "company": "Navy",
        "accept_terms": "on"}


def submit(client, workshop_id, form):
    return client.http.post(f"/workshops/{workshop_id}", body=urlencode(form),
                            headers={"Content-Type": "application/x-www-form-urlencoded"})


@pytest.fixture
def workshops(sync):
    sync(("WKSHP-PAGE", {"seats": 1, "beta": True, "title": "Pages & <Forms>",
                         "presenter": {"name": "Linus O'Neil"}}),
         ("WKSHP-FULL", {"seats": 1, "priority": 1}))


def test_catalog_shows_cards_with_seats_beta_and_escaped_text(client, workshops):
    response = client.http.get("/")
    html = response.body.decode()
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert html.index('id="WKSHP-FULL"') < html.index('id="WKSHP-PAGE"')  # priority order
    assert "Pages &amp; &lt;Forms&gt;" in html and "<Forms>" not in html
    assert "Linus O&#39;Neil" in html
    assert '<span class="badge beta"' in html
    assert "1 of 1 left" in html
    HTMLParser().feed(html)


def test_form_post_shows_check_your_mailbox_and_the_email_leads_to_the_status_page(client, workshops, recording):
    response = submit(client, "WKSHP-PAGE", FORM)
    assert response.status_code == 200
    html = response.body.decode()
    assert "Check your mailbox" in html and "Pages &amp; &lt;Forms&gt;" in html and "/registrations/" not in html
    [welcome, _order] = recording.sent
    [link] = [w for w in welcome.text.split() if "/registrations/" in w]
    page = client.http.get(link.removeprefix("https://wod.example")).body.decode()
    assert "Status: <strong>Pending</strong>" in page
    assert "page-1" in page  # the student account


def test_form_errors_are_shown_per_field_and_values_kept_escaped(client, tables, workshops):
    response = submit(client, "WKSHP-PAGE", FORM | {"email": "nope", "company": '"><img src=x>', "accept_terms": ""})
    html = response.body.decode()
    assert response.status_code == 422
    assert 'id="email-error"' in html and 'id="accept_terms-error"' in html and 'id="company-error"' in html
    assert 'value="nope"' in html
    assert "<img src=x>" not in html and "&#34;&gt;&lt;img src=x&gt;" in html
    assert tables.customers.count() == 0


def test_a_second_registration_with_the_same_email_shows_the_same_page(client, workshops, tables):
    first = submit(client, "WKSHP-PAGE", FORM)
    again = submit(client, "WKSHP-PAGE", FORM | {"email": "GRACE@example.com", "company": "Elsewhere"})
    assert (first.status_code, first.body) == (again.status_code, again.body)
    assert tables.customers.count() == 1


def test_full_workshop_offers_the_waitlist_and_shows_the_position(client, workshops, platform):
    submit(client, "WKSHP-FULL", FORM | {"email": "first@example.com"})
    assert "Join the waitlist" in client.http.get("/workshops/WKSHP-FULL").body.decode()
    submit(client, "WKSHP-FULL", FORM)
    page = client.http.get(status_location(platform, FORM["email"])).body.decode()
    assert "Waitlist position" in page and '<dd class="position">1</dd>' in page
    assert 'http-equiv="refresh"' in page


def test_unknown_pages_are_friendly_404s(client, workshops):
    for path in ("/workshops/WKSHP-NOPE", "/workshops/%3Cscript%3E", "/registrations/doesnotexistatall123"):
        response = client.http.get(path)
        assert response.status_code == 404, path
        assert "Not found" in response.body.decode()
        assert "<script>" not in response.body.decode()


def test_stylesheet_is_served(client):
    response = client.http.get("/static/style.css")
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/css")


def status_location(platform, email: str) -> str:
    """The status page's path of an address's registration (the form's answer names none)."""
    return f"/registrations/{links.action_token(platform, registered(platform, email)['id'])}"


def progress(platform, location: str, step: str) -> None:
    """The provisioning step of the registration whose status page is at ``location``."""
    registration_id = location.rsplit("/", 1)[1].split(".")[0]
    assert commit(platform, platform.stores.registrations.get(registration_id), PROGRESS, reason=step)


def register_through_the_form(client, platform) -> str:
    """Register through the form; the status page's path."""
    assert submit(client, "WKSHP-PAGE", FORM).status_code == 200
    return status_location(platform, FORM["email"])


def test_status_page_shows_the_provisioning_step(client, workshops, platform):
    location = register_through_the_form(client, platform)
    assert 'aria-current="step">Waiting for the backend' in client.http.get(location).body.decode()
    progress(platform, location, "starting_server")
    page = client.http.get(location).body.decode()
    assert "Status: <strong>Provisioning</strong>" in page
    assert '<li class="done">Creating your account' in page
    assert 'aria-current="step">Starting your server' in page


def test_running_workshop_offers_extend_reset_end_without_javascript(client, workshops, platform):
    from datetime import timedelta

    location = register_through_the_form(client, platform)
    token = location.rsplit("/", 1)[1]
    registration_id = token.split(".")[0]
    commit(platform, platform.stores.registrations.get(registration_id), PROVISIONED, duration=timedelta(minutes=60))
    page = client.http.get(location).body.decode()
    for name in ("extend", "reset", "end"):
        assert f'action="/registrations/{token}/{name}"' in page
    assert 'id="countdown"' in page and '<script src="/static/status.js" defer>' in page
    response = client.http.post(f"{location}/extend", body="",
                                headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 303 and response.headers["Location"].endswith("?done=extend")
    assert "Your workshop was extended." in client.http.get(response.headers["Location"]).body.decode()
    assert client.http.get("/static/status.js").headers["Content-Type"].startswith("text/javascript")


def test_the_status_page_answers_304_while_nothing_changed_and_its_news_otherwise(client, workshops, platform):
    """Hundreds of open status pages look again every few seconds: a look that finds nothing new
    costs no rendering; any change the page would show gives a new validator."""
    location = register_through_the_form(client, platform)
    first = client.http.get(location)
    etag = first.headers["ETag"]
    assert first.status_code == 200 and etag.startswith('W/"') and "private" in first.headers["Cache-Control"]
    assert f'data-etag="{etag.replace(chr(34), "&#34;")}"' in first.body.decode()
    again = client.http.get(location, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.body == b"" and again.headers["ETag"] == etag
    progress(platform, location, "starting_server")
    changed = client.http.get(location, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    assert 'aria-current="step">Starting your server' in changed.body.decode()
    api = location.replace("/registrations/", "/api/registrations/")
    tag = client.http.get(api).headers["ETag"]
    assert client.http.get(api, headers={"If-None-Match": tag}).status_code == 304


def test_a_status_page_without_javascript_looks_again_less_often_while_nothing_changes(client, workshops, platform):
    import re

    location = register_through_the_form(client, platform)

    def refresh(path):
        page = client.http.get(path).body.decode()
        found = re.search(r'<noscript><meta http-equiv="refresh" content="(\d+);url=([^"]+)"></noscript>', page)
        assert found, page[:400]
        return int(found.group(1)), location + found.group(2).replace("&amp;", "&")

    waits = []
    path = location
    for _ in range(6):
        wait, path = refresh(path)
        waits.append(wait)
    assert waits == [5, 8, 11, 17, 25, 38]  # every 5 s while provisioning, 1.5 times slower each time
    progress(platform, location, "starting_server")
    assert refresh(path)[0] == 5  # news: quick again
    assert 'data-refresh="5"' in client.http.get(location).body.decode()  # what the script starts from


def test_the_catalog_answers_304_while_the_workshops_are_as_shown(client, workshops):
    etag = client.http.get("/").headers["ETag"]
    assert client.http.get("/", headers={"If-None-Match": etag}).status_code == 304


@pytest.mark.parametrize("looks", ["%C2%B2", "%D9%A3", "-1", "9" * 50, "1e9", "%00"])
def test_a_status_page_takes_any_count_of_looks_without_an_error(client, workshops, platform, looks):
    from urllib.parse import quote

    location = register_through_the_form(client, platform)
    etag = client.http.get(location).headers["ETag"]
    response = client.http.get(f"{location}?looks={looks}&seen={quote(etag)}")
    assert response.status_code == 200
    assert '<meta http-equiv="refresh" content="5;url=?looks=1&amp;' in response.body.decode()
