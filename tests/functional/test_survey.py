"""The after-workshop survey: one click from the thank-you mail, the rest on its page, one answer per
registration kept and editable for a week, every bad field named, results for the organiser
(dashboard, admin API, CSV, a webhook)."""
from __future__ import annotations

import csv
import io
import re
from html import unescape
from urllib.parse import urlsplit

import pytest

from chalicelib.adapters.workshop_folders import load_catalog
from chalicelib.services import links
from tests.admintools import activate, api, callback, participant, sign_in
from tests.factory import write_workshop

WORKSHOP = "WKSHP-SURVEY"
QUESTIONS = [{"id": "level", "text": "Your level before the workshop", "choices": ["New", "Some", "Expert"]},
             {"id": "next", "text": "What should the next workshop be about?"}]


@pytest.fixture
def finished(client, platform, sync, recording):
    """A participant whose workshop ran and finished (the thank-you mail sent)."""
    sync((WORKSHOP, {"seats": 2, "title": "Surveys & <more>", "survey": QUESTIONS}))
    created = participant(platform, WORKSHOP, "sam@example.com", first="Sam")
    activate(client, platform, created)
    api(client, platform, "POST", f"/api/admin/registrations/{created['id']}/end")
    callback(client, platform, {"registration": created["id"], "student": created["student"], "outcome": "cleaned",
                                "completion": 100})
    return created


def token(platform, created):
    return links.action_token(platform, created["id"])


def post(client, path, fields):
    body = "&".join(f"{k}={v}" for k, v in fields.items())
    return client.http.post(path, body=body.encode(),
                            headers={"Content-Type": "application/x-www-form-urlencoded"})


def stored(platform, created):
    return platform.stores.registrations.get(created["id"]).survey


def test_the_thank_you_mail_rates_in_one_click_and_the_page_asks_the_rest(client, platform, finished, recording):
    [thanks] = [e for e in recording.sent if e.subject.startswith("Thank you")]
    survey = f"/survey/{token(platform, finished)}"
    assert f"{survey}\n" in thanks.text or f"{survey} " in thanks.text  # the text part: the page
    rating_links = re.findall(r'href="([^"]+\?rating=\d)"', thanks.html)
    assert [urlsplit(unescape(u)).query for u in rating_links] == [f"rating={n}" for n in range(1, 6)]
    assert all(urlsplit(unescape(u)).path == survey for u in rating_links)

    page = client.http.get(f"{survey}?rating=4")  # the mail's "4": chosen, sent by the page's script
    html = page.body.decode()
    assert page.status_code == 200
    assert re.search(r'name="rating" value="4" checked', html)
    assert 'data-autosend="rating"' in html and '<script src="/static/page.js"' in html
    assert stored(platform, finished) is None  # a GET (a mail scanner's too) records nothing
    assert "Your level before the workshop" in html and "What should the next workshop be about?" in html
    assert "How was Surveys &amp; &lt;more&gt;?" in html

    assert "your answer is saved" not in client.http.get(f"{survey}?saved=1").body.decode()  # nothing saved yet
    sent = post(client, survey, {"rating": "4"})
    assert sent.status_code == 303 and sent.headers["Location"] == f"{survey}?saved=1"
    assert stored(platform, finished) == {"rating": 4}
    again = client.http.get(f"{survey}?saved=1").body.decode()
    assert "your answer is saved" in again and "data-autosend" not in again
    # a later click on another of the mail's buttons (or Back) shows that rating, sends nothing by itself
    later = client.http.get(f"{survey}?rating=2").body.decode()
    assert re.search(r'name="rating" value="2" checked', later) and "data-autosend" not in later
    assert stored(platform, finished) == {"rating": 4}
    status = client.http.get(f"/registrations/{token(platform, finished)}").body.decode()
    assert "Change your answer to the survey" in status


def test_the_whole_answer_is_kept_escaped_and_replaced_by_a_second_one(client, platform, finished):
    survey = f"/survey/{token(platform, finished)}"
    comment = "Great%21+%3Cscript%3Ealert(1)%3C%2Fscript%3E"
    assert post(client, survey, {"rating": "5", "pace": "fast", "recommend": "yes", "comment": comment,
                                 "q_level": "Some", "q_next": "Pandas"}).status_code == 303
    assert stored(platform, finished) == {"rating": 5, "pace": "fast", "recommend": "yes",
                                          "comment": "Great! <script>alert(1)</script>",
                                          "extra": {"level": "Some", "next": "Pandas"}}
    html = client.http.get(survey).body.decode()
    assert "Great! &lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert" not in html
    assert re.search(r'name="q_level" value="Some" checked', html)

    assert post(client, survey, {"rating": "3", "pace": "right"}).status_code == 303  # changed: replaced
    assert stored(platform, finished) == {"rating": 3, "pace": "right"}


@pytest.mark.parametrize(("fields", "named"), [
    ({}, {"rating"}),
    ({"rating": "6"}, {"rating"}),
    ({"rating": "%C2%B3"}, {"rating"}),  # a superscript digit
    ({"rating": "4", "pace": "warp"}, {"pace"}),
    ({"rating": "4", "recommend": "maybe"}, {"recommend"}),
    ({"rating": "4", "comment": "x" * 1001}, {"comment"}),
    ({"rating": "4", "comment": "bell%07"}, {"comment"}),
    ({"rating": "4", "comment": "evil%E2%80%AEtxt"}, {"comment"}),  # a right-to-left override
    ({"rating": "4", "q_level": "Guru"}, {"q_level"}),
    ({"rating": "4", "q_next": "y" * 301}, {"q_next"}),
    ({"rating": "0", "pace": "x", "recommend": "x"}, {"rating", "pace", "recommend"}),
])
def test_a_bad_answer_names_each_field_and_keeps_nothing(client, platform, finished, fields, named):
    response = post(client, f"/survey/{token(platform, finished)}", fields)
    html = response.body.decode()
    assert response.status_code == 422
    assert set(re.findall(r'<p class="error" id="([a-z_]+)-error">', html)) == named
    for field in named:
        assert f'aria-describedby="{field}-error"' in html
    assert stored(platform, finished) is None


def test_the_survey_opens_at_the_end_and_closes_a_week_later(client, platform, sync, finished, clock):
    running = participant(platform, WORKSHOP, "run@example.com")
    activate(client, platform, running)
    early = post(client, f"/survey/{token(platform, running)}", {"rating": "5"})
    assert early.status_code == 409 and "opens when your workshop has finished" in early.body.decode()
    assert "The survey opens when your workshop has finished." in client.http.get(
        f"/survey/{token(platform, running)}").body.decode()

    survey = f"/survey/{token(platform, finished)}"
    clock.advance(days=6, hours=23)
    assert post(client, survey, {"rating": "2"}).status_code == 303
    clock.advance(hours=1)
    late = post(client, survey, {"rating": "5"})
    assert late.status_code in (404, 409)  # closed (or the link itself expired with it)
    assert stored(platform, finished) == {"rating": 2}


def test_a_registration_that_never_ran_has_no_survey(client, platform, sync, finished):
    purged = participant(platform, WORKSHOP, "gone@example.com")
    activate(client, platform, purged)
    assert api(client, platform, "POST", f"/api/admin/students/{purged['student']}/purge")[0] == 200
    assert platform.stores.registrations.get(purged["id"]).status == "failed"
    refused = post(client, f"/survey/{token(platform, purged)}", {"rating": "5"})
    assert refused.status_code == 409 and "did not run a workshop" in refused.body.decode()


def test_a_link_that_is_not_ours_opens_no_survey(client, platform, finished):
    assert client.http.get(f"/survey/{finished['id']}").status_code == 404  # the bare public id
    forged = f"/survey/{finished['id']}.{'A' * 32}"
    assert post(client, forged, {"rating": "5"}).status_code == 404
    assert stored(platform, finished) is None
    assert links.page_url(platform, finished["id"], "survey") == \
        f"https://wod.example/survey/{links.action_token(platform, finished['id'])}"
    for page in ("", "survey/../admin", "survey?x=1", "//evil.example"):  # a link is to one of our pages
        with pytest.raises(ValueError):
            links.page_url(platform, finished["id"], page)


def test_the_organiser_sees_the_answers_and_a_hook_hears_of_them(client, platform, finished, recording):
    status, hook = api(client, platform, "POST", "/api/admin/webhooks",
                       {"url": "http://127.0.0.1:9/hook", "events": ["survey"]})
    assert status == 201, hook
    second = participant(platform, WORKSHOP, "kim@example.com", first="Kim")
    activate(client, platform, second)
    api(client, platform, "POST", f"/api/admin/registrations/{second['id']}/end")
    callback(client, platform, {"registration": second["id"], "student": second["student"], "outcome": "cleaned",
                                "completion": 50})
    post(client, f"/survey/{token(platform, finished)}", {"rating": "5", "pace": "right", "recommend": "yes",
                                                         "comment": "Loved+it+%3Cb%3E"})
    post(client, f"/survey/{token(platform, second)}", {"rating": "2", "pace": "fast", "recommend": "no"})

    status, detail = api(client, platform, "GET", f"/api/admin/webhooks/{hook['id']}")
    assert [d["event"] for d in detail["deliveries"]] == ["survey", "survey"]

    status, stats = api(client, platform, "GET", "/api/admin/stats")
    [row] = stats["survey"]
    assert (row["workshop"], row["answers"], row["rating"], row["recommend"]) == (WORKSHOP, 2, 3.5, 50)
    assert row["pace"] == {"slow": 0, "right": 1, "fast": 1} and row["comments"] == ["Loved it <b>"]

    overview = client.http.get("/admin", headers={"Cookie": sign_in(client, platform)}).body.decode()
    table = overview.split('id="survey-title"', 1)[1]
    assert re.search(rf'<tr id="survey-{WORKSHOP}">\s*<th scope="row">Surveys &amp; &lt;more&gt;</th>\s*'
                     r"<td>2</td>\s*<td>3.5</td>\s*<td>0 / 1 / 0 / 0 / 1</td>\s*<td>0 / 1 / 1</td>\s*<td>50%</td>",
                     table), table[:2000]
    assert "<li>Loved it &lt;b&gt;</li>" in table

    status, found = api(client, platform, "GET", f"/api/admin/registrations?q={finished['id']}")
    [record] = found["registrations"]
    assert (record["survey_rating"], record["survey_pace"], record["survey_recommend"]) == (5, "right", "yes")
    status, body = api(client, platform, "GET", "/api/admin/registrations.csv")
    rows = {r["email"]: r for r in csv.DictReader(io.StringIO(body.decode().lstrip("\ufeff")))}
    assert (rows["kim@example.com"]["survey_rating"], rows["kim@example.com"]["survey_pace"]) == ("2", "fast")
    assert rows["sam@example.com"]["survey_comment"] == "Loved it <b>" and rows["sam@example.com"]["survey_at"]


@pytest.mark.parametrize(("survey", "said"), [
    ([{"id": "a", "text": "One?"}, {"id": "a", "text": "Two?"}], "survey question ids must differ"),
    ([{"id": "a", "text": "Pick", "choices": ["only"]}], "survey"),
    ([{"id": "Bad Id", "text": "?"}], "survey"),
    ([{"id": f"q{n}", "text": "?"} for n in range(6)], "survey"),
])
def test_a_workshop_folder_with_a_bad_survey_question_is_named(tmp_path, platform, survey, said):
    write_workshop(tmp_path / "workshops", WORKSHOP, survey=survey)
    loaded, problems = load_catalog(tmp_path / "workshops", platform.settings.locations.keys())
    assert loaded == [] and problems
    assert any(said in str(problem) for problem in problems), problems
