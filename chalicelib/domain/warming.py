"""How many free students of a workshop to keep with a running server (the warm pool).

The folder's ``warm_pool`` is kept at all times. An organiser who expects a turnout
(``expected``) gets that many servers ready ahead: from ``lead`` before the scheduled start
(``starts_at``; at once without one), the pool covers the participants still to come (the expected
turnout less the seats already taken), and ``drain`` after the start it shrinks back to the
folder's pool. Never more than the free seats.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from chalicelib.domain.values import Workshop


def warm_target(workshop: Workshop, now: datetime, lead: timedelta, drain: timedelta) -> int:
    target = workshop.warm_pool
    if workshop.expected and (workshop.starts_at is None
                              or workshop.starts_at - lead <= now < workshop.starts_at + drain):
        to_come = workshop.expected - (workshop.seats_total - workshop.seats_free)
        target = max(target, to_come)
    return max(0, min(target, workshop.seats_free))
