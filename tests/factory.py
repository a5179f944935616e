"""Builders for test data: workshop folders on disk, a settable clock, a recording mailer."""
from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nbformat
import yaml

from chalicelib.domain.errors import Unavailable
from chalicelib.domain.mail import Email


def write_workshop(root: Path, workshop_id: str = "WKSHP-T1", *, seats: int | None = 3,
                   students: dict | None = None, notebooks: dict[str, list[str]] | None = None,
                   **fields) -> Path:
    """A valid workshop folder; ``fields`` override or add workshop.yaml keys."""
    folder = root / workshop_id
    folder.mkdir(parents=True, exist_ok=True)
    spec = {
        "id": workshop_id,
        "title": f"Workshop {workshop_id}",
        "description": "A workshop for tests.",
        "category": "test",
        "duration": 60,
        "location": "local",
        "presenter": {"name": "Ada Lovelace"},
    }
    spec.update({"students": students} if students else {"seats": seats})
    spec.update(fields)
    (folder / "workshop.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    if notebooks is None:
        notebooks = {"0-ReadMeFirst.ipynb": ["Welcome **{{ student_id }}**"],
                     "9-Conclusion.ipynb": ["Thank you!"]}
    for name, sources in notebooks.items():
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_markdown_cell(src) for src in sources]
        nbformat.write(nb, str(folder / name))
    return folder


def write_checks(folder: Path, ids: list[str], name: str = "1-Lab.ipynb") -> Path:
    """A lab notebook of exercise checks as nbgrader marks them, one per id (``assert answer == n``)."""
    lab = nbformat.v4.new_notebook()
    for n, grade_id in enumerate(ids):
        cell = nbformat.v4.new_code_cell(f"assert answer == {n}")
        cell.metadata["nbgrader"] = {"grade": True, "solution": False, "grade_id": grade_id, "points": 1}
        lab.cells.append(cell)
    nbformat.write(lab, str(folder / name))
    return folder / name


class Clock:
    """A clock tests move by hand."""

    def __init__(self, start: datetime | None = None):
        self.now = start or datetime(2026, 11, 26, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta) -> None:
        self.now += timedelta(**delta)


class RecordingMailer:
    """Keeps what it is asked to send; can be told to fail like a relay outage."""

    def __init__(self):
        self.sent: list[Email] = []
        self.failing = False
        self._lock = threading.Lock()

    def send(self, email: Email) -> None:
        if self.failing:
            raise Unavailable("relay down")
        with self._lock:
            self.sent.append(email)

    def to(self, address: str) -> list[Email]:
        return [e for e in self.sent if e.to == address]


def seed_active(tables, clock, due: int, not_due: int) -> list[str]:
    """Active registrations: ``due`` of them owe their reminder now, the others much later."""
    ids = []
    with tables.customers.batch_write() as batch:
        for n in range(due + not_due):
            reg_id = uuid.uuid4().hex
            ends = clock() + (timedelta(minutes=30) if n < due else timedelta(hours=3))
            batch.save(tables.customers(
                reg_id, email=f"p{n}@example.com", first_name="P", last_name=str(n), company="C",
                workshop_id="WKSHP-TICK", student_id=f"s{n}", status="active", created_at=clock(),
                started_at=clock(), ends_at=ends, due_state="active", due_at=ends - timedelta(minutes=60)))
            if n < due:
                ids.append(reg_id)
    return ids


def signed_callback(payload: dict, key: str, issued_at: int | None = None,
                    nonce: str | None = None) -> tuple[bytes, dict[str, str]]:
    """A callback as the backend sends it: the body (issued now, a fresh nonce) and its headers."""
    import secrets
    import time

    from chalicelib.domain.orders import SIGNATURE_HEADER, sign

    body = json.dumps(payload | {"issued_at": issued_at or int(time.time()),
                                 "nonce": nonce or secrets.token_urlsafe(18)}).encode()
    return body, {"Content-Type": "application/json", SIGNATURE_HEADER: sign(body, key)}


def registered(platform, email: str) -> dict:
    """The live registration of an address, as the status API shows it (id, status, student,
    position...), found through its email guard: the registration POST answers without it."""
    from chalicelib.domain.registration import mailbox_key
    from chalicelib.services import participant

    guard = platform.stores.tables.emails.get(mailbox_key(email), consistent_read=True)
    return participant.status(platform, guard.registration_id)
