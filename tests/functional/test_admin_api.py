"""The admin JSON API: workshops, registrations and their actions, purge, audit."""
from __future__ import annotations

import csv
import io
import json
import time
from datetime import timedelta

import pytest

from chalicelib.domain.orders import SIGNATURE_HEADER, verify_order
from chalicelib.store.catalog import SyncReport
from tests.admintools import activate, api, bearer, callback, participant

WORKSHOP = "WKSHP-ADM"


@pytest.fixture
def workshop(sync, recording):
    sync((WORKSHOP, {"seats": 2, "duration": 120, "extension": {"minutes": 30, "max": 1}}))


@pytest.fixture
def active(client, platform, workshop):
    created = participant(platform, WORKSHOP, "mo@example.com")
    activate(client, platform, created)
    return created


def free_students(tables, workshop_id):
    return sorted(s.id for s in tables.students.workshop_index.query(workshop_id) if s.status == "free")


def latest_audit(client, platform):
    return api(client, platform, "GET", "/api/admin/audit")[1][0]


def test_workshops_show_taken_free_warm_and_waiting(client, platform, workshop, active):
    participant(platform, WORKSHOP, "two@example.com")
    participant(platform, WORKSHOP, "wait@example.com")
    status, listed = api(client, platform, "GET", "/api/admin/workshops")
    assert status == 200
    assert listed[0].items() >= {"id": WORKSHOP, "seats_total": 2, "seats_taken": 2, "seats_free": 0,
                                 "seats_warm": 0, "waitlist": 1, "overrides": {}}.items()


def test_closing_a_workshop_stops_registration_and_is_audited(client, platform, workshop):
    status, view = api(client, platform, "PATCH", f"/api/admin/workshops/{WORKSHOP}", {"active": False}, actor="Ops")
    assert status == 200 and view["active"] is False and view["overrides"] == {"active": False}
    assert client.http.get("/api/workshops").body == b"[]"
    entry = latest_audit(client, platform)
    assert entry.items() >= {"actor": "Ops", "action": "workshop.update", "target": WORKSHOP, "outcome": "done"}.items()
    assert entry["detail"]["before"]["active"] is True


def test_capacity_up_adds_free_seats_and_serves_the_waitlist(client, platform, tables, workshop, active):
    participant(platform, WORKSHOP, "two@example.com")
    waiting = participant(platform, WORKSHOP, "wait@example.com")
    status, view = api(client, platform, "PATCH", f"/api/admin/workshops/{WORKSHOP}", {"capacity": 4})
    assert status == 200 and view["seats_total"] == 4
    assert tables.customers.get(waiting["id"]).status == "pending"  # promoted at once
    workshop_item = tables.workshops.get(WORKSHOP)
    assert (workshop_item.seats_free, workshop_item.student_to) == (1, 4)
    assert len(free_students(tables, WORKSHOP)) == 1


def test_capacity_down_only_removes_free_seats(client, platform, tables, workshop, monkeypatch):
    api(client, platform, "PATCH", f"/api/admin/workshops/{WORKSHOP}", {"capacity": 5})
    monkeypatch.setattr("chalicelib.store.registrations.free_students", lambda t, w: ["adm-3"])  # otherwise random
    seated = participant(platform, WORKSHOP, "a@example.com")
    taken = int(seated["student"].rsplit("-", 1)[1])
    assert taken == 3
    status, refused = api(client, platform, "PATCH", f"/api/admin/workshops/{WORKSHOP}", {"capacity": taken - 1})
    assert status == 409 and "1 of the" in refused["message"] and f"down to {taken}" in refused["message"]
    assert tables.workshops.get(WORKSHOP).seats_total == 5 and len(free_students(tables, WORKSHOP)) == 4
    status, view = api(client, platform, "PATCH", f"/api/admin/workshops/{WORKSHOP}", {"capacity": taken})
    assert status == 200 and view["seats_total"] == taken
    assert len(free_students(tables, WORKSHOP)) == tables.workshops.get(WORKSHOP).seats_free == taken - 1
    assert latest_audit(client, platform)["detail"]["seats"]["removed"] == 5 - taken


def test_a_taken_seat_in_the_way_refuses_the_shrink_and_changes_nothing(client, platform, tables, workshop):
    first, second = participant(platform, WORKSHOP, "a@example.com"), participant(platform, WORKSHOP, "b@example.com")
    assert {first["student"], second["student"]} == {"adm-1", "adm-2"}
    status, refused = api(client, platform, "PATCH", f"/api/admin/workshops/{WORKSHOP}",
                          {"capacity": 1, "duration_minutes": 90})
    assert status == 409 and "1 of the 1 seats to remove are taken" in refused["message"]
    item = tables.workshops.get(WORKSHOP)
    assert (item.seats_total, item.duration_minutes, item.overrides) == (2, 120, None)
    assert latest_audit(client, platform)["outcome"] == "refused"


def test_a_sync_keeps_the_organisers_edits_until_handed_back(client, platform, tables, sync, workshop):
    api(client, platform, "PATCH", f"/api/admin/workshops/{WORKSHOP}",
        {"capacity": 3, "active": False, "duration_minutes": 45})
    report = sync((WORKSHOP, {"seats": 2, "duration": 120}))[0]
    assert "kept the organiser's active, capacity, duration_minutes" in report.line()
    item = tables.workshops.get(WORKSHOP)
    assert (item.seats_total, item.active, item.duration_minutes, item.student_to) == (3, False, 45, 3)
    assert len(free_students(tables, WORKSHOP)) == 3
    status, view = api(client, platform, "PATCH", f"/api/admin/workshops/{WORKSHOP}",
                       {"capacity": None, "active": None})
    # handed back: the current values stay (this side does not read the folder) until the next sync
    assert status == 200 and view["handed_back"] == ["active", "capacity"]
    assert (view["seats_total"], view["active"], view["overrides"]) == (3, False, {"duration_minutes": 45})
    sync((WORKSHOP, {"seats": 2, "duration": 120}))
    item = tables.workshops.get(WORKSHOP)
    assert (item.seats_total, item.active, item.duration_minutes, item.overrides) == (2, True, 45,
                                                                                      {"duration_minutes": 45})
    assert item.handed_back is None
    assert api(client, platform, "GET", "/api/admin/workshops")[1][0]["handed_back"] == []
    assert free_students(tables, WORKSHOP) == ["adm-1", "adm-2"]


@pytest.mark.parametrize("body, field", [
    ({"capacity": 0}, "capacity"), ({"capacity": 1001}, "capacity"), ({"capacity": True}, "capacity"),
    ({"duration_minutes": 5}, "duration_minutes"), ({"active": "no"}, "active"), ({"title": "x"}, "title"),
    ({}, "body"), ([1], "body"),
])
def test_invalid_workshop_edits_are_422_and_change_nothing(client, platform, tables, workshop, body, field):
    status, answer = api(client, platform, "PATCH", f"/api/admin/workshops/{WORKSHOP}", body)
    assert status == 422 and field in answer["fields"]
    assert tables.workshops.get(WORKSHOP).overrides is None


def test_unknown_workshop_is_404(client, platform, workshop):
    assert api(client, platform, "PATCH", "/api/admin/workshops/WKSHP-NOPE", {"active": False})[0] == 404
    assert api(client, platform, "PATCH", "/api/admin/workshops/nope", {"active": False})[0] == 404


def test_search_by_name_email_status_and_workshop(client, platform, workshop, active):
    participant(platform, WORKSHOP, "zoe@example.org", first="Zoë", last="Ñúñez")
    participant(platform, WORKSHOP, "wait@example.com", first="Wai", last="Ting")

    def ids(query):
        status, found = api(client, platform, "GET", f"/api/admin/registrations{query}")
        assert status == 200, found
        return [r["email"] for r in found["registrations"]]

    assert ids("?q=zo%C3%AB+%C3%B1%C3%BA%C3%B1ez") == ["zoe@example.org"]
    assert ids("?q=MO%40EXAMPLE") == ["mo@example.com"]
    assert ids("?status=waitlisted") == ["wait@example.com"]
    assert set(ids(f"?workshop={WORKSHOP}")) == {"mo@example.com", "zoe@example.org", "wait@example.com"}
    assert ids(f"?q={active['id']}") == ["mo@example.com"]
    status, bad = api(client, platform, "GET", "/api/admin/registrations?status=bogus&limit=0")
    assert status == 422 and set(bad["fields"]) == {"status", "limit"}


def test_registration_detail_lists_the_possible_actions(client, platform, workshop, active):
    status, detail = api(client, platform, "GET", f"/api/admin/registrations/{active['id']}")
    assert status == 200
    assert detail["actions"] == ["resend-credentials", "extend", "reset", "end", "purge"]
    assert "password" not in json.dumps(detail).lower()
    assert api(client, platform, "GET", "/api/admin/registrations/" + "x" * 24)[0] == 404


def test_admin_extends_past_the_limit_and_the_waitlist_without_using_the_participants(client, platform, tables,
                                                                                      active):
    participant(platform, WORKSHOP, "two@example.com")
    participant(platform, WORKSHOP, "wait@example.com")  # someone waits: a participant could not extend
    before = tables.customers.get(active["id"]).ends_at
    for _ in range(2):  # the workshop allows one extension; the organiser is not bound by it
        status, view = api(client, platform, "POST", f"/api/admin/registrations/{active['id']}/extend", {})
        assert status == 200
    status, view = api(client, platform, "POST", f"/api/admin/registrations/{active['id']}/extend", {"minutes": 15})
    assert status == 200 and view["extensions_used"] == 0
    reg = tables.customers.get(active["id"])
    assert reg.ends_at == before + timedelta(minutes=75)
    assert tables.students.get(active["student"]).expires_at == reg.ends_at
    entry = latest_audit(client, platform)
    assert entry["action"] == "registration.extend" and entry["detail"]["ends_after"] == reg.ends_at.isoformat()


def test_admin_extend_of_a_session_not_running_is_refused_and_audited(client, platform, workshop):
    waiting = participant(platform, WORKSHOP, "w@example.com")
    status, refused = api(client, platform, "POST", f"/api/admin/registrations/{waiting['id']}/extend", {})
    assert status == 409 and "Only a running workshop" in refused["message"]
    assert latest_audit(client, platform)["outcome"] == "refused"
    status, bad = api(client, platform, "POST", f"/api/admin/registrations/{waiting['id']}/extend", {"minutes": 1})
    assert status == 422 and "minutes" in bad["fields"]
    assert api(client, platform, "POST", f"/api/admin/registrations/{waiting['id']}/explode", {})[0] == 404


def test_resend_credentials_orders_a_password_only_reset(client, platform, tables, active, recording):
    ends = tables.customers.get(active["id"]).ends_at
    status, _ = api(client, platform, "POST", f"/api/admin/registrations/{active['id']}/resend-credentials")
    assert status == 200
    order_mail = [e for e in recording.sent if e.subject.startswith("RESET")][-1]
    order = verify_order(order_mail.text.encode(), order_mail.headers[SIGNATURE_HEADER],
                         platform.key("order_key"), time.time(), 60)
    assert (order.scope, order.attempt, order.registration) == ("password", 1, active["id"])
    assert tables.customers.get(active["id"]).ends_at == ends
    api(client, platform, "POST", f"/api/admin/registrations/{active['id']}/reset")
    reset = [e for e in recording.sent if e.subject.startswith("RESET")][-1]
    assert json.loads(reset.text)["attempt"] == 2 and "scope" not in json.loads(reset.text)


def test_end_from_the_admin_api_locks_the_student_and_orders_cleanup(client, platform, tables, active, recording):
    status, view = api(client, platform, "POST", f"/api/admin/registrations/{active['id']}/end")
    assert status == 200 and view["status"] == "expiring" and view["actions"] == ["purge"]
    assert tables.students.get(active["student"]).status == "cleaning"
    assert recording.sent[-1].subject == f"CLEANUP {WORKSHOP} {active['student']}"


def test_purge_fails_the_live_registration_and_is_audited(client, platform, tables, active, recording):
    status, result = api(client, platform, "POST", f"/api/admin/students/{active['student']}/purge", actor="Ops")
    assert status == 200 and result == {"student": active["student"], "result": "purging"}
    assert tables.customers.get(active["id"]).status == "failed"
    assert [e.subject.split()[0] for e in recording.sent[-2:]] == ["PURGE", "We"]
    assert latest_audit(client, platform).items() >= {"action": "student.purge", "target": active["student"],
                                                      "actor": "Ops", "outcome": "done"}.items()
    assert api(client, platform, "POST", "/api/admin/students/nobody1/purge")[0] == 404
    assert api(client, platform, "POST", "/api/admin/students/..%2F/purge")[0] == 404


def test_audit_pages_back_from_the_newest(client, platform, workshop):
    for n in range(3):
        api(client, platform, "PATCH", f"/api/admin/workshops/{WORKSHOP}", {"duration_minutes": 60 + n})
    status, first = api(client, platform, "GET", "/api/admin/audit?limit=2")
    assert status == 200 and [e["detail"]["changes"]["duration_minutes"] for e in first] == [62, 61]
    _, rest = api(client, platform, "GET", f"/api/admin/audit?limit=2&before={first[-1]['id']}")
    assert [e["detail"]["changes"]["duration_minutes"] for e in rest] == [60]
    assert api(client, platform, "GET", "/api/admin/audit?before=nonsense")[0] == 422


def test_stats_count_registrations_per_hour_and_completion_per_workshop(client, platform, active, clock):
    clock.advance(hours=2)
    participant(platform, WORKSHOP, "later@example.com")
    api(client, platform, "POST", f"/api/admin/registrations/{active['id']}/end")
    callback(client, platform, {"registration": active["id"], "student": active["student"], "outcome": "cleaned",
                                "completion": 40})
    status, stats = api(client, platform, "GET", "/api/admin/stats")
    assert status == 200
    hours = stats["registrations_per_hour"]
    assert len(hours) == 24 and [h["count"] for h in hours[-3:]] == [1, 0, 1]
    assert stats["completion"] == [{"workshop": WORKSHOP, "title": f"Workshop {WORKSHOP}", "average": 40.0,
                                    "finished": 1}]


@pytest.mark.parametrize("header, status", [(None, 401), ("Bearer ", 401), ("Basic abc", 401), ("Bearer nope", 403)])
def test_the_api_refuses_a_missing_or_wrong_token(client, platform, workshop, header, status):
    response = client.http.get("/api/admin/workshops", headers={"Authorization": header} if header else {})
    assert response.status_code == status
    assert ("WWW-Authenticate" in response.headers) == (status == 401)


def test_an_invalid_actor_header_is_422(client, platform, tables, workshop):
    status, answer = api(client, platform, "PATCH", f"/api/admin/workshops/{WORKSHOP}", {"active": False},
                         actor="<script>")
    assert status == 422 and "X-WOD-Actor" in answer["fields"]
    assert tables.workshops.get(WORKSHOP).active is True


def test_csv_export_round_trips_names_with_commas_quotes_and_accents(client, platform, workshop):
    names = [("Zoë", "Ñúñez, Jr.", "Smith & Sons, Ltd"), ('"Quoted"', "O'Brien", 'Le "Café"'),
             ("=cmd", "Lee", "@Corp")]
    for n, (first, last, company) in enumerate(names):
        participant(platform, WORKSHOP, f"p{n}@example.com", first=first, last=last, company=company)
    response = client.http.get("/api/admin/registrations.csv", headers=bearer(platform))
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.body.decode("utf-8-sig"))))
    by_email = {r["email"]: (r["first_name"], r["last_name"], r["company"]) for r in rows}
    assert by_email["p0@example.com"] == names[0] and by_email["p1@example.com"] == names[1]
    assert by_email["p2@example.com"] == ("'=cmd", "Lee", "'@Corp")  # no formula reaches a spreadsheet
    assert {r["status"] for r in rows} == {"pending", "waitlisted"} and len(rows) == 3
    waitlisted = client.http.get("/api/admin/registrations.csv?status=waitlisted", headers=bearer(platform))
    assert len(list(csv.DictReader(io.StringIO(waitlisted.body.decode("utf-8-sig"))))) == 1


# -- review findings: input, audit contents, races ---------------------------------------------

SUPERSCRIPT_TWO = "%C2%B2"  # "²": str.isdigit() says yes, int() says no


@pytest.mark.parametrize("method, path, body, field", [
    ("PATCH", f"/api/admin/workshops/{WORKSHOP}", {"capacity": "²"}, "capacity"),
    ("PATCH", f"/api/admin/workshops/{WORKSHOP}", {"duration_minutes": "1²"}, "duration_minutes"),
    ("POST", "/api/admin/registrations/{id}/extend", {"minutes": "²"}, "minutes"),
    ("GET", f"/api/admin/audit?limit={SUPERSCRIPT_TWO}", None, "limit"),
    ("GET", f"/api/admin/registrations?limit={SUPERSCRIPT_TWO}", None, "limit"),
    ("GET", f"/api/admin/registrations.csv?limit={SUPERSCRIPT_TWO}", None, "limit"),
    ("GET", "/api/admin/audit?before=%D9%A3%D9%A3%D9%A3%D9%A3%D9%A3%D9%A3%D9%A3%D9%A3T000000000000-0000abcd",
     None, "before"),
])
def test_non_ascii_digits_are_422_not_500(client, platform, active, method, path, body, field):
    status, answer = api(client, platform, method, path.replace("{id}", active["id"]), body)
    assert status == 422 and field in answer["fields"], answer


def test_the_audit_log_holds_no_personal_data(client, platform, active):
    participant(platform, WORKSHOP, "two@example.com", first="Zoë", last="Ñúñez")
    for action in ("extend", "resend-credentials", "reset"):
        assert api(client, platform, "POST", f"/api/admin/registrations/{active['id']}/{action}", {})[0] == 200
    client.http.get("/api/admin/registrations.csv?q=mo%40example.com&status=active", headers=bearer(platform))
    client.http.get("/api/admin/registrations.csv?q=%C3%B1%C3%BA%C3%B1ez", headers=bearer(platform))
    entries = api(client, platform, "GET", "/api/admin/audit")[1]
    assert [e["action"] for e in entries] == ["registrations.export", "registrations.export", "registration.reset",
                                              "registration.resend-credentials", "registration.extend"]
    logged = json.dumps(entries, ensure_ascii=False).lower()
    for personal in ("mo@example.com", "two@example.com", "example.com", "ñúñez", "zoë", "acme"):
        assert personal not in logged
    assert entries[-1]["target"] == active["id"]
    assert {k: entries[-1]["detail"][k] for k in ("student", "workshop")} == {"student": active["student"],
                                                                             "workshop": WORKSHOP}
    assert entries[1]["detail"] == {"filter": {"status": "active"}, "text_search": True, "rows": 1}


def test_refused_input_and_unexpected_errors_are_audited(client, platform, active, monkeypatch):
    assert api(client, platform, "PATCH", f"/api/admin/workshops/{WORKSHOP}", {"capacity": 0}, actor="Ops")[0] == 422
    entry = latest_audit(client, platform)
    assert entry.items() >= {"actor": "Ops", "action": "workshop.update", "target": WORKSHOP,
                             "outcome": "refused"}.items()
    assert entry["detail"] == {"message": "The workshop edit is not valid.",
                               "fields": {"capacity": "A whole number from 1 to 1000."}}
    assert api(client, platform, "POST", f"/api/admin/registrations/{active['id']}/extend", {"minutes": 1})[0] == 422
    entry = latest_audit(client, platform)
    assert (entry["action"], entry["target"], entry["outcome"]) == ("registration.extend", active["id"], "refused")
    assert "minutes" in entry["detail"]["fields"]
    assert api(client, platform, "POST", "/api/admin/webhooks", {"url": "ftp://user:secret@x.example/"})[0] == 422
    entry = latest_audit(client, platform)
    assert (entry["action"], entry["target"], entry["outcome"]) == ("webhook.create", "new webhook", "refused")
    assert "secret" not in json.dumps(entry)  # the refused URL itself is not recorded
    assert api(client, platform, "GET", "/api/admin/registrations.csv?status=bogus")[0] == 422
    assert (latest_audit(client, platform)["action"], latest_audit(client, platform)["outcome"]) == (
        "registrations.export", "refused")

    def broken(*args, **kwargs):
        raise RuntimeError("mo@example.com: something nobody expected")

    monkeypatch.setattr("chalicelib.services.participant.extend", broken)
    status, answer = api(client, platform, "POST", f"/api/admin/registrations/{active['id']}/extend", {})
    assert status == 500 and answer["error"] == "internal"
    entry = latest_audit(client, platform)
    assert (entry["action"], entry["outcome"], entry["detail"]["error"]) == ("registration.extend", "error",
                                                                              "RuntimeError")
    assert "mo@example.com" not in json.dumps(entry)


def test_a_purge_that_loses_a_race_reads_again_and_purges(client, platform, tables, active, recording,
                                                          monkeypatch):
    store = platform.stores.registrations
    real, calls = store.apply, []

    def changed_meanwhile(reg, change, now):
        if change.event == "fail":
            calls.append(reg.ends_at)
            if len(calls) == 1:  # the participant extends between the purge's read and its write
                api(client, platform, "POST", f"/api/admin/registrations/{active['id']}/extend", {})
        return real(reg, change, now)

    monkeypatch.setattr(store, "apply", changed_meanwhile)
    status, result = api(client, platform, "POST", f"/api/admin/students/{active['student']}/purge")
    assert status == 200 and result["result"] == "purging"
    assert len(calls) == 2 and calls[1] > calls[0]  # the second try used what it read again
    assert tables.customers.get(active["id"]).status == "failed"


def test_a_purge_that_keeps_losing_is_a_conflict_and_claims_nothing(client, platform, tables, active, recording,
                                                                     monkeypatch):
    from chalicelib.services import webhooks

    emitted = []
    real = platform.stores.registrations.apply
    monkeypatch.setattr(platform.stores.registrations, "apply",  # someone else's change wins every time
                        lambda reg, change, now: None if change.event == "fail" else real(reg, change, now))
    monkeypatch.setattr(webhooks, "emit", lambda ctx, event, *args, **kwargs: emitted.append(event))
    sent = len(recording.sent)
    status, refused = api(client, platform, "POST", f"/api/admin/students/{active['student']}/purge", actor="Ops")
    assert status == 409 and "kept changing" in refused["message"]
    assert tables.customers.get(active["id"]).status == "active"
    assert emitted == [] and len(recording.sent) == sent  # no "failed" webhook, no apology
    entry = latest_audit(client, platform)
    assert (entry["action"], entry["outcome"]) == ("student.purge", "refused") and "result" not in entry["detail"]


def test_a_seat_warmed_during_a_shrink_is_kept_and_reported(client, platform, tables, workshop, monkeypatch):
    admin_store, warm = platform.stores.organiser, platform.stores.warm

    api(client, platform, "PATCH", f"/api/admin/workshops/{WORKSHOP}", {"capacity": 5})
    read = admin_store.students_of

    def read_then_warm(workshop_id):
        students = read(workshop_id)  # all free and cold when read ...
        warm.mark_warming("adm-4", platform.clock(), timedelta(minutes=10))  # ... the pool warms one
        warm.mark_warm("adm-4")
        return students

    monkeypatch.setattr(admin_store, "students_of", read_then_warm)
    status, refused = api(client, platform, "PATCH", f"/api/admin/workshops/{WORKSHOP}",
                          {"capacity": 2, "duration_minutes": 90})
    assert status == 409 and "adm-4 was taken or warmed" in refused["message"]
    assert "went down to 4 only" in refused["message"]
    assert tables.students.get("adm-4").warm is True  # not deleted under the warm pool
    item = tables.workshops.get(WORKSHOP)
    assert (item.seats_total, item.student_to, item.duration_minutes) == (4, 4, 90)
    assert item.overrides == {"capacity": 4, "duration_minutes": 90}
    assert free_students(tables, WORKSHOP) == ["adm-1", "adm-2", "adm-3", "adm-4"] and item.seats_free == 4
    entry = latest_audit(client, platform)
    assert entry["outcome"] == "refused" and entry["detail"]["seats"] == {
        "added": 0, "removed": 1, "kept_busy": ["adm-4"], "skipped": []}


def test_removing_students_spares_one_warmed_since_it_was_read(platform, tables, workshop):
    stores = platform.stores
    api_seats = [stores.seats.get_student(sid) for sid in ("adm-1", "adm-2")]  # read while cold
    stores.warm.mark_warming("adm-1", platform.clock(), timedelta(minutes=10))
    stores.warm.mark_warm("adm-2")
    report = SyncReport(WORKSHOP)
    stores.catalog.remove_students(WORKSHOP, api_seats, report)
    assert (report.removed, report.kept_busy) == (0, ["adm-1", "adm-2"])
    assert tables.workshops.get(WORKSHOP).seats_free == 2 and len(free_students(tables, WORKSHOP)) == 2
