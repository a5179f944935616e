"""What the organiser's side reads and writes: the audit log, every registration (a scan: an
organiser's page, never a participant's request), per-workshop seat figures, workshop edits."""
from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from pynamodb.exceptions import DoesNotExist, UpdateError

from chalicelib.domain.errors import NotFound
from chalicelib.domain.reports import RECORD_FIELDS, registration_record
from chalicelib.domain.values import Student, Workshop
from chalicelib.store import values
from chalicelib.store.errors import translated
from chalicelib.store.models import AdminModel, StudentModel, WorkshopModel
from chalicelib.store.tables import Tables

AUDIT = "AUDIT"
SESSION = "SESSION"  # an organiser's open dashboard session (sk: a digest of its id, ``at``: when it ends)


def time_key() -> str:
    """A sort key in the order things happened, never colliding: ``<UTC wall time>-<random>``
    (wall time, not the business clock, which a test or a demo may stop or speed up)."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{secrets.token_hex(4)}"


class Organiser:
    registration_record = staticmethod(registration_record)

    def __init__(self, tables: Tables):
        self.t = tables

    @translated
    def all_registrations(self) -> list[dict[str, Any]]:
        return [registration_record(values.registration(r))
                for r in self.t.customers.scan(attributes_to_get=list(RECORD_FIELDS))]

    @translated
    def registration(self, registration_id: str) -> dict[str, Any]:
        try:
            return registration_record(values.registration(self.t.customers.get(registration_id,
                                                                                consistent_read=True)))
        except self.t.customers.DoesNotExist:
            raise NotFound("No registration has this id.") from None

    @translated
    def seat_figures(self, workshop_id: str) -> tuple[int, int]:
        """(warm free students, people on the waitlist) of a workshop, each from its sparse index."""
        warm = self.t.students.free_index.count(workshop_id, filter_condition=StudentModel.warm.is_in(True))
        return warm, self.t.customers.waitlist_index.count(workshop_id)

    @translated
    def students_of(self, workshop_id: str) -> list[Student]:
        return [values.student(s) for s in self.t.students.workshop_index.query(workshop_id)]

    @translated
    def reports_owed(self) -> list[Workshop]:
        """The workshops a seat came back to since their last event report (a scan of the few
        workshops, with the figures :func:`chalicelib.domain.event_report.due` reads)."""
        return [values.workshop(w) for w in self.t.workshops.scan(
            filter_condition=WorkshopModel.last_return_at.exists(),
            attributes_to_get=["id", "title", "checks", "seats_free", "seats_total", "last_return_at",
                               "report_sent_at"])
            if w.report_sent_at is None or w.report_sent_at < w.last_return_at]

    @translated
    def mark_reported(self, workshop: Workshop, now: datetime) -> bool:
        """Record that the event report is being mailed, once: False when another run recorded it first."""
        before = workshop.report_sent_at
        condition = (WorkshopModel.report_sent_at == before) if before \
            else WorkshopModel.report_sent_at.does_not_exist()
        try:
            self.t.workshops(workshop.id).update(actions=[WorkshopModel.report_sent_at.set(now)],
                                                 condition=WorkshopModel.id.exists() & condition)
        except UpdateError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True

    @translated
    def unmark_reported(self, workshop: Workshop, now: datetime) -> None:
        """Give the report back to the next run (its mail could not be sent)."""
        before = workshop.report_sent_at
        action = WorkshopModel.report_sent_at.set(before) if before else WorkshopModel.report_sent_at.remove()
        try:
            self.t.workshops(workshop.id).update(actions=[action], condition=WorkshopModel.report_sent_at == now)
        except UpdateError as exc:
            if exc.cause_response_code != "ConditionalCheckFailedException":
                raise

    @translated
    def update_workshop(self, workshop: Workshop, changes: dict[str, Any], overrides: dict[str, Any],
                        handed_back: list[str]) -> Workshop:
        """Apply ``active`` / ``duration_minutes`` / ``seats_total`` / ``expected`` / ``starts_at``
        (None removes), record the organiser's overrides and the fields handed back to the folder
        (until the next sync)."""
        fields = [(getattr(WorkshopModel, name), value) for name, value in changes.items()]
        actions = [field.set(value) if value is not None else field.remove() for field, value in fields]
        actions.append(WorkshopModel.overrides.set(overrides) if overrides else WorkshopModel.overrides.remove())
        actions.append(WorkshopModel.handed_back.set(handed_back) if handed_back
                       else WorkshopModel.handed_back.remove())
        item = self.t.workshops(workshop.id)
        try:
            item.update(actions=actions, condition=WorkshopModel.id.exists())
        except UpdateError as exc:
            raise NotFound(f"There is no workshop called {workshop.id}.") from exc
        return values.workshop(item)

    @translated
    def add_audit(self, actor: str, action: str, target: str, outcome: str, detail: dict[str, Any],
                  now: datetime) -> None:
        self.t.admin(AUDIT, time_key(), at=now, actor=actor, action=action, target=target, outcome=outcome,
                     detail=detail).save()

    @translated
    def audit(self, limit: int, before: str | None = None) -> list[dict[str, Any]]:
        """Newest first; ``before`` (an entry's id) pages further back."""
        condition = AdminModel.sk < before if before else None
        return [{"id": e.sk, "at": e.at.isoformat(), "actor": e.actor, "action": e.action, "target": e.target,
                 "outcome": e.outcome, "detail": e.detail or {}}
                for e in self.t.admin.query(AUDIT, condition, scan_index_forward=False, limit=limit)]

    @translated
    def open_session(self, key: str, ends: datetime, now: datetime) -> None:
        """Keep a new session; sessions that have ended are dropped on the way (there are few)."""
        for ended in self.t.admin.query(SESSION, filter_condition=AdminModel.at <= now):
            ended.delete()
        self.t.admin(SESSION, key, at=ends).save()

    @translated
    def session_open(self, key: str, now: datetime) -> bool:
        try:
            item = self.t.admin.get(SESSION, key, consistent_read=True)
        except DoesNotExist:
            return False
        return item.at > now

    @translated
    def close_session(self, key: str) -> None:
        self.t.admin(SESSION, key).delete()
