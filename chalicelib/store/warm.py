"""The warm pool: free students whose server is already running, so provisioning skips the spawn."""
from __future__ import annotations

from datetime import datetime, timedelta

from pynamodb.exceptions import UpdateError

from chalicelib.domain.values import Student, Workshop
from chalicelib.store import values
from chalicelib.store.errors import translated
from chalicelib.store.models import StudentModel
from chalicelib.store.tables import Tables


class Warm:
    def __init__(self, tables: Tables):
        self.t = tables

    @translated
    def pool_workshops(self) -> list[Workshop]:
        """Active workshops that keep a warm pool or expect a turnout."""
        return [values.workshop(w) for w in self.t.workshops.scan()
                if w.active and (int(w.warm_pool or 0) > 0 or int(w.expected or 0) > 0)]

    @translated
    def free_students(self, workshop_id: str, limit: int = 500) -> list[Student]:
        """Free students of a workshop as the sparse index projects them (id, ``warm``, ``warming_since``)."""
        return [values.student(s) for s in self.t.students.free_index.query(workshop_id, limit=limit)]

    @translated
    def mark_warming(self, student_id: str, now: datetime, stale: timedelta) -> int | None:
        """Claim the right to warm a free student; returns its warm cycle number, None if taken."""
        student = self.t.students(student_id)
        try:
            student.update(
                actions=[StudentModel.warming_since.set(now), StudentModel.warm_cycles.add(1)],
                condition=(StudentModel.status == "free") & StudentModel.warm.does_not_exist()
                & (StudentModel.warming_since.does_not_exist() | (StudentModel.warming_since < now - stale)))
        except UpdateError:
            return None
        return int(student.warm_cycles)

    @translated
    def mark_cold(self, student_id: str) -> bool:
        """Take a free warm student out of the pool (its server is then torn down); False when it
        was claimed or cooled meanwhile."""
        try:
            self.t.students(student_id).update(
                actions=[StudentModel.warm.remove(), StudentModel.warming_since.remove()],
                condition=(StudentModel.status == "free") & StudentModel.warm.is_in(True))
        except UpdateError:
            return False
        return True

    @translated
    def mark_warm(self, student_id: str) -> bool:
        try:
            self.t.students(student_id).update(
                actions=[StudentModel.warm.set(True), StudentModel.warming_since.remove()],
                condition=StudentModel.status == "free")
        except UpdateError:
            return False  # claimed while warming: provisioning carries on from here
        return True
