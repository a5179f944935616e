"""Syncing workshop folders keeps the seat counter equal to the free students."""
from __future__ import annotations

from chalicelib.adapters.workshop_folders import load_catalog
from chalicelib.services import registrations
from chalicelib.services.catalog import sync_workshop
from tests.factory import write_workshop


def sync(ctx, root):
    workshops, problems = load_catalog(root, ["local"])
    assert problems == []
    return {w.spec.id: sync_workshop(ctx, w) for w in workshops}


def free_students(tables, workshop_id):
    return tables.students.free_index.count(workshop_id)


def test_sync_creates_grows_shrinks_and_is_idempotent(served, tmp_path):
    tables, root = served.stores.tables, tmp_path / "workshops"
    write_workshop(root, "WKSHP-SYNC", students={"from": 1, "to": 60}, title="First title")
    report = sync(served, root)["WKSHP-SYNC"]
    assert (report.created, report.added) == (True, 60)
    item = tables.workshops.get("WKSHP-SYNC")
    assert (item.seats_total, item.seats_free, item.title) == (60, 60, "First title")

    again = sync(served, root)["WKSHP-SYNC"]
    assert (again.created, again.added, again.removed) == (False, 0, 0)
    assert tables.workshops.get("WKSHP-SYNC").seats_free == free_students(tables, "WKSHP-SYNC") == 60

    taken = registrations.register(served, {"workshop": "WKSHP-SYNC", "email": "a@example.com", "first_name": "A",
                                            "last_name": "B", "company": "C", "accept_terms": True})["student"]
    keep = 2 if taken == "student1" else 1  # a one-seat range without the busy student
    write_workshop(root, "WKSHP-SYNC", students={"from": keep, "to": keep}, title="Second title")
    shrunk = sync(served, root)["WKSHP-SYNC"]
    item = tables.workshops.get("WKSHP-SYNC")
    assert (shrunk.removed, shrunk.kept_busy) == (58, [taken])
    assert item.title == "Second title"
    assert item.seats_free == free_students(tables, "WKSHP-SYNC") == 1
    assert tables.students.get(taken).status == "reserved"


def test_removed_folder_closes_the_workshop(served, tmp_path):
    tables, root = served.stores.tables, tmp_path / "workshops"
    write_workshop(root, "WKSHP-GONE", seats=2)
    sync(served, root)
    assert served.stores.catalog.deactivate_missing(set()) == ["WKSHP-GONE"]
    assert tables.workshops.get("WKSHP-GONE").active is False
