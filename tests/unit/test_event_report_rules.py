"""The event report's rules: the date range, when the report is owed, percentiles, the CSV."""
from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.domain import event_report
from chalicelib.domain.errors import InvalidInput

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def test_a_range_is_whole_utc_days_both_included():
    start, end = event_report.date_range({"from": "2026-11-30", "to": "2026-12-01"})
    assert start == datetime(2026, 11, 30, tzinfo=UTC) and end == datetime(2026, 12, 2, tzinfo=UTC)
    assert event_report.date_range({}) == (None, None)
    assert event_report.date_range({"from": ""}) == (None, None)


@pytest.mark.parametrize(("params", "field", "said"), [
    ({"from": "30/11/2026"}, "from", "YYYY-MM-DD"),
    ({"to": "2026-02-30"}, "to", "YYYY-MM-DD"),
    ({"from": ["2026-11-30"]}, "from", "YYYY-MM-DD"),
    ({"from": "2026-12-02", "to": "2026-12-01"}, "to", "on or after the first"),
    ({"from": "2024-01-01", "to": "2026-01-01"}, "to", "at most 366 days"),
])
def test_a_bad_range_names_its_field(params, field, said):
    with pytest.raises(InvalidInput) as caught:
        event_report.date_range(params)
    assert said in caught.value.fields[field]


def workshop(**fields):
    return {"last_return_at": NOW - 2 * HOUR, "report_sent_at": None, "seats_free": 3, "seats_total": 3,
            "waiting": 0} | fields


@pytest.mark.parametrize(("fields", "owed"), [
    ({}, True),
    ({"last_return_at": NOW - 59 * timedelta(minutes=1)}, False),  # not an hour yet
    ({"last_return_at": None}, False),  # no seat ever came back
    ({"seats_free": 2}, False),  # someone still sits
    ({"waiting": 1}, False),  # someone still waits
    ({"report_sent_at": NOW - HOUR}, False),  # mailed since the last seat came back
    ({"report_sent_at": NOW - 3 * HOUR}, True),  # mailed before: a new event since
])
def test_the_report_is_owed_once_after_the_event(fields, owed):
    assert event_report.due(workshop(**fields), NOW, HOUR) is owed


def test_percentiles_are_nearest_rank():
    assert event_report.percentile([], 50) is None
    assert event_report.percentile([3.0], 95) == 3.0
    values = [float(n) for n in range(1, 101)]
    assert event_report.percentile(values, 50) == 50.0 and event_report.percentile(values, 95) == 95.0


def record(n: int, **fields):
    return {"id": f"r{n}", "workshop": "WKSHP-A", "status": "finished", "created_at": NOW.isoformat(),
            "started_at": (NOW + timedelta(seconds=10 * n)).isoformat(), "completion": 100.0,
            "checks_passed": None} | fields


def test_without_checks_progress_is_completion_in_buckets_and_rates_have_no_empty_division():
    records = [record(1, completion=0.0), record(2, completion=30.0), record(3, completion=100.0),
               record(4, workshop="WKSHP-B"), record(5, created_at=(NOW - timedelta(days=3)).isoformat())]
    report = event_report.build({"id": "WKSHP-A", "title": "A", "checks": 0}, records, NOW,
                                start=NOW - timedelta(days=1))
    assert report["registrations"] == 3  # another workshop's and one before the range left out
    assert [(p["label"], p["count"]) for p in report["progress"]] == [
        ("0 %", 1), ("1–25 %", 0), ("26–50 %", 1), ("51–75 %", 0), ("76–99 %", 0), ("100 %", 1)]
    assert report["completion"]["badges"] == 2 and report["completion"]["from_checks"] is False  # who ran a cell
    assert report["confirmation"]["rate"] is None and report["showed_up"] == {"count": 0, "of": 3, "rate": 0.0}
    assert report["seconds_to_credentials"] == {"n": 3, "p50": 20.0, "p95": 30.0}


def test_live_figures_count_for_participants_still_in_their_seat():
    records = [record(1, status="active", checks_passed=None)]
    report = event_report.build({"id": "WKSHP-A", "title": "A", "checks": 3}, records, NOW,
                                live={"r1": {"first": NOW + timedelta(minutes=1), "checks": 2}})
    assert report["showed_up"]["count"] == 1
    assert report["seconds_to_first_activity"]["p50"] == 60.0
    assert [p["count"] for p in report["progress"]] == [1, 1, 0]


def test_the_csv_quotes_what_a_spreadsheet_would_run():
    records = [record(1, status="failed", failure="=HYPERLINK(\"http://evil\")\nsecond line")]
    report = event_report.build({"id": "WKSHP-A", "title": "@title", "checks": 0}, records, NOW)
    rows = list(csv.reader(io.StringIO(event_report.to_csv(report))))
    assert ["workshop", "title", "'@title"] in rows
    assert ["failures", "'=HYPERLINK(\"http://evil\")", "1"] in rows


def test_registrations_per_day_leave_no_day_out():
    records = [record(1), record(2, created_at=(NOW - timedelta(days=2)).isoformat())]
    report = event_report.build({"id": "WKSHP-A", "title": "A", "checks": 0}, records, NOW)
    assert report["per_day"] == [{"day": "2026-11-29", "count": 1}, {"day": "2026-11-30", "count": 0},
                                 {"day": "2026-12-01", "count": 1}]


def test_mail_counts_bounces_complaints_and_what_is_still_undelivered():
    records = [record(1, mail_bounce="permanent"), record(2, mail_bounce="transient"),
               record(3, mail_bounce="complaint"), record(4, delivery_error="SMTP relay refused the mail"),
               record(5, mail_bounce="permanent", workshop="WKSHP-B")]
    report = event_report.build({"id": "WKSHP-A", "title": "A", "checks": 0}, records, NOW)
    assert report["mail"] == {"bounced": 2, "complaints": 1, "undelivered": 1}
    rows = list(csv.reader(io.StringIO(event_report.to_csv(report))))
    assert [r for r in rows if r[0] == "mail"] == [["mail", "bounced", "2"], ["mail", "complaints", "1"],
                                                   ["mail", "undelivered", "1"]]
