"""How many servers a workshop keeps warm (chalicelib/domain/warming.py)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from chalicelib.domain.values import Workshop
from chalicelib.domain.warming import warm_target

NOW = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
LEAD, DRAIN = timedelta(minutes=15), timedelta(minutes=30)


def workshop(**fields) -> Workshop:
    return Workshop("WKSHP-W", **{"seats_total": 100, "seats_free": 100, **fields})


def test_the_folders_pool_alone_without_an_expected_turnout():
    assert warm_target(workshop(warm_pool=3), NOW, LEAD, DRAIN) == 3


def test_an_expected_turnout_without_a_start_is_warmed_at_once_less_the_seats_taken():
    assert warm_target(workshop(expected=60, seats_free=80), NOW, LEAD, DRAIN) == 40


def test_around_a_scheduled_start_only():
    shaped = workshop(expected=50, warm_pool=2, starts_at=NOW)
    assert warm_target(shaped, NOW - LEAD - timedelta(seconds=1), LEAD, DRAIN) == 2
    assert warm_target(shaped, NOW - LEAD, LEAD, DRAIN) == 50
    assert warm_target(shaped, NOW + DRAIN - timedelta(seconds=1), LEAD, DRAIN) == 50
    assert warm_target(shaped, NOW + DRAIN, LEAD, DRAIN) == 2


def test_never_more_than_the_free_seats_nor_less_than_none():
    assert warm_target(workshop(expected=50, seats_total=20, seats_free=10), NOW, LEAD, DRAIN) == 10
    assert warm_target(workshop(expected=5, seats_free=0, warm_pool=3), NOW, LEAD, DRAIN) == 0
