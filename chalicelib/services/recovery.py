"""What a restarted local stack picks up again (docs/architecture.md, "Local mode and AWS").

On AWS nothing here is needed: Step Functions executions and ECS appliances outlive every
function. The local stack keeps its executions in moto's memory and runs appliances as its own
child processes; its tables come back from disk, but a stack that was killed comes back without
the workflows of the registrations it was provisioning and without the appliances of its
active participants. Left alone, the time checks would fail those registrations as stuck, seat
lost. Three steps, each at its moment of the start:

1. :func:`hold_provisioning`, as soon as the tables answer and before the first time check:
   every registration in flight (the ``due`` index, phase ``provisioning``) gets a new stuck
   deadline, ``stuck_minutes`` from now, so that check does not fail it meanwhile.
2. :func:`redrive_provisioning`, once the hub, the mail, the task workers and the app answer:
   each of them owes its CREATE order again and gets a new deadline, in one conditional write
   through the outbox; then the outbox delivers it. The order's workflow is
   ``<registration>-CREATE``: after a restart moto has no execution of that name, so it runs
   again from the start, and its tasks are safe to repeat (Prepare accepts a registration
   already provisioning, CreateHubUser makes the student's user afresh). Should that execution
   still exist, the start is a harmless duplicate (``adapters/workflows``).
3. :func:`restart_appliances`, in the process whose ``ctx.appliances`` the provisioning and
   cleanup tasks use (local appliances are that process's children): every active registration
   whose workshop has an appliance gets it started again.

:func:`recover` does 1 to 3 at once, for a stack that runs all of that in one process.

Safe to run twice: a registration that moved on is skipped (the writes are conditional), an
order that is already owed is not owed twice, a running appliance is not started again. A
crash during recovery loses nothing: what is owed is in the outbox, which the next run (or the
time checks) delivers.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

from chalicelib.domain.errors import NotFound, Unavailable, WodError
from chalicelib.domain.lifecycle import DUE_ACTIVE, DUE_PROVISIONING, IN_FLIGHT, REDRIVE
from chalicelib.domain.outbox import Entry, order
from chalicelib.domain.registration import ACTIVE
from chalicelib.domain.values import Registration, Workshop
from chalicelib.observability import logger
from chalicelib.services.commit import commit
from chalicelib.services.context import Context
from chalicelib.services.provisioning import appliance_of

PARALLEL = 8  # registrations re-ordered at once
REDRIVE_ATTEMPTS = 5


def _hold(ctx: Context, registration_id: str, deadline: datetime, owes: tuple[Entry, ...] = ()) -> Registration | None:
    """Provisioning whose workflow was lost: give it until ``deadline`` before the time checks call
    it stuck and, with ``owes``, owe its order again (unless the outbox holds it already). Read
    again after a concurrent change; None when it is no longer in flight."""
    for _ in range(REDRIVE_ATTEMPTS):
        try:
            reg = ctx.stores.registrations.get(registration_id)
        except NotFound:
            return None
        if reg.status not in IN_FLIGHT or reg.due_state != DUE_PROVISIONING:
            return None
        done = commit(ctx, reg, REDRIVE, deadline=deadline, owes=owes)
        if done is not None:
            return done
    raise Unavailable(f"registration {registration_id} keeps changing; its recovery is left to a later run")


def _redrive(ctx: Context, registration_id: str, deadline: datetime) -> str:
    """Order one registration's provisioning again: ``redriven``, ``skipped`` or ``error``."""
    try:
        reg = _hold(ctx, registration_id, deadline, (order("CREATE"),))
        if reg is None:
            return "skipped"  # active, failed or cancelled meanwhile
    except WodError as exc:  # the next run, or the time checks, take it from there
        logger.warning("provisioning not re-ordered", extra={"registration": registration_id, "error": exc.message})
        return "error"
    logger.info("provisioning re-ordered after a restart", extra={
        "registration": reg.id, "student": reg.student_id, "workshop": reg.workshop_id,
        "deadline": deadline.isoformat()})
    return "redriven"


def hold_provisioning(ctx: Context) -> int:
    """Give every registration in flight a new stuck deadline, ``stuck_minutes`` from now, and
    nothing else: run before the restarted stack's first time check (its hub may not answer yet,
    so nothing can be ordered), it keeps that check from failing, as stuck, provisioning that
    :func:`redrive_provisioning` is about to order again. Returns how many."""
    deadline = ctx.clock() + timedelta(minutes=ctx.settings.stuck_minutes)
    held = 0
    for registration_id in ctx.stores.registrations.in_phase(DUE_PROVISIONING):
        try:
            held += _hold(ctx, registration_id, deadline) is not None
        except WodError as exc:
            logger.warning("stuck deadline not moved", extra={"registration": registration_id, "error": exc.message})
    if held:
        logger.info("provisioning held for recovery", extra={"registrations": held, "deadline": deadline.isoformat()})
    return held


def redrive_provisioning(ctx: Context) -> tuple[int, int]:
    """Order again the provisioning of every registration in flight, a few at a time (each order
    is a round trip through the mail and the order intake); (re-ordered, errors)."""
    deadline = ctx.clock() + timedelta(minutes=ctx.settings.stuck_minutes)
    ids = ctx.stores.registrations.in_phase(DUE_PROVISIONING)
    if not ids:
        return 0, 0
    with ThreadPoolExecutor(max_workers=min(PARALLEL, len(ids)), thread_name_prefix="recovery") as pool:
        outcomes = list(pool.map(lambda registration_id: _redrive(ctx, registration_id, deadline), ids))
    return outcomes.count("redriven"), outcomes.count("error")


def restart_appliances(ctx: Context) -> tuple[int, int]:
    """Start again the appliance of every active participant whose workshop has one; (started, errors)."""
    workshops: dict[str, Workshop] = {}
    started = errors = 0
    for registration_id in ctx.stores.registrations.in_phase(DUE_ACTIVE):
        try:
            reg = ctx.stores.registrations.get(registration_id)
            if reg.status != ACTIVE or not reg.student_id:
                continue
            if reg.workshop_id not in workshops:
                workshops[reg.workshop_id] = ctx.stores.seats.get_workshop(reg.workshop_id)
            appliance = appliance_of(workshops[reg.workshop_id], reg.student_id)
            if appliance is None:
                continue
            ctx.appliances.start(reg.workshop_id, reg.student_id, *appliance)
        except WodError as exc:
            errors += 1
            logger.warning("appliance not restarted", extra={"registration": registration_id, "error": exc.message})
            continue
        started += 1
        logger.info("appliance restarted", extra={"registration": reg.id, "student": reg.student_id,
                                                  "workshop": reg.workshop_id})
    return started, errors


def recover(ctx: Context) -> dict[str, int]:
    """Drive again what a killed local stack left in flight (all three steps, for a stack whose
    hub, mail and app already answer); the counts of what was done."""
    redriven, redrive_errors = redrive_provisioning(ctx)
    appliances, appliance_errors = restart_appliances(ctx)
    counts = {"provisioning_redriven": redriven, "appliances_started": appliances,
              "errors": redrive_errors + appliance_errors}
    logger.info("recovery", extra=counts)
    return counts
