"""Organiser operations that are not a participant's to trigger (the admin API builds on these)."""
from __future__ import annotations

from datetime import timedelta

from chalicelib import outbox
from chalicelib.context import current
from chalicelib.domain.errors import NotFound
from chalicelib.domain.registration import ACTIVE, FAILED, PENDING, PROVISIONING
from chalicelib.store import lifecycle as store
from chalicelib.store.models import StudentModel
from chalicelib.store.seats import get_workshop


def purge_student(student_id: str) -> str:
    """Force-free a student whatever its state: its registration (if live) fails with an
    apology, a PURGE order tears the environment down, and the seat comes back."""
    context = current()
    try:
        student = StudentModel.get(student_id, consistent_read=True)
    except StudentModel.DoesNotExist:
        raise NotFound(f"There is no student {student_id}.") from None
    now = context.clock()
    if student.registration_id:
        reg = store.get(student.registration_id)
        if reg.status in (PENDING, PROVISIONING, ACTIVE):
            retry = timedelta(minutes=context.settings.cleanup_retry_minutes)
            store.begin_cleanup(reg, now, retry, FAILED, extra_outbox=("apology",), order="PURGE")
            outbox.deliver(store.get(reg.id), context)
            return "purging"
        return "cleaning"  # already on its way back: the cleanup retries take it from here
    if store.free_orphan(student_id):
        context.mailer.send(outbox.order_email("PURGE", 0, get_workshop(student.workshop_id), student_id,
                                               f"purge-{student_id}", context))
        return "freed"
    return "free"
