"""Statutory deadlines of data subject requests, per jurisdiction. Pure: dates in, dates out.

| jurisdiction | answer within | one extension | also |
| --- | --- | --- | --- |
| GDPR | one month of receipt | + two months | |
| PIPEDA | 30 days | + 30 days | |
| PDPL | 30 days | + 30 days | |
| CCPA | 45 days | + 45 days | acknowledge within 10 business days |

Sources: GDPR Art. 12(3), with periods counted per Regulation (EEC, Euratom) No 1182/71; PIPEDA
s. 8(3) and 8(4)(a); the Saudi PDPL Implementing Regulation, Art. 4; Cal. Civ. Code
1798.130(a)(2) and CCPA Regulations 7021(a) (acknowledgement).

Counting rules, the same for every jurisdiction here:
- the day of receipt does not count; a period of days ends on the last day counted;
- a period of months ends on the same date in the later month, or on that month's last day when
  the date does not exist there (31 January + 1 month = 28 or 29 February);
- an extension runs from the receipt like the first period (GDPR: three months in all);
- a deadline that falls on a Saturday or Sunday moves to the following Monday. Public holidays
  are not modelled (they differ by member state and province): answer before a holiday deadline;
- time the request was paused (waiting on the subject) is added back, in whole days rounded up.
"""

from __future__ import annotations

import calendar
import math
from dataclasses import dataclass
from datetime import date, timedelta


@dataclass(frozen=True)
class Statute:
    code: str
    label: str
    months: int = 0
    days: int = 0
    extension_months: int = 0
    extension_days: int = 0
    acknowledge_business_days: int | None = None
    source: str = ""


STATUTES: dict[str, Statute] = {
    "gdpr": Statute(
        "gdpr",
        "GDPR (EU/EEA)",
        months=1,
        extension_months=2,
        source="GDPR Art. 12(3); Regulation (EEC, Euratom) No 1182/71",
    ),
    "pipeda": Statute(
        "pipeda", "PIPEDA (Canada)", days=30, extension_days=30, source="PIPEDA s. 8(3), 8(4)(a)"
    ),
    "pdpl": Statute(
        "pdpl",
        "PDPL (Saudi Arabia)",
        days=30,
        extension_days=30,
        source="PDPL Implementing Regulation Art. 4",
    ),
    "ccpa": Statute(
        "ccpa",
        "CCPA/CPRA (California)",
        days=45,
        extension_days=45,
        acknowledge_business_days=10,
        source="Cal. Civ. Code 1798.130(a)(2); CCPA Regulations 7021(a)",
    ),
}


def add_months(day: date, months: int) -> date:
    """The same date `months` later, or that month's last day when the date does not exist."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def past_weekend(day: date) -> date:
    """Saturday and Sunday move to the following Monday."""
    return day + timedelta(days=(7 - day.weekday()) % 7) if day.weekday() >= 5 else day


def add_business_days(day: date, count: int) -> date:
    while count > 0:
        day += timedelta(days=1)
        if day.weekday() < 5:
            count -= 1
    return day


def paused_days(paused: timedelta) -> int:
    return math.ceil(paused.total_seconds() / 86400) if paused > timedelta(0) else 0


def due_date(
    jurisdiction: str,
    received: date,
    *,
    extended: bool = False,
    paused: timedelta = timedelta(0),
) -> date:
    """The day by which the answer is due (inclusive)."""
    statute = STATUTES[jurisdiction]
    if statute.months:
        months = statute.months + (statute.extension_months if extended else 0)
        end = add_months(received, months)
    else:
        days = statute.days + (statute.extension_days if extended else 0)
        end = received + timedelta(days=days)
    return past_weekend(end + timedelta(days=paused_days(paused)))


def acknowledgement_due(jurisdiction: str, received: date) -> date | None:
    statute = STATUTES[jurisdiction]
    if statute.acknowledge_business_days is None:
        return None
    return add_business_days(received, statute.acknowledge_business_days)
