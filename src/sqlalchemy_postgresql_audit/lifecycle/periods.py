"""The periods of a partitioned audit table: UTC days, ISO weeks (from Monday) or months.

Pure arithmetic, shared by ``maintenance`` (which partitions to create and drop) and
``coverage`` (how far ahead partitions exist).  UTC, so that a partition's bounds do not depend
on the server's or the session's time zone.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from ..declare.options import PartitionInterval
from ..errors import AuditError

#: How many periods after the current one ``maintain`` keeps created.  Four: a weekly or
#: monthly job can miss three runs, a daily one three days, before a write lands in the
#: DEFAULT partition; more would only add empty tables for the planner to skip.
PREMAKE = 4


@dataclass(frozen=True, slots=True, order=True)
class Period:
    """``[lower, upper)``, both aware UTC datetimes at a period start."""

    lower: datetime.datetime
    upper: datetime.datetime
    suffix: str


def utc(moment: datetime.datetime) -> datetime.datetime:
    """``moment`` as an aware UTC datetime; a naive one is taken as UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=datetime.timezone.utc)
    return moment.astimezone(datetime.timezone.utc)


def moment_of(at: object, what: str) -> datetime.datetime:
    """``at`` (now when ``None``) in UTC; anything but a time zone aware datetime is refused,
    naming ``at`` and ``what`` was given it: a date or a string has no moment, and a naive
    datetime no time zone (``as_of`` refuses it too, rather than guess one)."""
    if at is None:
        return datetime.datetime.now(datetime.timezone.utc)
    if not isinstance(at, datetime.datetime):
        raise AuditError(
            f"{what}: at must be a datetime with a time zone, got {type(at).__name__} {at!r}"
        )
    if at.tzinfo is None or at.utcoffset() is None:
        raise AuditError(
            f"{what}: at={at.isoformat()} is a naive datetime; give it a time zone, e.g. "
            "at.replace(tzinfo=datetime.timezone.utc)"
        )
    return utc(at)


def period_of(moment: datetime.datetime, interval: PartitionInterval) -> Period:
    """The period holding ``moment``."""
    at = utc(moment)
    day = datetime.datetime(at.year, at.month, at.day, tzinfo=datetime.timezone.utc)
    if interval == "day":
        return Period(lower=day, upper=day + datetime.timedelta(days=1), suffix=_suffix(day))
    if interval == "week":
        monday = day - datetime.timedelta(days=day.weekday())
        return Period(
            lower=monday, upper=monday + datetime.timedelta(days=7), suffix=_suffix(monday)
        )
    first = day.replace(day=1)
    following = (first + datetime.timedelta(days=32)).replace(day=1)
    return Period(lower=first, upper=following, suffix=_suffix(first)[:6])


def _suffix(start: datetime.datetime) -> str:
    """A period's part of its partition's name: ``YYYYMMDD``, the year zero-padded (``%Y``
    does not pad years before 1000, which would make ``p101`` of 0001-01-01)."""
    return f"{start.year:04d}{start:%m%d}"


def periods_ahead(at: datetime.datetime, interval: PartitionInterval) -> list[Period]:
    """The current period and the ``PREMAKE`` after it."""
    found = [period_of(at, interval)]
    while len(found) <= PREMAKE:
        found.append(period_of(found[-1].upper, interval))
    return found


def bound_text(moment: datetime.datetime) -> str:
    """A partition bound as PostgreSQL reads it: UTC with an explicit offset (a
    ``timestamp without time zone`` column, ``legacy_timestamp``, ignores the offset)."""
    at = utc(moment)
    return f"{at.year:04d}-{at:%m-%d %H:%M:%S}+00"  # %Y does not pad years before 1000
