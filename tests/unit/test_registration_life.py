"""A registration's life is decided in one pure function (``domain/lifecycle.decide``): every event
from every status either changes it as the life allows or does nothing; one store class writes
registrations, and one service step delivers what a change owes and refills the waitlist."""
from __future__ import annotations

import ast
import dataclasses
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from chalicelib.domain import lifecycle as life
from chalicelib.domain.outbox import level, mail, order, webhook
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
)
from chalicelib.domain.values import Registration

NOW = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
RULES = life.Rules(stuck_after=timedelta(minutes=10), reminder=timedelta(minutes=60),
                   cleanup_retry=timedelta(minutes=5), badge_levels=(3, 5))
STATUSES = (UNCONFIRMED, EXPIRED, WAITLISTED, PENDING, PROVISIONING, ACTIVE, EXPIRING, FINISHED, FAILED, CANCELLED)
ROOT = Path(__file__).resolve().parents[2]


def reg(status: str, **fields) -> Registration:
    base = {"student_id": "s-1", "workshop_id": "WKSHP-A", "created_at": NOW - timedelta(hours=1)}
    if status == UNCONFIRMED:
        base.update(confirm_by=NOW + timedelta(minutes=5), due_state=life.DUE_CONFIRMING)
    if status in (PENDING, PROVISIONING):
        base.update(due_state=life.DUE_PROVISIONING, due_at=NOW + timedelta(minutes=3))
    if status == ACTIVE:
        base.update(started_at=NOW - timedelta(minutes=30), ends_at=NOW + timedelta(minutes=90),
                    due_state=life.DUE_ACTIVE, due_at=NOW + timedelta(minutes=30))
    if status in (EXPIRING,):
        base.update(due_state=life.DUE_CLEANING, due_at=NOW)
    if status == WAITLISTED:
        base.update(student_id=None, waitlist_seq=4, waitlist_workshop="WKSHP-A")
    base.update(fields)
    return Registration("r-1", status=status, **base)


DETAILS = {life.PROVISIONED: {"duration": timedelta(minutes=120)}, life.REDRIVE: {"deadline": NOW},
           life.NOTIFY: {"owes": (mail("already"),)}, life.EXTEND: {"minutes": 30},
           life.BOUNCED: {"bounce": "permanent"}}

# event -> the statuses it applies to, and the status it leads to (None: unchanged)
ALLOWED = {
    life.CONFIRM: ({UNCONFIRMED}, PENDING),
    life.PROGRESS: ({PENDING, PROVISIONING}, PROVISIONING),
    life.REDRIVE: ({PENDING, PROVISIONING}, None),
    life.PROVISIONED: ({PENDING, PROVISIONING}, ACTIVE),
    life.RELEASE: ({PENDING, PROVISIONING}, FAILED),
    life.FAIL: ({PENDING, PROVISIONING, ACTIVE}, FAILED),
    life.REMIND: ({ACTIVE}, None),
    life.EXTEND: ({ACTIVE}, None),
    life.RESET: ({ACTIVE}, None),
    life.END: ({ACTIVE}, EXPIRING),
    life.RETRY_CLEANUP: ({EXPIRING}, None),
    life.FINISH: ({EXPIRING}, FINISHED),
    life.LEAVE: ({WAITLISTED}, CANCELLED),
    life.NOTIFY: (set(STATUSES), None),
    life.BOUNCED: (set(STATUSES), None),
}


@pytest.mark.parametrize("event", list(ALLOWED))
@pytest.mark.parametrize("status", STATUSES)
def test_each_event_changes_only_the_statuses_it_applies_to(event, status):
    allowed, leads_to = ALLOWED[event]
    change = life.decide(reg(status), event, NOW, RULES, **DETAILS.get(event, {}))
    if status not in allowed:
        assert change is None, f"{event} must not change a {status} registration"
        return
    assert change is not None and change.event == event
    assert change.status == leads_to
    assert change.applies_to(reg(status)), "a change holds for the registration it was decided on"


def test_a_change_is_conditional_on_what_was_read():
    running = reg(ACTIVE)
    extend = life.decide(running, life.EXTEND, NOW, RULES, minutes=30)
    assert extend is not None
    assert extend.applies_to(running)
    assert not extend.applies_to(dataclasses.replace(running, ends_at=running.ends_at + timedelta(minutes=30)))
    assert not extend.applies_to(dataclasses.replace(running, status=EXPIRING))
    assert extend.set["ends_at"] == running.ends_at + timedelta(minutes=30)
    assert extend.add == {"extensions_used": 1, "extensions_total": 1}
    assert extend.owes == (mail("extended"), webhook("extended"))
    organisers = life.decide(running, life.EXTEND, NOW, RULES, minutes=30, counted=False)
    assert organisers.add == {"extensions_used": 0, "extensions_total": 1}


def test_a_hold_is_confirmed_before_its_time_and_released_after_it():
    hold = reg(UNCONFIRMED)
    assert life.decide(hold, life.HOLD_EXPIRED, NOW, RULES) is None
    confirmed = life.decide(hold, life.CONFIRM, NOW, RULES)
    assert confirmed.set["due_at"] == NOW + RULES.stuck_after and "confirm_by" in confirmed.remove
    assert confirmed.owes == life.SEATED_OUTBOX and confirmed.seat == life.KEEP
    late = NOW + timedelta(minutes=5)
    assert life.decide(hold, life.CONFIRM, late, RULES) is None
    released = life.decide(hold, life.HOLD_EXPIRED, late, RULES)
    assert released.status == EXPIRED and released.seat == life.RETURN_WARM and released.refill
    assert not released.applies_to(dataclasses.replace(hold, status=PENDING))
    place = reg(UNCONFIRMED, student_id=None, waitlist_seq=7)
    assert life.decide(place, life.HOLD_EXPIRED, late, RULES).seat == life.DROP_GUARD
    to_wait = life.decide(place, life.CONFIRM, NOW, RULES)
    assert to_wait.status == WAITLISTED and to_wait.owes == life.WAITLISTED_OUTBOX and to_wait.refill


def test_a_new_registration_is_a_hold_a_seat_or_a_place():
    new = Registration("r-2", workshop_id="WKSHP-A", student_id="s-2", created_at=NOW)
    hold = life.decide(new, life.REGISTER, NOW, RULES, confirm_by=NOW + timedelta(minutes=15))
    assert (hold.status, hold.seat, hold.owes) == (UNCONFIRMED, life.TAKE, life.CONFIRM_OUTBOX)
    seated = life.decide(new, life.REGISTER, NOW, RULES)
    assert (seated.status, seated.seat, seated.owes) == (PENDING, life.TAKE, life.SEATED_OUTBOX)
    place = life.decide(dataclasses.replace(new, student_id=None), life.REGISTER, NOW, RULES)
    assert (place.status, place.seat, place.set["waitlist_workshop"]) == (WAITLISTED, life.KEEP, "WKSHP-A")


def test_seats_come_back_with_what_each_ending_owes():
    failed = life.decide(reg(PROVISIONING), life.RELEASE, NOW, RULES, reason="x" * 900)
    assert failed.seat == life.RETURN and failed.refill and len(failed.set["failure"]) == 500
    assert failed.owes == life.FAILED_OUTBOX
    purged = life.decide(reg(ACTIVE), life.FAIL, NOW, RULES, cleanup="PURGE", reason="purged by an organiser")
    assert purged.owes[0] == order("PURGE") and purged.student == {"status": "cleaning", "expires_at": NOW}
    assert purged.set["failure"] == "purged by an organiser"  # shown to the organiser
    assert purged.seat == life.KEEP  # the seat comes back with the cleanup's report
    cleaning = reg(EXPIRING)
    third = life.decide(cleaning, life.FINISH, NOW, RULES, completion=80.0, finished_before=2)
    assert third.owes == (*life.FINISHED_OUTBOX, level(3)) and third.set["completion"] == 80.0
    assert life.decide(cleaning, life.FINISH, NOW, RULES, finished_before=None).owes == life.FINISHED_OUTBOX
    gone = life.decide(reg(FAILED, due_state=life.DUE_CLEANING), life.FINISH, NOW, RULES, finished_before=2)
    assert gone.status == FAILED and gone.owes == () and gone.seat == life.RETURN


def test_resets_and_cleanups_number_their_orders():
    running = reg(ACTIVE, resets_used=2)
    assert life.decide(running, life.RESET, NOW, RULES, scope="password").owes == (order("RESET", 3, "password"),)
    again = life.decide(reg(EXPIRING, cleanup_attempts=1), life.RETRY_CLEANUP, NOW, RULES)
    assert again.owes == (order("CLEANUP", 2),) and again.set["due_at"] == NOW + RULES.cleanup_retry


def test_a_redrive_owes_its_order_once_and_now():
    deadline = NOW + timedelta(minutes=10)
    waiting = reg(PENDING, outbox=(order("CREATE"),), outbox_due_at=NOW + timedelta(minutes=16))  # in backoff
    again = life.decide(waiting, life.REDRIVE, NOW, RULES, deadline=deadline, owes=(order("CREATE"),))
    assert again.owes == () and again.set["outbox_due_at"] == NOW and again.delivers
    assert again.set["due_at"] == deadline and again.applies_to(waiting)
    fresh = life.decide(reg(PENDING), life.REDRIVE, NOW, RULES, deadline=deadline, owes=(order("CREATE"),))
    assert fresh.owes == (order("CREATE"),) and fresh.delivers
    held = life.decide(reg(PENDING), life.REDRIVE, NOW, RULES, deadline=deadline)  # only the deadline moves
    assert held.set == {"due_at": deadline} and not held.delivers


def _calls(path: Path) -> set[str]:
    """Dotted names called in a module (``a.b.c(...)`` as ``a.b.c``)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            parts, target = [], node.func
            while isinstance(target, ast.Attribute):
                parts.append(target.attr)
                target = target.value
            if isinstance(target, ast.Name):
                parts.append(target.id)
            names.add(".".join(reversed(parts)))
    return names


def test_only_the_registrations_store_writes_a_registration_status():
    """Elsewhere in the store a registration's attributes are written only by the outbox, and only
    its delivery bookkeeping (``outbox*``)."""
    written = re.compile(r"RegistrationModel\.(\w+)\.(?:set|remove|add)\(")
    for path in sorted((ROOT / "chalicelib/store").glob("*.py")):
        text = path.read_text()
        if path.name == "registrations.py":
            assert "getattr(RegistrationModel, name).set(value)" in text  # every change is written here
            continue
        assert "RegistrationModel.status.set" not in text, f"{path.name} writes a registration's status"
        others = {name for name in written.findall(text) if not name.startswith("outbox")}
        assert others == set(), f"{path.name} writes registration attributes {sorted(others)}"
        if path.name != "outbox.py":
            assert not written.findall(text), f"{path.name} writes a registration"


def test_only_the_commit_step_delivers_a_change_or_promotes():
    for path in sorted((ROOT / "chalicelib").rglob("*.py")):
        if path.name == "commit.py":
            continue
        calls = _calls(path)
        assert not {c for c in calls if c.endswith("outbox.owed") or c == "owed"}, f"{path} delivers by hand"
        assert not {c for c in calls if c.endswith("promote_next")}, f"{path} promotes by hand"
        if path.name != "outbox.py":
            assert not {c for c in calls if c.endswith("outbox.deliver")}, f"{path} delivers by hand"


def test_a_seat_of_a_scheduled_session_is_ordered_shortly_before_it():
    rules = dataclasses.replace(RULES, schedule_lead=timedelta(minutes=10))
    later = NOW + timedelta(hours=2)
    seated = life.decide(reg(PENDING, due_state=None, due_at=None), life.REGISTER, NOW, rules, scheduled=later)
    assert seated.set == {"status": PENDING, "due_state": life.DUE_SCHEDULED, "due_at": later - timedelta(minutes=10)}
    assert seated.owes == (mail("welcome"), webhook("registered")) and seated.seat == life.TAKE
    near = life.decide(reg(PENDING), life.REGISTER, NOW, rules, scheduled=NOW + timedelta(minutes=9))
    assert near.set["due_state"] == life.DUE_PROVISIONING and order("CREATE") in near.owes
    past = life.decide(reg(PENDING), life.REGISTER, NOW, rules, scheduled=NOW - timedelta(hours=1))
    assert past.set["due_state"] == life.DUE_PROVISIONING
    confirmed = life.decide(reg(UNCONFIRMED), life.CONFIRM, NOW, rules, scheduled=later)
    assert confirmed.set["due_state"] == life.DUE_SCHEDULED and order("CREATE") not in confirmed.owes
    promoted = life.decide(reg(WAITLISTED, student_id="s-2"), life.PROMOTE, NOW, rules, scheduled=later)
    assert promoted.set["due_state"] == life.DUE_SCHEDULED and promoted.owes == (mail("promoted"),)

    waiting = reg(PENDING, due_state=life.DUE_SCHEDULED, due_at=NOW)
    start = life.decide(waiting, life.START, NOW, rules)
    assert start.set == {"due_state": life.DUE_PROVISIONING, "due_at": NOW + timedelta(minutes=10), "ordered_at": NOW}
    assert start.owes == (order("CREATE"),) and start.applies_to(waiting)
    assert not start.applies_to(dataclasses.replace(waiting, due_state=life.DUE_PROVISIONING))
    assert life.decide(reg(PENDING), life.START, NOW, rules) is None  # already provisioning
    assert life.decide(reg(ACTIVE), life.START, NOW, rules) is None
    assert life.decide(waiting, life.REDRIVE, NOW, rules, deadline=NOW, owes=(order("CREATE"),)) is None


def test_a_finish_keeps_whether_the_badge_was_earned_and_when_the_notebook_first_reported():
    done = life.decide(reg(EXPIRING), life.FINISH, NOW, RULES, completion=100.0, checks_passed=3, finished_before=0,
                       earned=True, first_seen=NOW - timedelta(minutes=50))
    assert done.set["badge_earned"] is True and done.set["first_seen_at"] == NOW - timedelta(minutes=50)
    failed = life.decide(reg(FAILED, due_state=life.DUE_CLEANING, due_at=NOW), life.FINISH, NOW, RULES, earned=False)
    assert "badge_earned" not in failed.set  # a session that failed earns nothing to keep


def test_a_bounce_marks_the_registration_once_and_only_ever_up():
    finished = reg(FINISHED)
    bounced = life.decide(finished, life.BOUNCED, NOW, RULES, bounce="transient")
    assert bounced.set == {"mail_bounced_at": NOW, "mail_bounce": "transient"}
    assert not bounced.owes and bounced.seat == life.KEEP and not bounced.remove and not bounced.delivers
    assert not bounced.applies_to(dataclasses.replace(finished, mail_bounce="transient"))
    marked = dataclasses.replace(finished, mail_bounce="transient", mail_bounced_at=NOW)
    assert life.decide(marked, life.BOUNCED, NOW, RULES, bounce="transient") is None  # SES repeats itself
    assert life.decide(marked, life.BOUNCED, NOW, RULES, bounce="permanent").set["mail_bounce"] == "permanent"
    complained = dataclasses.replace(finished, mail_bounce="complaint")
    assert life.decide(complained, life.BOUNCED, NOW, RULES, bounce="permanent") is None
    assert life.decide(finished, life.BOUNCED, NOW, RULES, bounce="soft") is None
