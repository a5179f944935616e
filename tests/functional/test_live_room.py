"""The live room: notebook events relayed by the hub (signed, never replayed, only for a running
registration), the room's rows, a raised hand, the facilitator's message and extend-all."""
from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from urllib.parse import urlsplit

import pytest

from chalicelib.adapters.workshop_folders import load_catalog
from chalicelib.services import links
from chalicelib.services.catalog import sync_workshop
from tests.admintools import FORM, activate, csrf_of, form_post, participant, sign_in
from tests.factory import write_checks, write_workshop

WORKSHOP = "WKSHP-LIVE"
_seq = [int(time.time() * 1_000_000)]


def batch(student: str, events: list, seq: int | None = None, issued_at: int | None = None) -> dict:
    if seq is None:
        _seq[0] += 1000  # the relay numbers batches by its clock, in microseconds
        seq = _seq[0]
    return {"student": student, "seq": seq, "issued_at": issued_at or int(time.time()), "events": events}


def send(client, key: bytes, data: dict, signature: str | None = None):
    """POST a batch as the hub relays it (wod_events.py): HMAC-SHA256 of the body with the hub's token."""
    body = json.dumps(data).encode()
    sig = signature if signature is not None else "v1=" + hmac.new(key, body, hashlib.sha256).hexdigest()
    response = client.http.post("/api/events", body=body,
                                headers={"Content-Type": "application/json", "X-WOD-Signature": sig})
    return response.status_code, json.loads(response.body)


def event(kind: str, **fields) -> dict:
    return {"kind": kind, "at": time.time(), "notebook": "1-Exercises.ipynb", **fields}


@pytest.fixture
def room(client, platform, recording, tmp_path):
    """Two running participants and a free seat of a workshop with three checks; the dashboard signed in."""
    folder = write_workshop(tmp_path / "workshops", WORKSHOP, seats=3, duration=60, badge=None)
    write_checks(folder, ["q1", "q2", "q3"])
    [workshop], problems = load_catalog(tmp_path / "workshops", platform.settings.locations.keys())
    assert problems == [] and workshop.checks == 3
    sync_workshop(platform, workshop)
    people = []
    for email in ("ada@example.com", "bo@example.com"):
        created = participant(platform, WORKSHOP, email, first=email.split("@")[0].capitalize())
        activate(client, platform, created)
        people.append(created)
    cookie = sign_in(client, platform)
    return {"people": people, "cookie": cookie, "key": platform.key("events_key")}


def data(client, cookie: str) -> dict:
    response = client.http.get(f"/admin/live/{WORKSHOP}/data", headers={"Cookie": cookie})
    assert response.status_code == 200, response.body
    return json.loads(response.body)


def row_of(room_data: dict, student: str) -> dict:
    return next(r for r in room_data["rows"] if r["student"] == student)


def fresh(client, cookie):
    from chalicelib.services import live
    live.forget(WORKSHOP)
    return data(client, cookie)


def test_a_kernel_cannot_make_up_more_checks_than_the_workshop_has(client, platform, room):
    ada = room["people"][0]["student"]
    made_up = [event("check", check=f"fake-{n}", passed=True) for n in range(8)]
    assert send(client, room["key"], batch(ada, made_up))[0] == 200
    row = row_of(fresh(client, room["cookie"]), ada)
    assert (row["checks_passed"], row["checks_total"]) == (3, 3)
    assert len(platform.stores.seats.get_student(ada).live["checks"]) == 3  # the first three names only


def test_a_batch_moves_the_participant_in_the_room(client, platform, room):
    ada = room["people"][0]["student"]
    status, answer = send(client, room["key"], batch(ada, [
        event("opened"), event("executed", cell=2, cells=9),
        event("check", check="q1", passed=False), event("check", check="q1", passed=True)]))
    assert (status, answer["taken"]) == (200, 4), answer
    row = row_of(fresh(client, room["cookie"]), ada)
    assert row["name"].startswith("Ada") and row["status"] == "active" and row["server"] == "running"
    assert (row["notebook"], row["step"], row["steps"]) == ("1-Exercises.ipynb", 3, 9)
    assert row["checks_passed"] == 1 and row["last_check"] == {"id": "q1", "passed": True}
    assert row["stuck"] is None and row["hand"] is None
    stored = platform.stores.seats.get_student(ada)
    assert stored.live["registration"] == room["people"][0]["id"]


def test_a_forged_replayed_or_misdirected_batch_is_refused_and_changes_nothing(client, platform, room):
    ada = room["people"][0]["student"]
    good = batch(ada, [event("executed", cell=0, cells=3)])
    assert send(client, room["key"], good)[0] == 200
    before = platform.stores.seats.get_student(ada).live
    # signed with another key, unsigned, or the signed body altered
    assert send(client, b"x" * 32, batch(ada, [event("hand")]))[0] == 403
    assert send(client, room["key"], batch(ada, [event("hand")]), signature="")[0] == 403
    status, answer = send(client, room["key"], good)  # the same batch again
    assert status == 409 and "already taken" in answer["message"], answer
    older = batch(ada, [event("hand")], seq=good["seq"] - 1)
    assert send(client, room["key"], older)[0] == 409
    stale = batch(ada, [event("hand")], issued_at=int(time.time()) - 3600)
    assert send(client, room["key"], stale)[0] == 403
    assert send(client, room["key"], batch("nobody-9", [event("hand")]))[0] == 403  # an unknown student
    free = next(r["student"] for r in fresh(client, room["cookie"])["rows"] if r["status"] == "free")
    assert send(client, room["key"], batch(free, [event("hand")]))[0] == 409  # no running registration
    assert platform.stores.seats.get_student(ada).live.get("hand") is None
    assert platform.stores.seats.get_student(ada).live["events"] >= before["events"]


@pytest.mark.parametrize("events, field", [
    ([], "events"), ([{"kind": "dance", "at": 1}], "events[0]"), ([{"kind": "check", "at": 1}], "events[0]"),
    ([{"kind": "executed", "at": "now", "cell": 1}], "events[0]"),
    ([{"kind": "executed", "at": 1, "cell": -1}], "events[0]"),
    ([{"kind": "opened", "at": 1, "notebook": "x" * 500}], "events[0]"), ([event("hand")] * 51, "events"),
])
def test_a_malformed_batch_names_what_is_wrong(client, platform, room, events, field):
    status, answer = send(client, room["key"], batch(room["people"][0]["student"], events))
    assert status == 422 and field in answer["fields"], answer


def test_stuck_and_hands_come_first_and_a_finished_registration_takes_no_events(client, platform, room, clock):
    ada, bo = (p["student"] for p in room["people"])
    for _ in range(3):
        assert send(client, room["key"], batch(bo, [event("check", check="q2", passed=False)]))[0] == 200
    assert send(client, room["key"], batch(ada, [event("hand")]))[0] == 200
    rows = fresh(client, room["cookie"])
    assert [r["student"] for r in rows["rows"][:2]] == [ada, bo]
    assert rows["counts"] == {"seats": 3, "running": 2, "hands": 1, "stuck": 1}
    assert row_of(rows, bo)["stuck"] == "check q2 failed 3 times in a row"
    assert send(client, room["key"], batch(bo, [event("check", check="q2", passed=True)]))[0] == 200
    assert row_of(fresh(client, room["cookie"]), bo)["stuck"] is None
    clock.advance(minutes=11)
    assert row_of(fresh(client, room["cookie"]), bo)["stuck"] == "no progress for 11 min"
    token = links.action_token(platform, room["people"][1]["id"])
    assert client.http.post(f"/api/registrations/{token}/end", headers={"Content-Type": "application/json"},
                            body="{}").status_code == 200
    assert send(client, room["key"], batch(bo, [event("executed", cell=1)]))[0] == 409


def test_a_hand_from_the_status_page_is_answered_from_the_room(client, platform, room):
    reg = room["people"][1]
    status_path = urlsplit(reg["status_url"]).path
    page = client.http.get(status_path)
    assert b"Ask for help" in page.body
    asked = client.http.post(f"{status_path}/hand", headers=FORM, body="")
    assert asked.status_code == 303
    assert b"Your hand is up" in client.http.get(asked.headers["Location"]).body
    room_page = client.http.get(f"/admin/live/{WORKSHOP}", headers={"Cookie": room["cookie"]})
    assert room_page.status_code == 200 and b"Hand up since" in room_page.body
    answered = form_post(client, room["cookie"], f"/admin/live/{WORKSHOP}/hands/{reg['id']}",
                         {"csrf": csrf_of(room_page.body), "back": f"/admin/live/{WORKSHOP}"})
    assert answered.status_code == 303
    assert row_of(data(client, room["cookie"]), reg["student"])["hand"] is None
    again = form_post(client, room["cookie"], f"/admin/live/{WORKSHOP}/hands/{reg['id']}",
                      {"csrf": csrf_of(room_page.body), "back": f"/admin/live/{WORKSHOP}"})
    assert "flash=" in again.headers["Location"]  # "no hand raised", said on the room


def test_the_facilitators_message_reaches_status_pages_escaped_and_extend_all_extends_the_running(
        client, platform, room):
    room_page = client.http.get(f"/admin/live/{WORKSHOP}", headers={"Cookie": room["cookie"]})
    csrf = csrf_of(room_page.body)
    said = form_post(client, room["cookie"], f"/admin/live/{WORKSHOP}/message",
                     {"csrf": csrf, "message": "Break until <b>10:30</b>", "back": f"/admin/live/{WORKSHOP}"})
    assert said.status_code == 303
    status_path = urlsplit(room["people"][0]["status_url"]).path
    body = client.http.get(status_path).body.decode()
    assert "Break until &lt;b&gt;10:30&lt;/b&gt;" in body and "<b>10:30" not in body
    too_long = form_post(client, room["cookie"], f"/admin/live/{WORKSHOP}/message",
                         {"csrf": csrf, "message": "x" * 281, "back": f"/admin/live/{WORKSHOP}"})
    assert "flash=" in too_long.headers["Location"]
    before = {r["student"]: r["ends_at"] for r in fresh(client, room["cookie"])["rows"]}
    extend_form = {"csrf": csrf, "minutes": "15", "back": f"/admin/live/{WORKSHOP}",
                   "round": re.search(r'name="round" value="([^"]*)"', room_page.body.decode()).group(1)}
    bad = form_post(client, room["cookie"], f"/admin/live/{WORKSHOP}/extend", dict(extend_form, minutes="many"))
    assert "flash=" in bad.headers["Location"]  # refused before anything: the round is still the page's
    extended = form_post(client, room["cookie"], f"/admin/live/{WORKSHOP}/extend", extend_form)
    assert extended.status_code == 303
    after = {r["student"]: r["ends_at"] for r in fresh(client, room["cookie"])["rows"]}
    running = [p["student"] for p in room["people"]]
    assert all(after[s] > before[s] for s in running), (before, after)
    # the same form sent again (a double click, a resent POST) extends nothing and says so
    twice = form_post(client, room["cookie"], f"/admin/live/{WORKSHOP}/extend", extend_form)
    shown = client.http.get(twice.headers["Location"], headers={"Cookie": room["cookie"]}).body.decode()
    assert "already extended from this page" in shown
    assert {r["student"]: r["ends_at"] for r in fresh(client, room["cookie"])["rows"]} == after
    reloaded = client.http.get(f"/admin/live/{WORKSHOP}", headers={"Cookie": room["cookie"]}).body.decode()
    assert re.search(r'name="round" value="([^"]*)"', reloaded).group(1) != extend_form["round"]


def test_the_room_needs_a_signed_in_organiser(client, platform, room):
    assert client.http.get(f"/admin/live/{WORKSHOP}/data").status_code == 401
    assert client.http.get(f"/admin/live/{WORKSHOP}").status_code == 401
    assert client.http.get("/admin/live/WKSHP-NONE/data", headers={"Cookie": room["cookie"]}).status_code == 404


def test_a_kernels_resent_events_count_once_and_an_answered_hand_stays_down(client, platform, room, clock):
    ada, reg = room["people"][0]["student"], room["people"][0]["id"]
    failed_twice = [event("check", check="q3", passed=False), event("check", check="q3", passed=False),
                    event("hand")]
    first = dict(batch(ada, failed_twice), source="kernel-a")
    assert send(client, room["key"], first)[0] == 200
    page = client.http.get(f"/admin/live/{WORKSHOP}", headers={"Cookie": room["cookie"]})
    assert form_post(client, room["cookie"], f"/admin/live/{WORKSHOP}/hands/{reg}",
                     {"csrf": csrf_of(page.body), "back": f"/admin/live/{WORKSHOP}"}).status_code == 303
    # the relay timed out and the kernel sent the same events again, in a new batch
    again = dict(batch(ada, failed_twice), source="kernel-a")
    assert send(client, room["key"], again)[0] == 200
    state = platform.stores.seats.get_student(ada).live
    assert state["fails"] == {"q3": 2} and state["hand"] is None
    # another kernel's events are its own; a hand raised after the answer is a new one
    clock.advance(minutes=1)
    assert send(client, room["key"], dict(batch(ada, [event("hand")]), source="kernel-b"))[0] == 200
    assert platform.stores.seats.get_student(ada).live["hand"] is not None
    assert send(client, room["key"], dict(batch(ada, [event("hand")]), source="bad source!"))[0] == 422


def test_check_webhooks_tell_only_results_that_changed(client, platform, room):
    from chalicelib.services import webhooks
    hook = webhooks.create(platform, "Grace Hopper", {"url": "http://127.0.0.1:9/hook", "events": ["check"]})
    webhooks._subscriptions.clear()
    ada = room["people"][0]["student"]
    for passed in (False, False, True, True):
        assert send(client, room["key"], batch(ada, [event("check", check="q1", passed=passed)]))[0] == 200
    told = [json.loads(d.body)["check"]["passed"] for d in platform.stores.webhooks.deliveries(hook["id"], 10)]
    assert sorted(told) == [False, True], told


def test_extend_all_that_runs_out_of_time_says_how_many_are_left(client, platform, room, monkeypatch):
    from chalicelib.services import audit, organiser
    monkeypatch.setattr(organiser, "EXTEND_ALL_SECONDS", -1.0)
    page = client.http.get(f"/admin/live/{WORKSHOP}", headers={"Cookie": room["cookie"]})
    answer = form_post(client, room["cookie"], f"/admin/live/{WORKSHOP}/extend",
                       {"csrf": csrf_of(page.body), "minutes": "10", "back": f"/admin/live/{WORKSHOP}"})
    shown = client.http.get(answer.headers["Location"], headers={"Cookie": room["cookie"]}).body.decode()
    assert "0 running workshops extended; 2 not reached in time" in shown
    entry = audit.entries(platform, "1")[0]
    assert (entry["action"], entry["outcome"], entry["detail"]["left"]) == ("workshop.extend_all", "done", 2)


class Hub:
    """What the hub says of students' servers (the live room asks about quiet participants)."""

    def __init__(self, states: dict[str, str] | None = None, down: bool = False):
        self.states, self.down, self.asked = dict(states or {}), down, []

    def server_state(self, name: str) -> str:
        from chalicelib.adapters.hub import HubUnavailable
        self.asked.append(name)
        if self.down:
            raise HubUnavailable("JupyterHub did not answer")
        return self.states.get(name, "ready")


def test_a_quiet_participant_whose_server_the_hub_stopped_shows_as_stopped(client, platform, room, clock):
    from chalicelib.services import live
    ada, bo = (p["student"] for p in room["people"])
    for student in (ada, bo):
        assert send(client, room["key"], batch(student, [event("executed", cell=1)]))[0] == 200
    platform.hub = Hub({ada: "none"})
    rows = fresh(client, room["cookie"])
    assert {row_of(rows, s)["server"] for s in (ada, bo)} == {"running"} and platform.hub.asked == []
    clock.advance(minutes=6)  # quiet: the hub is asked, once per half minute
    live._servers.clear()
    rows = fresh(client, room["cookie"])
    assert (row_of(rows, ada)["server"], row_of(rows, bo)["server"]) == ("stopped", "idle")
    asked = len(platform.hub.asked)
    fresh(client, room["cookie"])
    assert len(platform.hub.asked) == asked  # cached
    live._servers.clear()
    platform.hub = Hub(down=True)  # a hub that does not answer: the rows say what the events say
    live._hub_quiet_until.clear()
    rows = fresh(client, room["cookie"])
    assert row_of(rows, ada)["server"] == "idle" and len(platform.hub.asked) == 1


def test_a_cell_run_outside_the_saved_notebook_is_activity_not_a_step(client, platform, room, clock):
    ada = room["people"][0]["student"]
    assert send(client, room["key"], batch(ada, [event("executed", cell=4, cells=9)]))[0] == 200
    clock.advance(minutes=3)
    assert send(client, room["key"], batch(ada, [{"kind": "executed", "at": time.time()}]))[0] == 200
    row = row_of(fresh(client, room["cookie"]), ada)
    assert (row["step"], row["steps"]) == (5, 9) and row["last_activity"] == clock().isoformat()
