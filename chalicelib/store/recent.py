"""The workshops as they were a moment ago, for the participants' pages: one scan of the (small)
workshops table serves every catalog, form and status page of the next few seconds
(``WOD_WORKSHOP_CACHE_SECONDS``), instead of a read each. Nothing decided on it can be wrong for
long: a claim's transaction is conditional on the workshop's counter and flags as stored, and a
claim that finds them changed reads the workshop afresh."""
from __future__ import annotations

import threading
import time

from chalicelib.domain.errors import NotFound
from chalicelib.domain.text import N_
from chalicelib.domain.values import Workshop
from chalicelib.store import values
from chalicelib.store.errors import translated
from chalicelib.store.tables import Tables


class RecentWorkshops:
    def __init__(self, tables: Tables, seconds: float):
        self.t, self.seconds = tables, seconds
        self._lock = threading.Lock()
        self._read_at = -float("inf")
        self._by_id: dict[str, Workshop] = {}

    @translated
    def all(self) -> list[Workshop]:
        """Every workshop, by priority and title."""
        return sorted(self._snapshot().values(), key=lambda w: (w.priority, w.title))

    @translated
    def get(self, workshop_id: str) -> Workshop:
        found = self._snapshot().get(workshop_id)
        if found is None:
            raise NotFound(N_("There is no workshop called %(workshop)s.", workshop=workshop_id))
        return found

    def saw(self, workshop: Workshop) -> None:
        """A fresher read of a workshop (a claim that read it again): the next claims start from
        it rather than from what the snapshot held, until the next scan."""
        with self._lock:
            if workshop.id in self._by_id:
                self._by_id = {**self._by_id, workshop.id: workshop}

    def _snapshot(self) -> dict[str, Workshop]:
        with self._lock:  # one scan at a time; the others wait for it rather than scan too
            if time.monotonic() - self._read_at >= self.seconds:
                self._by_id = {w.id: values.workshop(w) for w in self.t.workshops.scan(consistent_read=True)}
                self._read_at = time.monotonic()
            return self._by_id
