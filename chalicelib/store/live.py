"""The live room's data: each seat's folded notebook events (``live`` on the student item, one
write per batch of events, never on the registrations table, whose every write is streamed to the
outbox dispatcher) and the facilitator's message on the workshop. The room itself is one query of
the workshop's seats (:meth:`chalicelib.store.organiser.Organiser.students_of`): who holds a seat,
its status, its end and its events are all on the seat."""
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pynamodb.exceptions import UpdateError
from pynamodb.expressions.update import Action

from chalicelib.domain.errors import NotFound
from chalicelib.domain.values import Student
from chalicelib.store.errors import translated
from chalicelib.store.models import StudentModel, WorkshopModel
from chalicelib.store.tables import Tables


class Live:
    def __init__(self, tables: Tables):
        self.t = tables

    @translated
    def record(self, before: Student, seq: int, state: Mapping[str, Any]) -> bool:
        """Store ``state`` as ``before``'s live state after the batch ``seq``: only while the student
        still holds the same active registration, nothing was recorded since ``before`` was read
        and ``seq`` is past the last batch taken. False when any of these no longer holds."""
        last = StudentModel.live_seq.does_not_exist() if before.live_seq is None \
            else StudentModel.live_seq == before.live_seq
        try:
            self.t.students(before.id).update(
                actions=[StudentModel.live.set(dict(state)), StudentModel.live_seq.set(seq)],
                condition=(StudentModel.status == "active")
                & (StudentModel.registration_id == state["registration"]) & last)
        except UpdateError:
            return False
        return True

    @translated
    def next_extend_round(self, workshop_id: str, seen: str | None, new: str) -> bool:
        """Start a new "extend all" round if the last one is still ``seen`` (None: none yet); False
        when another round started since (the same form sent again)."""
        last = WorkshopModel.extend_round.does_not_exist() if not seen else WorkshopModel.extend_round == seen
        try:
            self.t.workshops(workshop_id).update(actions=[WorkshopModel.extend_round.set(new)],
                                                 condition=WorkshopModel.id.exists() & last)
        except UpdateError:
            return False
        return True

    @translated
    def set_message(self, workshop_id: str, text: str | None, at: datetime) -> None:
        """The message every participant of the workshop sees (None takes it down)."""
        actions: list[Action] = [WorkshopModel.message.set(text), WorkshopModel.message_at.set(at)] if text \
            else [WorkshopModel.message.remove(), WorkshopModel.message_at.remove()]
        try:
            self.t.workshops(workshop_id).update(actions=actions, condition=WorkshopModel.id.exists())
        except UpdateError:
            raise NotFound(f"There is no workshop {workshop_id}.") from None
