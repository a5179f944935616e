"""300 people register at once for 100 seats: exactly 100 seated, the rest waitlisted in order."""
from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from chalicelib.adapters.workshop_folders import load_catalog
from chalicelib.services import participant, registrations
from chalicelib.services.catalog import sync_workshop
from tests.factory import write_workshop


def test_burst_of_300_for_100_seats(served, tmp_path):
    write_workshop(tmp_path / "w", "WKSHP-RUSH", students={"from": 1, "to": 100})
    [workshop], _ = load_catalog(tmp_path / "w", ["local"])
    sync_workshop(served, workshop)
    tables = served.stores.tables

    def register(n):
        return registrations.register(served, {"workshop": "WKSHP-RUSH", "email": f"p{n}@example.com",
                                               "first_name": "P", "last_name": str(n), "company": "C",
                                               "accept_terms": True})

    with ThreadPoolExecutor(max_workers=32) as pool:
        results = list(pool.map(register, range(300)))

    by_status = Counter(r["status"] for r in results)
    assert by_status == {"pending": 100, "waitlisted": 200}
    students = [r["student"] for r in results if r["status"] == "pending"]
    assert len(set(students)) == 100
    assert tables.workshops.get("WKSHP-RUSH").seats_free == 0
    assert tables.students.free_index.count("WKSHP-RUSH") == 0
    assert {s.status for s in tables.students.workshop_index.query("WKSHP-RUSH")} == {"reserved"}
    positions = sorted(participant.status(served, r["id"])["position"]
                       for r in results if r["status"] == "waitlisted")
    assert positions == list(range(1, 201))
    sent = served.mailer.sent
    assert len([e for e in sent if e.subject.startswith("CREATE")]) == 100
    assert len([e for e in sent if "waitlist" in e.subject]) == 200
