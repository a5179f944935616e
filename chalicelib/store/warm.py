"""The warm pool: free students whose server is already running, so provisioning skips the spawn."""
from __future__ import annotations

from datetime import datetime, timedelta

from pynamodb.exceptions import UpdateError

from chalicelib.store.errors import translated
from chalicelib.store.models import StudentModel, WorkshopModel


@translated
def pool_workshops() -> list[WorkshopModel]:
    return [w for w in WorkshopModel.scan() if w.active and int(w.warm_pool or 0) > 0]


@translated
def free_students(workshop_id: str, limit: int = 500) -> list[StudentModel]:
    return list(StudentModel.free_index.query(workshop_id, limit=limit))


@translated
def mark_warming(student_id: str, now: datetime, stale: timedelta) -> int | None:
    """Claim the right to warm a free student; returns its warm cycle number, None if taken."""
    student = StudentModel(student_id)
    try:
        student.update(
            actions=[StudentModel.warming_since.set(now), StudentModel.warm_cycles.add(1)],
            condition=(StudentModel.status == "free") & StudentModel.warm.does_not_exist()
            & (StudentModel.warming_since.does_not_exist() | (StudentModel.warming_since < now - stale)))
    except UpdateError:
        return None
    return int(student.warm_cycles)


@translated
def mark_warm(student_id: str) -> bool:
    try:
        StudentModel(student_id).update(
            actions=[StudentModel.warm.set(True), StudentModel.warming_since.remove()],
            condition=StudentModel.status == "free")
    except UpdateError:
        return False  # claimed while warming: provisioning carries on from here
    return True
