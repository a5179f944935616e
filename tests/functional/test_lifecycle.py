"""The run phase with a hand-moved clock: reminders, expiry, cleanup, waitlist, extend/reset/end."""
from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import nbformat
import pytest

from chalicelib.adapters.secrets import get_key
from chalicelib.adapters.workshop_folders import load_catalog
from chalicelib.domain.checks import earns_badge
from chalicelib.services import links, organiser, participant, registrations
from chalicelib.services import time_checks as lifecycle
from chalicelib.services.catalog import sync_workshop
from chalicelib.store.models import StudentModel, WorkshopModel
from tests.factory import signed_callback, write_checks, write_workshop

WORKSHOP = "WKSHP-LIFE"


def body(email):
    return {"workshop": WORKSHOP, "email": email, "first_name": "Mo", "last_name": "Li", "company": "Acme",
            "accept_terms": True}


def callback(client, platform, payload):
    data, headers = signed_callback(payload, get_key(platform.settings, "callback_key"))
    response = client.http.post("/api/callbacks/provision", body=data, headers=headers)
    assert response.status_code == 200, response.body
    return json.loads(response.body)


def action(client, platform, registration_id, name):
    token = links.action_token(platform, registration_id)
    response = client.http.post(f"/api/registrations/{token}/{name}",
                                headers={"Content-Type": "application/json"}, body="{}")
    return response.status_code, json.loads(response.body)


def subjects(recording, start=0):
    return [e.subject for e in recording.sent[start:]]


@pytest.fixture
def active(client, platform, sync, recording):
    """One participant provisioned and active in a 2-hour workshop with a single seat."""
    sync((WORKSHOP, {"seats": 1, "duration": 120, "badge": None}))
    created = registrations.register(platform, body("mo@example.com"))
    callback(client, platform, {"registration": created["id"], "student": created["student"], "outcome": "ready",
                                "password": "Pw123456789x", "hub_url": "http://hub"})
    return created


def test_reminder_once_then_expiry_orders_cleanup_and_locks_the_student(client, platform, tables, active, recording,
                                                                        clock):
    start = len(recording.sent)
    clock.advance(minutes=59)
    assert lifecycle.tick(platform)["reminders"] == 0
    clock.advance(minutes=1)
    assert lifecycle.tick(platform)["reminders"] == 1
    assert lifecycle.tick(platform)["reminders"] == 0  # a second tick sends nothing again
    assert subjects(recording, start) == [f"One hour left: Workshop {WORKSHOP}"]
    assert "#actions" in recording.sent[-1].text

    clock.advance(minutes=60)
    counts = lifecycle.tick(platform)
    assert counts["expired"] == 1
    reg = tables.customers.get(active["id"])
    assert reg.status == "expiring"
    student = tables.students.get(active["student"])
    assert (student.status, student.expires_at) == ("cleaning", clock())
    assert subjects(recording)[-1] == f"CLEANUP {WORKSHOP} {active['student']}"
    assert lifecycle.tick(platform)["expired"] == 0


def test_cleaned_frees_the_seat_thanks_and_promotes_the_waitlist(client, platform, active, recording, clock, tables):
    waiting = registrations.register(platform, body("wait@example.com"))
    assert waiting["status"] == "waitlisted"
    assert action(client, platform, active["id"], "end")[0] == 200
    assert action(client, platform, active["id"], "end")[0] == 200  # twice: one cleanup
    assert subjects(recording).count(f"CLEANUP {WORKSHOP} {active['student']}") == 1

    callback(client, platform, {"registration": active["id"], "student": active["student"], "outcome": "cleaned",
                                "completion": 62.5})
    reg = tables.customers.get(active["id"])
    assert (reg.status, reg.completion) == ("finished", 62.5)
    assert tables.emails.count("mo@example.com") == 0
    thanks = [e for e in recording.sent if e.subject.startswith("Thank you")][0]
    assert "63%" in thanks.text or "62%" in thanks.text
    promoted = tables.customers.get(waiting["id"])
    assert (promoted.status, promoted.student_id) == ("pending", active["student"])
    assert tables.students.get(active["student"]).registration_id == waiting["id"]
    assert tables.workshops.get(WORKSHOP).seats_free == 0
    assert subjects(recording)[-2:] == [f"A seat is yours: Workshop {WORKSHOP}",
                                        f"CREATE {WORKSHOP} {active['student']}"]
    again = callback(client, platform, {"registration": active["id"], "student": active["student"],
                                        "outcome": "cleaned", "completion": 10})
    assert again["status"] == "finished" and tables.customers.get(active["id"]).completion == 62.5


def test_extend_until_the_limit_and_not_while_people_wait(client, platform, active, clock, tables):
    before = tables.customers.get(active["id"]).ends_at
    status, view = action(client, platform, active["id"], "extend")
    assert status == 200 and view["extensions_used"] == 1
    assert tables.customers.get(active["id"]).ends_at == before + timedelta(minutes=30)
    assert tables.students.get(active["student"]).expires_at == before + timedelta(minutes=30)
    assert action(client, platform, active["id"], "extend")[0] == 200
    status, refused = action(client, platform, active["id"], "extend")
    assert status == 409 and "already used the 2 extension" in refused["message"]


def test_no_extension_while_the_waitlist_is_not_empty(client, platform, active):
    registrations.register(platform, body("queue@example.com"))
    status, refused = action(client, platform, active["id"], "extend")
    assert status == 409 and "waiting for a seat" in refused["message"]


def test_reset_twice_orders_two_fresh_copies_without_moving_the_clock(client, platform, active, recording, tables):
    ends = tables.customers.get(active["id"]).ends_at
    assert action(client, platform, active["id"], "reset")[0] == 200
    assert action(client, platform, active["id"], "reset")[0] == 200
    resets = [e for e in recording.sent if e.subject.startswith("RESET")]
    assert [json.loads(e.text)["attempt"] for e in resets] == [1, 2]
    assert tables.customers.get(active["id"]).ends_at == ends


def test_stuck_provisioning_fails_apologises_and_orders_cleanup(client, platform, sync, recording, clock, tables):
    sync((WORKSHOP, {"seats": 1}))
    created = registrations.register(platform, body("slow@example.com"))
    clock.advance(minutes=11)
    assert lifecycle.tick(platform)["stuck"] == 1
    assert tables.customers.get(created["id"]).status == "failed"
    assert subjects(recording)[-2:] == [f"CLEANUP {WORKSHOP} {created['student']}",
                                        f"We could not prepare your workshop: Workshop {WORKSHOP}"]
    callback(client, platform, {"registration": created["id"], "student": created["student"], "outcome": "cleaned",
                                "completion": None})
    assert tables.customers.get(created["id"]).status == "failed"
    assert tables.workshops.get(WORKSHOP).seats_free == 1
    assert not any(s.startswith("Thank you") for s in subjects(recording))


def test_cleanup_not_reported_in_time_is_ordered_again(client, platform, active, recording, clock):
    action(client, platform, active["id"], "end")
    clock.advance(minutes=6)
    assert lifecycle.tick(platform)["cleanup_retried"] == 1
    orders = [json.loads(e.text) for e in recording.sent if e.subject.startswith("CLEANUP")]
    assert [o["attempt"] for o in orders] == [0, 1]


def test_leaving_the_waitlist_moves_the_others_up(client, platform, active):
    first = registrations.register(platform, body("w1@example.com"))
    second = registrations.register(platform, body("w2@example.com"))
    assert participant.status(platform, second["id"])["position"] == 2
    assert action(client, platform, first["id"], "leave")[1]["status"] == "cancelled"
    assert participant.status(platform, second["id"])["position"] == 1
    assert registrations.register(platform, body("w1@example.com"))["status"] == "waitlisted"  # the email is free again


def test_actions_on_the_wrong_state_are_clear_409s(client, platform, active):
    assert action(client, platform, active["id"], "leave")[0] == 409
    assert action(client, platform, "A" * 24, "end")[0] == 404
    assert action(client, platform, active["id"], "explode")[0] == 404


def test_tick_reads_only_due_registrations(platform, active, clock):
    """The due index holds one entry per registration, keyed by when it is due."""
    assert platform.stores.registrations.due("active", clock()) == []
    clock.advance(minutes=61)
    assert platform.stores.registrations.due("active", clock()) == [active["id"]]


def test_third_finished_workshop_earns_the_level_badge(client, platform, sync, recording):
    sync(*[(f"WKSHP-L{n}", {"seats": 1}) for n in range(3)])
    for n in range(3):
        created = registrations.register(platform, body("lea@example.com") | {"workshop": f"WKSHP-L{n}"})
        callback(client, platform, {"registration": created["id"], "student": created["student"],
                                    "outcome": "ready", "password": "Pw123456789x", "hub_url": "http://hub"})
        action(client, platform, created["id"], "end")
        callback(client, platform, {"registration": created["id"], "student": created["student"],
                                    "outcome": "cleaned", "completion": 100})
    levels = [e for e in recording.sent if e.subject.startswith("Level")]
    assert [e.subject for e in levels] == ["Level 3 reached: 3 workshops completed"]
    assert "Level 3" in levels[0].html and levels[0].to == "lea@example.com"
    assert len([e for e in recording.sent if e.subject.startswith("Thank you")]) == 3


def test_level_badges_count_only_workshops_whose_checks_were_all_passed(client, platform, recording, tmp_path):
    root = tmp_path / "workshops"
    for n in range(4):
        folder = write_workshop(root, f"WKSHP-C{n}", seats=1)
        lab = nbformat.v4.new_notebook()
        cell = nbformat.v4.new_code_cell("assert answer == 42")
        cell.metadata["nbgrader"] = {"grade": True, "solution": False, "grade_id": "q1", "points": 1}
        lab.cells.append(cell)
        nbformat.write(lab, str(folder / "1-Lab.ipynb"))
    loaded, problems = load_catalog(root, platform.settings.locations.keys())
    assert problems == [] and all(w.checks == 1 for w in loaded)
    for workshop in loaded:
        sync_workshop(platform, workshop)
    # passed, failed, passed: two earned badges, no level; the fourth, passed, is the third earned
    for n, passed in enumerate((1, 0, 1, 1)):
        created = registrations.register(platform, body("lea@example.com") | {"workshop": f"WKSHP-C{n}"})
        callback(client, platform, {"registration": created["id"], "student": created["student"],
                                    "outcome": "ready", "password": "Pw123456789x", "hub_url": "http://hub"})
        action(client, platform, created["id"], "end")
        callback(client, platform, {"registration": created["id"], "student": created["student"],
                                    "outcome": "cleaned", "completion": 100.0 * passed, "checks_passed": passed})
        levels = [e.subject for e in recording.sent if e.subject.startswith("Level")]
        assert levels == ([] if n < 3 else ["Level 3 reached: 3 workshops completed"]), (n, levels)


def test_closed_registrations_expire_their_personal_data(client, platform, active, clock, tables):
    action(client, platform, active["id"], "end")
    callback(client, platform, {"registration": active["id"], "student": active["student"], "outcome": "cleaned",
                                "completion": 0})
    reg = tables.customers.get(active["id"])
    assert reg.ttl == int((clock() + timedelta(days=30)).timestamp())


def test_purge_frees_a_student_whatever_its_state(client, platform, active, recording, tables):
    from chalicelib.services import organiser as admin

    assert admin.purge_student(platform, active["student"]) == "purging"
    assert tables.customers.get(active["id"]).status == "failed"
    assert subjects(recording)[-2:] == [f"PURGE {WORKSHOP} {active['student']}",
                                        f"We could not prepare your workshop: Workshop {WORKSHOP}"]
    callback(client, platform, {"registration": active["id"], "student": active["student"], "outcome": "cleaned",
                                "completion": None})
    assert tables.students.get(active["student"]).status == "free"
    assert tables.workshops.get(WORKSHOP).seats_free == 1
    assert admin.purge_student(platform, active["student"]) == "free"


def test_purge_frees_an_orphaned_student(client, platform, sync, recording, tables):
    from chalicelib.services import organiser as admin

    sync((WORKSHOP, {"seats": 1}))
    student = tables.students.get("life-1")
    student.update(actions=[StudentModel.status.set("cleaning"), StudentModel.free_workshop.remove()])
    tables.workshops(WORKSHOP).update(actions=[WorkshopModel.seats_free.add(-1)])
    assert admin.purge_student(platform, "life-1") == "freed"
    assert (tables.students.get("life-1").status, tables.workshops.get(WORKSHOP).seats_free) == ("free", 1)
    assert subjects(recording)[-1] == f"PURGE {WORKSHOP} life-1"
    callback(client, platform, {"registration": "purge-life-1", "student": "life-1", "outcome": "cleaned",
                                "completion": None})


def test_a_finished_registration_shows_when_it_ended_and_its_completion(client, platform, active, clock):
    clock.advance(minutes=10)
    action(client, platform, active["id"], "end")
    callback(client, platform, {"registration": active["id"], "student": active["student"], "outcome": "cleaned",
                                "completion": 75})
    page = client.http.get(f"/registrations/{links.action_token(platform, active['id'])}?done=end").body.decode()
    assert "Status: <strong>Finished</strong>" in page
    assert "<dt>Ended</dt>" in page and "09:10 UTC" in page and "<dt>Ends</dt>" not in page
    assert "<dt>Completion</dt><dd>75%</dd>" in page
    assert "Your workshop is ending" not in page  # the notice is stale once it has ended


@pytest.mark.parametrize(("checks", "completion", "badge", "says"), [
    (2, 100, True, "You passed 100% of its 2 exercise checks."),
    (2, 50, False, "The badge goes to those who pass every check."),
    (0, 50, True, "this workshop has no checked exercises: it is for taking part"),
    (2, None, False, "Your exercises could not be measured this time, so no badge could be given."),
])
def test_the_badge_goes_to_those_who_pass_every_check(client, platform, recording, tmp_path, checks, completion,
                                                      badge, says):
    folder = write_workshop(tmp_path / "workshops", WORKSHOP, seats=1, badge="badge.svg")
    (folder / "badge.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    write_checks(folder, [f"check-{n}" for n in range(checks)])
    [workshop], problems = load_catalog(tmp_path / "workshops", platform.settings.locations.keys())
    assert problems == [] and workshop.checks == checks
    sync_workshop(platform, workshop)
    created = registrations.register(platform, body("badge@example.com"))
    callback(client, platform, {"registration": created["id"], "student": created["student"], "outcome": "ready",
                                "password": "Pw123456789x", "hub_url": "http://hub"})
    action(client, platform, created["id"], "end")
    passed = checks * completion // 100 if checks and completion is not None else None
    callback(client, platform, {"registration": created["id"], "student": created["student"], "outcome": "cleaned",
                                "completion": completion, "checks_passed": passed})
    [thanks] = [e for e in recording.sent if e.subject.startswith("Thank you")]
    assert says in thanks.text, thanks.text
    assert (f"/badges/{WORKSHOP}" in thanks.text) is badge
    finished = platform.stores.registrations.get(created["id"])
    assert (finished.completion, finished.checks_passed) == (completion, passed)
    [found] = organiser.search(platform, {"q": created["id"]})["registrations"]
    assert found["checks_passed"] == passed  # the admin API's search
    [row] = list(csv.DictReader(io.StringIO(organiser.export_csv(platform, "test", {}).lstrip("\ufeff"))))
    assert row["checks_passed"] == ("" if passed is None else str(passed))  # the CSV


def test_one_check_short_of_all_earns_no_badge_whatever_the_rounded_percentage():
    assert earns_badge(2000, 100.0, 1999) is False  # the rounded percentage would say 100
    assert earns_badge(2, None, None) is False
    # a workshop without checks: taking part, at least one of its cells run
    assert earns_badge(0, 12.5, None) is True and earns_badge(0, 0.0, None) is False
    assert earns_badge(0, None, None) is False


@pytest.mark.parametrize("passed", [-1, "2", True, 2.5, 10_001])
def test_a_cleanup_report_with_a_wrong_number_of_checks_is_refused_and_changes_nothing(client, platform, active,
                                                                                      passed):
    action(client, platform, active["id"], "end")
    data, headers = signed_callback({"registration": active["id"], "student": active["student"], "outcome": "cleaned",
                                     "completion": 50, "checks_passed": passed},
                                    get_key(platform.settings, "callback_key"))
    response = client.http.post("/api/callbacks/provision", body=data, headers=headers)
    assert response.status_code == 422 and "checks_passed" in response.body.decode()
    assert platform.stores.registrations.get(active["id"]).status != "finished"
