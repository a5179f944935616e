"""What the organiser reads: the record of a registration (the admin API, the CSV and the webhooks
send it), registrations filtered, counted per hour, completion per workshop, the dashboard's figures, CSV."""
from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from chalicelib.domain import survey
from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.organiser import whole_number
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
    is_workshop_id,
)
from chalicelib.domain.values import Registration

# -- the organiser's record of a registration (API, CSV, webhooks) ------------------------------------

def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _number(value: Any) -> int | None:
    return int(value) if value is not None else None


def _count(value: Any) -> int:
    return int(value or 0)


def _share(value: Any) -> float | None:
    return float(value) if value is not None else None


def _same(value: Any) -> Any:
    return value


# The record's columns, in order: (column, the registration's field, how it is written). A field
# whose writer gives a dict of columns, None included, is spread over those columns (the survey's
# answer: domain/survey.py); any other value, a dict too, is one column.
RECORD_COLUMNS: tuple[tuple[str, str, Callable[[Any], Any]], ...] = (
    ("id", "id", _same), ("status", "status", _same), ("workshop", "workshop_id", _same),
    ("student", "student_id", _same), ("email", "email", _same), ("first_name", "first_name", _same),
    ("last_name", "last_name", _same), ("company", "company", _same), ("created_at", "created_at", iso),
    ("started_at", "started_at", iso), ("ends_at", "ends_at", iso), ("finished_at", "finished_at", iso),
    ("extensions_used", "extensions_used", _count), ("completion", "completion", _share),
    ("checks_passed", "checks_passed", _number), ("failure", "failure", _same), ("survey", "survey", survey.columns),
    ("survey_at", "survey_at", iso), ("confirmed_at", "confirmed_at", iso), ("waitlisted_at", "waitlisted_at", iso),
    ("promoted_at", "promoted_at", iso), ("first_seen_at", "first_seen_at", iso),
    ("delivery_error", "outbox_error", _same), ("ordered_at", "ordered_at", iso),
    ("badge_earned", "badge_earned", _same), ("language", "language", _same),
    ("mail_bounced_at", "mail_bounced_at", iso), ("mail_bounce", "mail_bounce", _same),
)
RECORD_FIELDS: tuple[str, ...] = tuple(name for _, name, _ in RECORD_COLUMNS)  # what a listing reads


SPREAD = frozenset(column for column, _, write in RECORD_COLUMNS  # writers of the columns they name, even for None
                   if isinstance(write(None), dict) and write(None))
RECORD_HEADER: tuple[str, ...] = tuple(  # the record's keys in order: the CSV's header
    name for column, _, write in RECORD_COLUMNS for name in (write(None) if column in SPREAD else (column,)))


def registration_record(reg: Registration) -> dict[str, Any]:
    """A registration as the organiser (API, CSV, webhooks) sees it: personal data, never a password."""
    record: dict[str, Any] = {}
    for column, name, write in RECORD_COLUMNS:
        value = write(getattr(reg, name))
        if column in SPREAD:
            record.update(value)
        else:
            record[column] = value
    return record


STATUSES = (UNCONFIRMED, WAITLISTED, PENDING, PROVISIONING, ACTIVE, EXPIRING, FINISHED, FAILED, CANCELLED, EXPIRED)
CSV_COLUMNS = RECORD_HEADER  # every column of the organiser's record
QUERY_MAX = 100
LIMIT_MAX = 1000
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
SEARCHED = ("id", "email", "first_name", "last_name", "company", "student", "workshop")


def search_filter(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """``q`` (text), ``status``, ``workshop``, ``limit`` from a query string, checked."""
    params = params or {}
    errors: dict[str, str] = {}
    q = params.get("q") or ""
    if len(q) > QUERY_MAX:
        errors["q"] = f"At most {QUERY_MAX} characters."
    status = params.get("status") or None
    if status is not None and status not in STATUSES:
        errors["status"] = f"One of: {', '.join(STATUSES)}."
    workshop = params.get("workshop") or None
    if workshop is not None and not is_workshop_id(workshop):
        errors["workshop"] = "A workshop id such as WKSHP-API101."
    limit = whole_number(params.get("limit") or "200", 1, LIMIT_MAX)
    if limit is None:
        errors["limit"] = f"A number from 1 to {LIMIT_MAX}."
    if errors:
        raise InvalidInput(errors, "The search is not valid.")
    return {"q": " ".join(q.split()).casefold(), "status": status, "workshop": workshop, "limit": limit}


def matches(record: Mapping[str, Any], search: Mapping[str, Any]) -> bool:
    if search["status"] and record["status"] != search["status"]:
        return False
    if search["workshop"] and record["workshop"] != search["workshop"]:
        return False
    if not search["q"]:
        return True
    text = " ".join(str(record.get(name) or "") for name in SEARCHED)
    full_name = f"{record.get('first_name', '')} {record.get('last_name', '')}"
    return search["q"] in f"{text} {full_name}".casefold()


def newest_first(records: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return sorted(records, key=lambda r: r["created_at"] or "", reverse=True)


def per_hour(created: Iterable[datetime], now: datetime, hours: int = 24) -> list[tuple[datetime, int]]:
    """Registrations in each of the last ``hours`` whole hours, the current one last."""
    end = now.replace(minute=0, second=0, microsecond=0)
    starts = [end - timedelta(hours=n) for n in range(hours - 1, -1, -1)]
    counts = Counter(t.replace(minute=0, second=0, microsecond=0) for t in created if t >= starts[0])
    return [(start, counts.get(start, 0)) for start in starts]


def completion_by_workshop(records: Iterable[Mapping[str, Any]]) -> dict[str, tuple[float, int]]:
    """Mean completion (%) and how many finished, per workshop, over finished registrations."""
    seen: dict[str, list[float]] = {}
    for record in records:
        if record["status"] == FINISHED and record.get("completion") is not None:
            seen.setdefault(record["workshop"], []).append(float(record["completion"]))
    return {workshop: (round(sum(values) / len(values), 1), len(values)) for workshop, values in seen.items()}


def dashboard(records: Sequence[Mapping[str, Any]], workshops: Sequence[Mapping[str, Any]], now: datetime,
              hours: int = 24) -> dict[str, Any]:
    """What the dashboard draws from the records: registrations per hour, completion and survey
    answers per workshop (``workshops``: the listed ones, which give the titles)."""
    titles = {w["id"]: w["title"] for w in workshops}
    created = [datetime.fromisoformat(r["created_at"]) for r in records if r["created_at"]]
    return {
        "workshops": workshops,
        "registrations_per_hour": [{"hour": start.isoformat(), "count": n}
                                   for start, n in per_hour(created, now, hours)],
        "completion": [{"workshop": w, "title": titles.get(w, w), "average": avg, "finished": n}
                       for w, (avg, n) in sorted(completion_by_workshop(records).items())],
        "registrations": len(records),
        "survey": [{"workshop": w, "title": titles.get(w, w), **figures}
                   for w, figures in sorted(survey.by_workshop(records).items())],
    }


def spreadsheet_cell(value: Any) -> str:
    """Text for a spreadsheet: a cell that would start a formula is prefixed with a quote."""
    if isinstance(value, dict):
        value = json.dumps(value, ensure_ascii=False, sort_keys=True)
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def to_csv(records: Iterable[Mapping[str, Any]]) -> str:
    """UTF-8 CSV with a byte-order mark (spreadsheets then read accents right), RFC 4180 quoting."""
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for record in records:
        writer.writerow([spreadsheet_cell(record.get(column)) for column in CSV_COLUMNS])
    return out.getvalue()
