"""Syncing workshop folders keeps the seat counter equal to the free students."""
from __future__ import annotations

from chalicelib.services import registrations
from chalicelib.catalog.folders import load_catalog
from chalicelib.catalog.sync import deactivate_missing, sync_workshop
from chalicelib.store.models import StudentModel, WorkshopModel
from tests.factory import write_workshop


def sync(root):
    workshops, problems = load_catalog(root, ["local"])
    assert problems == []
    return {w.spec.id: sync_workshop(w) for w in workshops}


def free_students(workshop_id):
    return StudentModel.free_index.count(workshop_id)


def test_sync_creates_grows_shrinks_and_is_idempotent(served, tmp_path):
    root = tmp_path / "workshops"
    write_workshop(root, "WKSHP-SYNC", students={"from": 1, "to": 60}, title="First title")
    report = sync(root)["WKSHP-SYNC"]
    assert (report.created, report.added) == (True, 60)
    item = WorkshopModel.get("WKSHP-SYNC")
    assert (item.seats_total, item.seats_free, item.title) == (60, 60, "First title")

    again = sync(root)["WKSHP-SYNC"]
    assert (again.created, again.added, again.removed) == (False, 0, 0)
    assert WorkshopModel.get("WKSHP-SYNC").seats_free == free_students("WKSHP-SYNC") == 60

    taken = registrations.register({"workshop": "WKSHP-SYNC", "email": "a@example.com", "first_name": "A",
                                    "last_name": "B", "company": "C", "accept_terms": True})["student"]
    keep = 2 if taken == "student1" else 1  # a one-seat range without the busy student
    write_workshop(root, "WKSHP-SYNC", students={"from": keep, "to": keep}, title="Second title")
    shrunk = sync(root)["WKSHP-SYNC"]
    item = WorkshopModel.get("WKSHP-SYNC")
    assert (shrunk.removed, shrunk.kept_busy) == (58, [taken])
    assert item.title == "Second title"
    assert item.seats_free == free_students("WKSHP-SYNC") == 1
    assert StudentModel.get(taken).status == "reserved"


def test_removed_folder_closes_the_workshop(served, tmp_path):
    root = tmp_path / "workshops"
    write_workshop(root, "WKSHP-GONE", seats=2)
    sync(root)
    assert deactivate_missing(set()) == ["WKSHP-GONE"]
    assert WorkshopModel.get("WKSHP-GONE").active is False
