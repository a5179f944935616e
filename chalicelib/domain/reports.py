"""What the organiser reads: registrations filtered, counted per hour, completion per workshop, CSV."""
from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.organiser import RECORD_HEADER, whole_number
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
