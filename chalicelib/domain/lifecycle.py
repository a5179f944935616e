"""The life of a registration, decided in one place.

:func:`decide` takes a registration as read, an event and the time, and returns the
:class:`Change` the event makes: the fields written, the conditions the write is made under (the
registration as the decision saw it), the outbox entries owed, and the effect on the seat. It
reads nothing and writes nothing: ``store/registrations.py`` applies a change in one conditional
transaction, and ``services/commit.py`` delivers what it owes and lets the waitlist take a seat
that came back (docs/architecture.md, "Layers" and "Flows").

    register ─► unconfirmed ─confirm─► pending ─progress─► provisioning ─provisioned─► active
        │            │  └──────confirm──► waitlisted ─promote─► pending          │   remind
        │            └─hold_expired─► expired          └─leave─► cancelled        │   extend, reset
        └─► pending / waitlisted (no confirmation)                                 end
    pending/provisioning ─release─► failed (seat back)       active ─end─► expiring ─finish─► finished
    pending/provisioning/active ─fail─► failed, cleaning ─finish─► failed (seat back)
    finished ─survey─► finished (an answer kept, for a week after the end)
    any ─bounced─► the same status, its mail marked as bounced or complained about (the event report)
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from chalicelib.domain.outbox import OUTBOX_PENDING, WEBHOOK, Entry, level, mail, order, webhook
from chalicelib.domain.registration import (
    ACTIVE,
    CANCELLED,
    EXPIRED,
    EXPIRING,
    FAILED,
    FINISHED,
    PENDING,
    PROVISIONING,
    UNCONFIRMED,
    WAITLISTED,
    personal_data_expiry,
)
from chalicelib.domain.survey import OPEN_DAYS, open_until
from chalicelib.domain.text import N_
from chalicelib.domain.values import Registration

# due_state values of the time-check index
DUE_CONFIRMING = "confirming"  # due = when an unconfirmed hold expires
DUE_PROVISIONING = "provisioning"
DUE_ACTIVE = "active"
DUE_CLEANING = "cleaning"
DUE_SCHEDULED = "scheduled"  # due = when a seat of a scheduled session gets its environment ordered

# Events
REGISTER = "register"  # a new claim: a seat when the registration has a student, else a waitlist place
CONFIRM = "confirm"  # the address confirmed its hold
HOLD_EXPIRED = "hold_expired"  # nobody confirmed the hold in time
PROMOTE = "promote"  # a waitlisted registration takes a free seat (the registration carries its student)
PROGRESS = "progress"  # a provisioning step to show
REDRIVE = "redrive"  # provisioning whose workflow was lost: a new deadline, its order owed again
PROVISIONED = "provisioned"  # the environment is ready: the clock starts
RELEASE = "release"  # provisioning failed and the backend undid its work: the seat comes back now
FAIL = "fail"  # a failure whose environment is torn down first (stuck, purged, failed after start)
REMIND = "remind"  # the "ends soon" email is due
EXTEND = "extend"
RESET = "reset"  # fresh notebooks (or a new password alone) ordered
END = "end"  # time up, or the participant ends it: login refused now, the cleanup ordered
RETRY_CLEANUP = "retry_cleanup"  # the cleanup report did not come in time: order it again
FINISH = "finish"  # the environment is clean: the seat comes back
LEAVE = "leave"  # a waitlisted participant leaves
NOTIFY = "notify"  # owes entries (the "already registered" email), changes nothing else
RESCHEDULE = "reschedule"  # a scheduled session's start moved (or was cleared) before its seats were ordered
START = "start"  # a seat of a scheduled session: its environment is ordered now, shortly before the start
SURVEY = "survey"  # a finished participant answers the survey (or changes their answer) while it is open
BOUNCED = "bounced"  # SES reported a bounce of, or a complaint about, a mail the registration was sent

# What a bounce marks (``mail_bounce``), weakest first: a mark is only ever raised (a repeat changes nothing)
BOUNCE_MARKS = ("transient", "permanent", "complaint")

# Seat effects
KEEP = "keep"  # the seat stays (the student row may change: Change.student)
TAKE = "take"  # claim a free student, the counter down by one (register, promote)
RETURN = "return"  # student free, counter up, email guard gone
RETURN_WARM = "return_warm"  # the same, a warm server of a never-provisioned student kept running
DROP_GUARD = "drop_guard"  # a place without a seat ends: only the email guard goes

# What each change owes
CONFIRM_OUTBOX = (mail("confirm"),)
SEATED_OUTBOX = (mail("welcome"), order("CREATE"), webhook("registered"))
WAITLISTED_OUTBOX = (mail("waitlisted"), webhook("registered"))
PROMOTED_OUTBOX = (mail("promoted"), order("CREATE"))
# a seat of a scheduled session: the environment is ordered by ``start``, shortly before the session
SCHEDULED_OUTBOX = (mail("welcome"), webhook("registered"))
SCHEDULED_PROMOTED_OUTBOX = (mail("promoted"),)
STARTED_OUTBOX = (order("CREATE"),)
RESCHEDULED_OUTBOX = (mail("rescheduled"),)
ALREADY_OUTBOX = (mail("already"),)
PROVISIONED_OUTBOX = (webhook("provisioned"),)
REMINDER_OUTBOX = (mail("reminder"), webhook("reminder_sent"))
EXTENDED_OUTBOX = (mail("extended"), webhook("extended"))
FINISHED_OUTBOX = (mail("thanks"), webhook("finished"))
FAILED_OUTBOX = (mail("apology"), webhook("failed"))
SURVEY_OUTBOX = (webhook("survey"),)
# the registration events a webhook can follow: every one a change above owes, in the order first owed
WEBHOOK_EVENTS = tuple(dict.fromkeys(entry.action for name, owed in list(globals().items()) if name.endswith("_OUTBOX")
                                     for entry in owed if entry.kind == WEBHOOK))
IN_FLIGHT = (PENDING, PROVISIONING)


@dataclass(frozen=True)
class Rules:
    """The settings a decision depends on."""

    stuck_after: timedelta = timedelta(minutes=10)  # provisioning longer than this has failed
    reminder: timedelta = timedelta(minutes=10)  # the "ends soon" email, this long before the end
    cleanup_retry: timedelta = timedelta(minutes=5)  # a cleanup not reported by then is ordered again
    badge_levels: tuple[int, ...] = ()
    schedule_lead: timedelta = timedelta(minutes=10)  # a scheduled session's environments are ordered this early


@dataclass(frozen=True)
class Condition:
    """``field op value`` on the stored registration; ``==`` with None: the field is absent."""

    field: str
    op: str  # "==", "in", ">", "<="
    value: Any

    def holds_for(self, reg: Registration) -> bool:
        actual = getattr(reg, self.field)
        if self.op == "==":
            return actual == self.value
        if self.op == "in":
            return actual in self.value
        if actual is None:
            return False
        return actual > self.value if self.op == ">" else actual <= self.value


@dataclass(frozen=True)
class Change:
    """What an event does to a registration; see :func:`decide`."""

    event: str
    when: tuple[Condition, ...]  # the write is made only while all of these hold
    set: Mapping[str, Any] = field(default_factory=dict)  # field -> new value
    remove: tuple[str, ...] = ()
    add: Mapping[str, int] = field(default_factory=dict)  # counters
    owes: tuple[Entry, ...] = ()  # queued in the same write
    seat: str = KEEP
    student: Mapping[str, Any] = field(default_factory=dict)  # the student row, with seat KEEP
    refill: bool = False  # a seat may have come back: the waitlist takes it

    @property
    def status(self) -> str | None:
        return self.set.get("status")

    @property
    def delivers(self) -> bool:
        """Whether the registration has something to send once it is written."""
        return bool(self.owes) or "outbox_due_at" in self.set

    def applies_to(self, reg: Registration) -> bool:
        return all(condition.holds_for(reg) for condition in self.when)


def _is(status: str | tuple[str, ...]) -> Condition:
    return Condition("status", "in", status if isinstance(status, tuple) else (status,))


def _unchanged(reg: Registration, *names: str) -> tuple[Condition, ...]:
    return tuple(Condition(name, "==", getattr(reg, name)) for name in names)


def _closed(now: datetime) -> dict[str, Any]:
    return {"finished_at": now, "ttl": personal_data_expiry(now)}


def reminder_at(ends_at: datetime, started_at: datetime, reminder: timedelta) -> datetime:
    """When the "ends soon" email is due; for a session shorter than the warning, at its start."""
    return max(ends_at - reminder, started_at)


def _seated(now: datetime, rules: Rules, scheduled: datetime | None, owes: tuple[Entry, ...],
            later: tuple[Entry, ...]) -> tuple[dict[str, Any], tuple[Entry, ...]]:
    """A seat's due fields and what it owes: provisioning now, or, for a session scheduled to start
    later than ``rules.schedule_lead`` from now, ordered by ``start`` then (``later`` owed now)."""
    at = scheduled - rules.schedule_lead if scheduled is not None else None
    if at is not None and at > now:
        return {"status": PENDING, "due_state": DUE_SCHEDULED, "due_at": at}, later
    return {"status": PENDING, "due_state": DUE_PROVISIONING, "due_at": now + rules.stuck_after}, owes


def decide(reg: Registration, event: str, now: datetime, rules: Rules = Rules(), *,
           confirm_by: datetime | None = None, duration: timedelta | None = None, minutes: int = 0,
           counted: bool = True, scope: str = "all", reason: str = "", cleanup: str = "CLEANUP",
           completion: float | None = None, checks_passed: int | None = None, finished_before: int | None = None,
           deadline: datetime | None = None, first_seen: datetime | None = None, scheduled: datetime | None = None,
           earned: bool | None = None,
           owes: tuple[Entry, ...] = (), answer: Mapping[str, Any] | None = None, bounce: str = "") -> Change | None:
    """The change ``event`` makes to ``reg`` at ``now``; None when it does not apply to the
    registration as read (already done, or another state: a repeated callback, a double click,
    an overlapping time check change nothing).

    The details an event needs: ``confirm_by`` (register: a hold until then), ``scheduled`` (register,
    confirm, promote: the workshop's scheduled start, if any), ``duration``
    (provisioned), ``minutes`` and ``counted`` (extend; an organiser's extension is not counted),
    ``scope`` (reset: ``all`` or ``password``), ``reason`` (release, fail; progress: the step),
    ``cleanup`` (fail: ``CLEANUP`` or ``PURGE``), ``completion``, ``checks_passed`` and ``finished_before`` (finish: how
    many other workshops the address finished before, for a level badge; None when it had finished
    this one already; ``first_seen``: when the participant's notebook first reported, kept for the
    event report; ``earned``: whether it earned the workshop's badge), ``deadline`` (redrive),
    ``owes`` (notify), ``answer`` (survey: as :func:`chalicelib.domain.survey.parse` gives it), ``bounce``
    (bounced: one of :data:`BOUNCE_MARKS`).
    """
    status = reg.status
    if event == REGISTER:
        seated = bool(reg.student_id)
        if confirm_by is not None:  # held until confirmed; the time checks give it back at ``confirm_by``
            return Change(event, (), {"status": UNCONFIRMED, "confirm_by": confirm_by, "due_state": DUE_CONFIRMING,
                                      "due_at": confirm_by}, owes=CONFIRM_OUTBOX, seat=TAKE if seated else KEEP)
        if seated:
            due, owed = _seated(now, rules, scheduled, SEATED_OUTBOX, SCHEDULED_OUTBOX)
            return Change(event, (), due, owes=owed, seat=TAKE)
        return Change(event, (), {"status": WAITLISTED, "waitlist_workshop": reg.workshop_id, "waitlisted_at": now},
                      owes=WAITLISTED_OUTBOX)
    if event == CONFIRM:
        if status != UNCONFIRMED or (reg.confirm_by is not None and reg.confirm_by <= now):
            return None
        when = (_is(UNCONFIRMED), Condition("confirm_by", ">", now))
        if reg.student_id:  # a seat: as a registration without confirmation
            due, owed = _seated(now, rules, scheduled, SEATED_OUTBOX, SCHEDULED_OUTBOX)
            return Change(event, when, {**due, "confirmed_at": now}, ("confirm_by",), owes=owed)
        return Change(event, when, {"status": WAITLISTED, "waitlist_workshop": reg.workshop_id, "confirmed_at": now,
                                    "waitlisted_at": now},
                      ("confirm_by", "due_state", "due_at"), owes=WAITLISTED_OUTBOX, refill=True)
    if event == HOLD_EXPIRED:
        if status != UNCONFIRMED or (reg.confirm_by is not None and reg.confirm_by > now):
            return None
        return Change(event, (_is(UNCONFIRMED), Condition("confirm_by", "<=", now)),
                      {"status": EXPIRED, **_closed(now)}, ("due_state", "due_at", "waitlist_seq"),
                      seat=RETURN_WARM if reg.student_id else DROP_GUARD, refill=bool(reg.student_id))
    if event == PROMOTE:
        if status != WAITLISTED or not reg.student_id:
            return None
        due, owed = _seated(now, rules, scheduled, PROMOTED_OUTBOX, SCHEDULED_PROMOTED_OUTBOX)
        return Change(event, (_is(WAITLISTED), *_unchanged(reg, "waitlist_seq")),
                      {**due, "student_id": reg.student_id, "promoted_at": now}, ("waitlist_workshop", "waitlist_seq"),
                      owes=owed, seat=TAKE)
    if event == RESCHEDULE:  # ``scheduled``: the new start (None: on-demand now)
        if status != PENDING or reg.due_state != DUE_SCHEDULED:
            return None
        at = max(now, scheduled - rules.schedule_lead) if scheduled is not None else now
        if at == reg.due_at:
            return None
        return Change(event, (_is(PENDING), Condition("due_state", "==", DUE_SCHEDULED), *_unchanged(reg, "due_at")),
                      {"due_at": at}, add={"reschedules": 1}, owes=RESCHEDULED_OUTBOX)
    if event == START:
        if status != PENDING or reg.due_state != DUE_SCHEDULED:
            return None
        return Change(event, (_is(PENDING), Condition("due_state", "==", DUE_SCHEDULED)),
                      {"due_state": DUE_PROVISIONING, "due_at": now + rules.stuck_after, "ordered_at": now},
                      owes=STARTED_OUTBOX)
    if event == PROGRESS:
        if status not in IN_FLIGHT:
            return None
        return Change(event, (_is(IN_FLIGHT),), {"status": PROVISIONING, "progress": reason})
    if event == REDRIVE:
        if status not in IN_FLIGHT or reg.due_state != DUE_PROVISIONING or deadline is None:
            return None
        # owed again unless the outbox holds it (then it is due now: it may be waiting out a backoff)
        again = tuple(entry for entry in owes if entry not in reg.outbox)
        due_now = {"outbox_state": OUTBOX_PENDING, "outbox_due_at": now} if owes and not again else {}
        return Change(event, (_is(status), Condition("due_state", "==", DUE_PROVISIONING),
                              *_unchanged(reg, "due_at")), {"due_at": deadline, **due_now}, owes=again)
    if event == PROVISIONED:
        if status not in IN_FLIGHT or duration is None:
            return None
        # a scheduled session's seat, ready before the start, runs its whole time from the start
        begins = max(now, scheduled) if scheduled is not None and reg.ordered_at is not None else now
        ends = begins + duration
        return Change(event, (_is(IN_FLIGHT),), {
            "status": ACTIVE, "started_at": now, "ends_at": ends, "progress": "ready", "due_state": DUE_ACTIVE,
            "due_at": reminder_at(ends, now, rules.reminder)}, owes=PROVISIONED_OUTBOX,
            student={"status": ACTIVE, "expires_at": ends})
    if event == RELEASE:
        if status not in IN_FLIGHT or not reg.student_id:
            return None
        return Change(event, (_is(IN_FLIGHT),), {"status": FAILED, "failure": reason[:500], "ttl":
                                                  personal_data_expiry(now)},
                      ("progress", "due_state", "due_at"), owes=FAILED_OUTBOX, seat=RETURN, refill=True)
    if event in (FAIL, END):
        allowed = (PENDING, PROVISIONING, ACTIVE) if event == FAIL else (ACTIVE,)
        if status not in allowed:
            return None
        return Change(event, (_is(status), *_unchanged(reg, "ends_at")), {
            "status": FAILED if event == FAIL else EXPIRING, "due_state": DUE_CLEANING,
            "due_at": now + rules.cleanup_retry, **({"failure": reason[:500]} if reason else {})}, ("progress",),
            owes=(order(cleanup if event == FAIL else "CLEANUP"), *(FAILED_OUTBOX if event == FAIL else ())),
            student={"status": "cleaning", "expires_at": now})
    if event == REMIND:
        if status != ACTIVE or reg.ends_at is None or reg.reminder_sent:
            return None
        return Change(event, (_is(ACTIVE), *_unchanged(reg, "due_at", "reminder_sent")),
                      {"reminder_sent": True, "due_at": reg.ends_at}, owes=REMINDER_OUTBOX)
    if event == EXTEND:
        if status != ACTIVE or reg.ends_at is None or reg.started_at is None:
            return None
        ends = reg.ends_at + timedelta(minutes=minutes)
        return Change(event, (_is(ACTIVE), *_unchanged(reg, "ends_at")), {
            "ends_at": ends, "reminder_sent": False, "due_at": reminder_at(ends, reg.started_at, rules.reminder)},
            add={"extensions_used": 1 if counted else 0, "extensions_total": 1}, owes=EXTENDED_OUTBOX,
            student={"expires_at": ends})
    if event == RESET:
        if status != ACTIVE:
            return None
        attempt = reg.resets_used + 1  # names the workflow: two clicks make two resets, never one twice
        return Change(event, (_is(ACTIVE), *_unchanged(reg, "resets_used")), {"resets_used": attempt},
                      owes=(order("RESET", attempt, scope),))
    if event == RETRY_CLEANUP:
        if reg.due_state != DUE_CLEANING:
            return None
        attempt = reg.cleanup_attempts + 1
        return Change(event, (Condition("due_state", "==", DUE_CLEANING), *_unchanged(reg, "due_at")),
                      {"cleanup_attempts": attempt, "due_at": now + rules.cleanup_retry},
                      owes=(order("CLEANUP", attempt),))
    if event == FINISH:
        if reg.due_state != DUE_CLEANING:
            return None
        ran = status != FAILED
        reached = badge_level(finished_before + 1, rules.badge_levels) if ran and finished_before is not None else None
        return Change(event, (Condition("due_state", "==", DUE_CLEANING),), {
            "status": FINISHED if ran else FAILED, **_closed(now),
            **({"completion": completion} if completion is not None else {}),
            **({"checks_passed": checks_passed} if checks_passed is not None else {}),
            **({"first_seen_at": first_seen} if first_seen is not None and reg.first_seen_at is None else {}),
            **({"badge_earned": earned} if ran and earned is not None else {})},
            ("due_state", "due_at"),
            owes=(*FINISHED_OUTBOX, *((level(reached),) if reached else ())) if ran else (),
            seat=RETURN, refill=True)
    if event == LEAVE:
        if status != WAITLISTED:
            return None
        return Change(event, (_is(WAITLISTED),), {"status": CANCELLED, **_closed(now)},
                      ("waitlist_workshop", "waitlist_seq"), seat=DROP_GUARD)
    if event == SURVEY:
        closes = open_until(reg.finished_at)
        if status != FINISHED or closes is None or closes <= now or not answer:
            return None
        return Change(event, (_is(FINISHED), Condition("finished_at", ">", now - timedelta(days=OPEN_DAYS))),
                      {"survey": dict(answer), "survey_at": now}, owes=SURVEY_OUTBOX)
    if event == NOTIFY:
        return Change(event, (_is(status),), owes=owes) if owes else None  # never writes a deleted item again
    if event == BOUNCED:
        marked = BOUNCE_MARKS.index(reg.mail_bounce) if reg.mail_bounce in BOUNCE_MARKS else -1
        if bounce not in BOUNCE_MARKS or BOUNCE_MARKS.index(bounce) <= marked:
            return None
        return Change(event, (Condition("id", "==", reg.id), *_unchanged(reg, "mail_bounce")),
                      {"mail_bounced_at": now, "mail_bounce": bounce})
    raise ValueError(f"unknown event {event!r}")


def extension_refusal(extensions_used: int, extension_max: int, waitlist_length: int) -> str | None:
    """Why an extension is refused, or None when it is allowed."""
    if extension_max <= 0:
        return N_("This workshop cannot be extended.")
    if extensions_used >= extension_max:
        return N_("You have already used the %(count)s extension(s) this workshop allows.", count=extension_max)
    if waitlist_length > 0:
        return N_("People are waiting for a seat in this workshop, so it cannot be extended.")
    return None


def badge_level(finished_workshops: int, levels: tuple[int, ...]) -> int | None:
    """The level reached exactly now (3, 5, 7, ...), or None."""
    return finished_workshops if finished_workshops in levels else None
