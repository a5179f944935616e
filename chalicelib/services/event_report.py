"""The event report of a workshop (chalicelib/domain/event_report.py): on the dashboard, as CSV and
JSON, and mailed to the organisers (``WOD_REPORT_TO``) by the time checks once the event is over —
every seat back, nobody waiting, the last seat back an hour ago (``WOD_REPORT_DELAY_MINUTES``)."""
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from chalicelib.adapters import render
from chalicelib.domain import event_report
from chalicelib.domain.errors import NotFound, WodError
from chalicelib.domain.registration import is_workshop_id
from chalicelib.domain.values import Workshop
from chalicelib.observability import logger
from chalicelib.services import pacing
from chalicelib.services.context import Context


def _live(ctx: Context, workshop_id: str) -> dict[str, dict[str, Any]]:
    """What the notebooks of participants still in their seat reported: first event, checks passed."""
    found: dict[str, dict[str, Any]] = {}
    for seat in ctx.stores.organiser.students_of(workshop_id):
        live = seat.live or {}
        if seat.registration_id and live.get("registration") == seat.registration_id:
            first = live.get("first_event") or live.get("last_event")
            found[seat.registration_id] = {
                "first": datetime.fromisoformat(first) if isinstance(first, str) else None,
                "checks": sum(1 for passed in (live.get("checks") or {}).values() if passed is True)}
    return found


def _build(ctx: Context, workshop: Workshop, start: datetime | None, end: datetime | None) -> dict[str, Any]:
    return event_report.build({"id": workshop.id, "title": workshop.title, "checks": workshop.checks},
                              ctx.stores.organiser.all_registrations(), ctx.clock(), start, end,
                              _live(ctx, workshop.id))


def report(ctx: Context, workshop_id: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The report of ``workshop_id`` for the ``from``/``to`` days of ``params`` (checked)."""
    if not is_workshop_id(workshop_id):
        raise NotFound("There is no such workshop.")
    start, end = event_report.date_range(params)
    return _build(ctx, ctx.stores.seats.get_workshop(workshop_id), start, end)


def page_url(ctx: Context, workshop_id: str, start: datetime | None) -> str:
    query = urlencode({"from": start.date().isoformat()}) if start else ""
    return f"{ctx.settings.public_url}/admin/reports/{workshop_id}" + (f"?{query}" if query else "")


def send_due(ctx: Context) -> int:
    """Mail each owed event report once (the time checks): the registrations since the last report.
    Returns how many were sent; a failed send is given back to the next run."""
    to = ctx.settings.report_to
    if not to:
        return 0
    now, delay, sent = ctx.clock(), timedelta(minutes=ctx.settings.report_delay_minutes), 0
    try:
        owed = ctx.stores.organiser.reports_owed()
    except WodError as exc:
        logger.warning("event reports left for the next run", extra={"error": exc.message})
        return 0
    for workshop in owed:
        try:
            _, waiting = ctx.stores.organiser.seat_figures(workshop.id)
            if not event_report.due({"last_return_at": workshop.last_return_at,
                                     "report_sent_at": workshop.report_sent_at, "seats_free": workshop.seats_free,
                                     "seats_total": workshop.seats_total, "waiting": waiting}, now, delay):
                continue
            if not ctx.stores.organiser.mark_reported(workshop, now):
                continue  # another run mails it
            start = workshop.report_sent_at  # the event: what was registered since the last report
            figures = _build(ctx, workshop, start, None)
            url = page_url(ctx, workshop.id, start)
            try:
                for address in to:
                    pacing.send(ctx, render.email(
                        "report", to=address, subject=f"Event report: {figures['workshop']['title']}",
                        report=figures, report_url=url), urgent=True)
            except Exception:  # whatever stopped it, the next run tries again
                ctx.stores.organiser.unmark_reported(workshop, now)
                raise
            sent += 1
            logger.info("event report mailed",
                        extra={"workshop": workshop.id, "registrations": figures["registrations"], "to": len(to)})
        except WodError as exc:
            logger.warning("event report left for the next run", extra={"workshop": workshop.id, "error": exc.message})
        except Exception:  # one workshop's trouble must not stop the others' reports or the time checks
            logger.exception("event report failed; left for the next run", extra={"workshop": workshop.id})
    return sent
