"""Statutory deadlines per jurisdiction: months and month ends, days, weekends, extensions,
paused time, and CCPA's acknowledgement in business days."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from apps.privacy.deadlines import acknowledgement_due, add_months, due_date


@pytest.mark.parametrize(
    "received, due",
    [
        (date(2026, 3, 10), date(2026, 4, 10)),  # Friday: same date next month
        (date(2026, 1, 31), date(2026, 3, 2)),  # 28 Feb 2026 is a Saturday: Monday 2 March
        (date(2028, 1, 31), date(2028, 2, 29)),  # leap year: the month's last day, a Tuesday
        (date(2026, 10, 31), date(2026, 11, 30)),  # no 31 November: the 30th, a Monday
        (date(2026, 12, 14), date(2027, 1, 14)),  # across the year
        (date(2026, 4, 4), date(2026, 5, 4)),  # received on a Saturday: counted all the same
        (date(2026, 7, 17), date(2026, 8, 17)),  # 17 August 2026 is a Monday
        (date(2026, 10, 24), date(2026, 11, 24)),
        (date(2026, 9, 26), date(2026, 10, 26)),  # 26 October 2026 is a Monday
        (date(2026, 2, 28), date(2026, 3, 30)),  # 28 March is a Saturday: Monday 30 March
    ],
)
def test_gdpr_is_one_calendar_month_moved_past_weekends(received, due):
    assert due_date("gdpr", received) == due


def test_gdpr_extension_is_two_more_months_from_receipt():
    assert due_date("gdpr", date(2026, 11, 30), extended=True) == date(2027, 3, 1)  # Feb 28 Sun
    assert add_months(date(2026, 11, 30), 3) == date(2027, 2, 28)


@pytest.mark.parametrize(
    "jurisdiction, received, due, extended_due",
    [
        ("pipeda", date(2026, 11, 2), date(2026, 12, 2), date(2027, 1, 1)),
        ("pdpl", date(2026, 11, 5), date(2026, 12, 7), date(2027, 1, 4)),  # Dec 5 Sat; Jan 4 Mon
        ("ccpa", date(2026, 11, 23), date(2027, 1, 7), date(2027, 2, 22)),  # Feb 21 is a Sunday
    ],
)
def test_day_based_jurisdictions_and_their_extensions(jurisdiction, received, due, extended_due):
    assert due_date(jurisdiction, received) == due
    assert due_date(jurisdiction, received, extended=True) == extended_due


def test_paused_time_is_added_back_in_whole_days():
    base = due_date("gdpr", date(2026, 3, 9))  # Thursday 9 April
    assert due_date("gdpr", date(2026, 3, 9), paused=timedelta(hours=1)) == base + timedelta(1)
    assert due_date("gdpr", date(2026, 3, 10), paused=timedelta(days=3)) == date(2026, 4, 13)


def test_ccpa_acknowledgement_is_due_within_ten_business_days():
    assert acknowledgement_due("ccpa", date(2026, 11, 23)) == date(2026, 12, 7)
    assert acknowledgement_due("gdpr", date(2026, 11, 23)) is None
