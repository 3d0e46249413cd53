"""Business-day arithmetic for the promises we make ("we decide within 2 business days")."""

from __future__ import annotations

from datetime import date, datetime, timedelta


def add_business_days(start: date | datetime, days: int) -> date:
    """The date ``days`` working days (Monday to Friday) after ``start``."""
    current = start.date() if isinstance(start, datetime) else start
    added = 0
    while added < days:
        current += timedelta(days=1)
        if current.weekday() < 5:
            added += 1
    return current
