"""Write validated workshops into DynamoDB, keeping the seat counter exact.

Students are added and removed in transactions that move the free-seat counter
by the same amount, so ``seats_free`` always equals the number of free students.
Busy or warm students outside a shrunk range stay until they are freed. What an organiser changed on
the dashboard (``overrides``: open or closed, duration, capacity) is kept, not the folder's value.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pynamodb.exceptions import PutError, TransactWriteError
from pynamodb.transactions import TransactWrite

from chalicelib.domain.errors import CatalogError
from chalicelib.domain.values import Student
from chalicelib.store import values
from chalicelib.store.errors import translated
from chalicelib.store.models import StudentModel, WorkshopModel
from chalicelib.store.tables import Tables

if TYPE_CHECKING:
    from chalicelib.adapters.workshop_folders import Workshop
    from chalicelib.domain.workshop_spec import StudentRange

CHUNK = 50


@dataclass
class SyncReport:
    workshop: str
    created: bool = False
    added: int = 0
    removed: int = 0
    kept_busy: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    kept_overrides: list[str] = field(default_factory=list)

    def line(self) -> str:
        parts = ["created" if self.created else "updated", f"+{self.added} students", f"-{self.removed} students"]
        if self.kept_busy:
            parts.append(f"{len(self.kept_busy)} busy students outside the range kept until freed")
        if self.skipped:
            parts.append(f"{len(self.skipped)} students owned by another workshop skipped: "
                         f"{', '.join(self.skipped[:5])}")
        if self.kept_overrides:
            parts.append(f"kept the organiser's {', '.join(self.kept_overrides)}")
        return f"{self.workshop}: " + ", ".join(parts)


def _location(w: Workshop) -> str:
    """The workshop's location; ``load_catalog`` gives one to every workshop it passes."""
    if w.spec.location is None:
        raise CatalogError([(f"{w.spec.id}/workshop.yaml", "location", "missing: check the catalog first")])
    return w.spec.location


def _metadata_actions(w: Workshop, seats_total: int, rng: StudentRange, overrides: dict[str, Any]) -> list:
    """The folder's fields (``WorkshopSpec.stored_fields``), what the sync measured, and an organiser's
    edits over the folder's duration and opening."""
    fields: dict[str, Any] = {
        **w.spec.stored_fields(), "location": _location(w), "content_version": w.content_version,
        "student_prefix": rng.prefix, "student_from": rng.first, "student_to": rng.last, "checks": w.checks,
        "seats_total": seats_total,
        **{name: overrides[name] for name in ("duration_minutes", "active") if name in overrides}}
    attributes = WorkshopModel.get_attributes()
    actions = [attributes[name].set(value) if value is not None else attributes[name].remove()
               for name, value in fields.items()]
    return [*actions, WorkshopModel.handed_back.remove()]  # what an organiser handed back follows the folder again


class Catalog:
    def __init__(self, tables: Tables):
        self.t = tables

    @translated
    def ensure_workshop(self, w: Workshop) -> bool:
        """Create the workshop's item (no students, counters at zero) unless it exists; True if created."""
        rng = w.spec.student_range
        item = self.t.workshops(w.spec.id, title=w.spec.title, description=w.spec.description,
                                category=w.spec.category, duration_minutes=w.spec.duration,
                                location=_location(w), student_prefix=rng.prefix, student_from=rng.first,
                                student_to=rng.last, seats_total=0, seats_free=0, waitlist_seq=0)
        try:
            item.save(condition=WorkshopModel.id.does_not_exist())
            return True
        except PutError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise

    @translated
    def add_students(self, workshop_id: str, location: str, ids: list[str], report: SyncReport) -> None:
        """New free students, the counter moved by as many in the same transaction."""
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start:start + CHUNK]
            try:
                with TransactWrite(connection=self.t.connection) as tx:
                    for sid in chunk:
                        tx.save(self.t.students(sid, workshop_id=workshop_id, location=location, status="free",
                                                free_workshop=workshop_id),
                                condition=StudentModel.id.does_not_exist())
                    tx.update(self.t.workshops(workshop_id), actions=[WorkshopModel.seats_free.add(len(chunk))])
                report.added += len(chunk)
            except TransactWriteError:
                if len(chunk) == 1:
                    report.skipped.append(chunk[0])
                else:  # some id exists elsewhere: retry one by one to find it
                    for sid in chunk:
                        self.add_students(workshop_id, location, [sid], report)

    @translated
    def remove_students(self, workshop_id: str, students: list[Student], report: SyncReport) -> None:
        """Delete free students, the counter moved with each. A busy one is kept until freed, and so
        is one whose server is warm or warming (deleting it would leave its server running), also
        when it became so after it was read."""
        for student in students:
            if student.status != "free" or student.warm or student.warming_since:
                report.kept_busy.append(student.id)
                continue
            condition = ((StudentModel.status == "free") & (StudentModel.workshop_id == workshop_id)
                         & StudentModel.warm.does_not_exist() & StudentModel.warming_since.does_not_exist())
            try:
                with TransactWrite(connection=self.t.connection) as tx:
                    tx.delete(self.t.students(student.id), condition=condition)
                    tx.update(self.t.workshops(workshop_id), actions=[WorkshopModel.seats_free.add(-1)])
                report.removed += 1
            except TransactWriteError:
                report.kept_busy.append(student.id)  # claimed meanwhile

    @translated
    def sync_workshop(self, w: Workshop, report: SyncReport | None = None) -> SyncReport:
        """Create or update one workshop from its folder; ``report`` (a new one by default) says what changed."""
        if report is None:
            report = SyncReport(w.spec.id)
        report.created = self.ensure_workshop(w)
        overrides = {} if report.created else self.t.workshops.get(w.spec.id, consistent_read=True).overrides or {}
        report.kept_overrides = sorted(overrides)
        rng = w.spec.student_range
        if "capacity" in overrides:
            rng = rng.model_copy(update={"last": rng.first + int(overrides["capacity"]) - 1})
        desired = rng.ids()
        existing = {s.id: s for s in self.t.students.workshop_index.query(w.spec.id)}
        self.add_students(w.spec.id, _location(w), [sid for sid in desired if sid not in existing], report)
        wanted = set(desired)
        self.remove_students(w.spec.id, [values.student(s) for sid, s in existing.items() if sid not in wanted],
                             report)
        self.t.workshops(w.spec.id).update(
            actions=_metadata_actions(w, len(desired) - len(report.skipped), rng, overrides))
        return report

    @translated
    def deactivate_missing(self, present: set[str]) -> list[str]:
        """Workshops whose folder is gone are closed, never deleted: registrations point at them."""
        closed = []
        for item in self.t.workshops.scan(attributes_to_get=["id", "active"]):
            if item.id not in present and item.active:
                self.t.workshops(item.id).update(actions=[WorkshopModel.active.set(False)])
                closed.append(item.id)
        return closed
