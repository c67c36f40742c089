"""Date ranges in the admin's filters and exports: one rule for every route.

A bound may be a date (``2026-12-01``) or a date-time. A date means the whole day in the
store's time zone, at both ends: ``from=2026-12-01&to=2026-12-01`` is that one day. A date-time
is taken as given (without an offset: the store's time zone); ``to`` as a date-time is the
first instant not included. A range that ends before it starts is a 422.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gateway.problems import Problem

# How a bound is documented in OpenAPI.
DATE_BOUND = ("a date (YYYY-MM-DD: the whole day in the store's time zone, inclusive) or an "
              "ISO 8601 date-time")


def store_zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def bound(value: str | None, zone: ZoneInfo, *, end: bool, field: str) -> datetime | None:
    """A range bound in UTC: the start of the day (``end``: of the next day) for a date."""
    if not value:
        return None
    try:
        if len(value) == 10:
            day = date.fromisoformat(value) + timedelta(days=1 if end else 0)
            return datetime.combine(day, time(), zone).astimezone(UTC)
        when = datetime.fromisoformat(value)
    except ValueError:
        raise Problem(422, "validation_failed", f"{field} is not a date.", errors={
            field: ["A date (YYYY-MM-DD) or an ISO 8601 date-time."]}) from None
    return (when if when.tzinfo else when.replace(tzinfo=zone)).astimezone(UTC)


def date_range(args: Mapping[str, str], start_name: str, end_name: str, zone: ZoneInfo
               ) -> tuple[datetime | None, datetime | None]:
    start = bound(args.get(start_name), zone, end=False, field=start_name)
    end = bound(args.get(end_name), zone, end=True, field=end_name)
    if start is not None and end is not None and end <= start:
        raise Problem(422, "validation_failed", f"{end_name} comes before {start_name}.",
                      errors={end_name: [f"Before {start_name}."]})
    return start, end


def with_ranges(args: Mapping[str, str], ranges: list[tuple[str, str]], zone: ZoneInfo
                ) -> dict[str, str]:
    """The query with each named range's bounds rewritten as UTC date-times."""
    query = dict(args.items())
    for start_name, end_name in ranges:
        start, end = date_range(args, start_name, end_name, zone)
        for name, when in ((start_name, start), (end_name, end)):
            if when is not None:
                query[name] = when.isoformat()
    return query
