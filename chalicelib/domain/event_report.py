"""The event report: how a workshop's event went, from its registrations' records (as
:func:`chalicelib.domain.reports.registration_record` gives them), for a date range.

Figures: registrations; the confirmation rate; seated, waitlisted, promoted; who showed up (their
notebook reported at least once); the time from registration (or confirmation, or promotion, or a
scheduled session's order: when the platform could act) to the credentials and to the first
notebook event, p50/p95; how far participants got (checks passed, or completion where the
workshop has no checks); completion and badges; the survey; failures by reason; mail: the
registrations whose mail bounced (SES's bounces, permanent or transient), that complained, and whose
mail is still undelivered. Pure: the service reads, this counts.
"""
from __future__ import annotations

import csv
import io
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from chalicelib.domain import survey
from chalicelib.domain.checks import earned
from chalicelib.domain.errors import InvalidInput
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
from chalicelib.domain.reports import spreadsheet_cell

SEATED = (PENDING, PROVISIONING, ACTIVE, EXPIRING, FINISHED, FAILED)
RAN = (ACTIVE, EXPIRING, FINISHED)
BUCKETS = ((0, 0, "0 %"), (1, 25, "1–25 %"), (26, 50, "26–50 %"), (51, 75, "51–75 %"), (76, 99, "76–99 %"),
           (100, 100, "100 %"))
MAX_DAYS = 366
REASON_MAX = 120


def _day(value: Any, field: str) -> date | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str) or len(value) != 10:
        raise InvalidInput({field: "a date as YYYY-MM-DD"})
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInput({field: "a date as YYYY-MM-DD"}) from None


def date_range(params: Mapping[str, Any] | None) -> tuple[datetime | None, datetime | None]:
    """``from`` and ``to`` (days, both included, UTC) of a query string, checked; either may be left out."""
    params = params or {}
    first, last = _day(params.get("from"), "from"), _day(params.get("to"), "to")
    if first and last and last < first:
        raise InvalidInput({"to": "the last day comes on or after the first"})
    if first and last and (last - first).days > MAX_DAYS:
        raise InvalidInput({"to": f"at most {MAX_DAYS} days after the first"})
    start = datetime.combine(first, time(), UTC) if first else None
    if last is not None and last >= date.max:
        raise InvalidInput({"to": "a date before 9999-12-31"})
    end = datetime.combine(last + timedelta(days=1), time(), UTC) if last else None
    return start, end


def _at(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def _rate(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 1) if whole else None


def _timing(seconds: list[float]) -> dict[str, Any]:
    p50, p95 = percentile(seconds, 50), percentile(seconds, 95)
    return {"n": len(seconds), "p50": round(p50, 1) if p50 is not None else None,
            "p95": round(p95, 1) if p95 is not None else None}


def _reason(text: Any) -> str:
    line = (str(text or "").strip().splitlines() or ["no reason given"])[0]
    return line[:REASON_MAX] or "no reason given"


def build(workshop: Mapping[str, Any], records: Iterable[Mapping[str, Any]], now: datetime,
          start: datetime | None = None, end: datetime | None = None,
          live: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """The report of ``workshop`` (``id``, ``title``, ``checks``) over the registrations created in
    [start, end). ``live``: what the notebooks of participants still in their workshop reported so
    far, per registration (``first``: a datetime, ``checks``: how many passed), for a report made
    before the end."""
    live = live or {}
    rows = []
    for r in records:
        created = _at(r.get("created_at"))
        if r.get("workshop") != workshop["id"] or created is None:
            continue
        if (start and created < start) or (end and created >= end):
            continue
        rows.append((r, created))
    status = Counter(r["status"] for r, _ in rows)
    confirmed = sum(1 for r, _ in rows if r.get("confirmed_at"))
    expired = sum(1 for r, _ in rows if r["status"] == EXPIRED)
    asked = confirmed + expired + status[UNCONFIRMED]
    seated = sum(1 for r, _ in rows if r["status"] in SEATED)
    started = [(r, c) for r, c in rows if r.get("started_at")]
    to_credentials, to_first, seen = [], [], 0
    for r, created in started:
        origin = _at(r.get("ordered_at")) or _at(r.get("promoted_at")) or _at(r.get("confirmed_at")) or created
        credentials = _at(r["started_at"])
        first = _at(r.get("first_seen_at")) or _at((live.get(r["id"]) or {}).get("first"))
        if credentials:
            to_credentials.append(max(0.0, (credentials - origin).total_seconds()))
        if first:
            seen += 1
            to_first.append(max(0.0, (first - origin).total_seconds()))
    checks = int(workshop.get("checks") or 0)
    ran = [r for r, _ in rows if r["status"] in RAN]
    finished = [r for r in ran if r["status"] == FINISHED]
    completions = [float(r["completion"]) for r in finished if r.get("completion") is not None]
    if checks:
        passed = [int(r["checks_passed"]) if r.get("checks_passed") is not None
                  else int((live.get(r["id"]) or {}).get("checks") or 0) for r in ran]
        progress = [{"label": f"{k} of {checks} checks passed" if k < checks else f"all {checks} checks passed",
                     "count": sum(1 for n in passed if n >= k), "percent": _rate(sum(1 for n in passed if n >= k),
                                                                                len(passed))}
                    for k in range(1, checks + 1)]
    else:
        progress = [{"label": label, "count": n, "percent": _rate(n, len(completions))}
                    for low, high, label in BUCKETS
                    for n in [sum(1 for c in completions if low <= round(c) <= high)]]
    badges = sum(1 for r in finished if earned(r.get("badge_earned"), checks, r.get("completion"),
                                                r.get("checks_passed")))
    answers = survey.answers_in(r for r, _ in rows)
    failures = Counter(_reason(r.get("failure")) for r, _ in rows if r["status"] == FAILED)
    per_day = Counter(c.date() for _, c in rows)
    return {
        "workshop": {"id": workshop["id"], "title": workshop.get("title") or workshop["id"], "checks": checks},
        "from": start.isoformat() if start else None, "to": end.isoformat() if end else None,
        "generated_at": now.isoformat(),
        "registrations": len(rows),
        "statuses": {s: status[s] for s in sorted(status)},
        "confirmation": {"asked": asked, "confirmed": confirmed, "expired": expired, "waiting": status[UNCONFIRMED],
                         "rate": _rate(confirmed, confirmed + expired)},
        "seats": {"seated": seated, "waitlisted": sum(1 for r, _ in rows if r.get("waitlisted_at")
                                                      or r["status"] == WAITLISTED),
                  "promoted": sum(1 for r, _ in rows if r.get("promoted_at")),
                  "left_waitlist": status[CANCELLED], "still_waiting": status[WAITLISTED]},
        "showed_up": {"count": seen, "of": len(started), "rate": _rate(seen, len(started))},
        "seconds_to_credentials": _timing(to_credentials),
        "seconds_to_first_activity": _timing(to_first),
        "progress": progress,
        "completion": {"finished": len(finished),
                       "average": round(sum(completions) / len(completions), 1) if completions else None,
                       "badges": badges, "from_checks": bool(checks)},
        "survey": survey.summary(answers),
        "failures": [{"reason": reason, "count": n} for reason, n in failures.most_common()],
        "mail": {"bounced": sum(1 for r, _ in rows if r.get("mail_bounce") in ("permanent", "transient")),
                 "complaints": sum(1 for r, _ in rows if r.get("mail_bounce") == "complaint"),
                 "undelivered": sum(1 for r, _ in rows if r.get("delivery_error"))},
        "per_day": [{"day": d.isoformat(), "count": per_day[d]} for d in _days(per_day)],
    }


def _days(counted: Counter) -> list[date]:
    """Every day from the first registration's to the last's (the last :data:`MAX_DAYS` of them)."""
    if not counted:
        return []
    first, last = min(counted), max(counted)
    first = max(first, last - timedelta(days=MAX_DAYS))
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def to_csv(report: Mapping[str, Any]) -> str:
    """The report's figures as ``section,figure,value`` rows (comments are left to the JSON)."""
    rows: list[tuple[str, str, Any]] = [("workshop", "id", report["workshop"]["id"]),
                                         ("workshop", "title", report["workshop"]["title"]),
                                         ("range", "from", report["from"]), ("range", "to", report["to"]),
                                         ("registrations", "total", report["registrations"])]
    for section in ("statuses", "confirmation", "seats", "showed_up", "seconds_to_credentials",
                    "seconds_to_first_activity", "completion"):
        rows += [(section, name, value) for name, value in report[section].items()]
    rows += [("progress", p["label"], p["count"]) for p in report["progress"]]
    summary = report["survey"]
    rows += [("survey", "answers", summary["answers"]), ("survey", "rating", summary["rating"]),
             ("survey", "recommend %", summary["recommend"])]
    rows += [("survey", f"rating {k}", n) for k, n in summary["ratings"].items()]
    rows += [("survey", f"pace {k}", n) for k, n in summary["pace"].items()]
    rows += [("failures", f["reason"], f["count"]) for f in report["failures"]]
    rows += [("mail", name, value) for name, value in report["mail"].items()]
    rows += [("per_day", d["day"], d["count"]) for d in report["per_day"]]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(("section", "figure", "value"))
    writer.writerows((spreadsheet_cell(a), spreadsheet_cell(b), spreadsheet_cell(c)) for a, b, c in rows)
    return out.getvalue()


def due(workshop: Mapping[str, Any], now: datetime, delay: timedelta) -> bool:
    """Whether the event report of ``workshop`` (``last_return_at``, ``report_sent_at``, seats and
    waitlist) is owed: every seat back and nobody waiting, the last seat back ``delay`` ago or more,
    and no report mailed since."""
    last = _at(workshop.get("last_return_at"))
    sent = _at(workshop.get("report_sent_at"))
    if last is None or last + delay > now or (sent is not None and sent >= last):
        return False
    return int(workshop.get("seats_free") or 0) >= int(workshop.get("seats_total") or 0) \
        and not workshop.get("waiting")
