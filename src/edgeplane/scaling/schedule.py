"""A group's schedule: known peaks as floors. Each entry raises the group's minimum from each
time its cron expression names, for its duration (scale ahead of the peak, hold through it).
Stateless: whether an entry holds now is the time of its last firing plus its duration."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from edgeplane.model.scaling import ScheduledFloor


def check(entry: ScheduledFloor) -> tuple[str, str] | None:
    """(field, reason) when the entry is refused, or None."""
    if len(entry.cron.split()) != 5 or not croniter.is_valid(entry.cron):
        return "cron", f"{entry.cron!r} is not a cron expression of five fields (m h dom mon dow)"
    try:
        ZoneInfo(entry.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return (
            "timezone",
            f"unknown time zone {entry.timezone!r} (an IANA name such as Europe/Paris)",
        )
    return None


def active(entry: ScheduledFloor, now: datetime) -> bool:
    """Whether ``now`` (aware) falls in one of the entry's windows."""
    local = now.astimezone(ZoneInfo(entry.timezone))
    # the last firing at or before now (croniter's get_prev is strictly before: step a second)
    last = croniter(entry.cron, local + timedelta(seconds=1)).get_prev(datetime)
    return local < last + timedelta(minutes=entry.duration_minutes)


def floor(
    min_size: int, entries: Sequence[ScheduledFloor], now: datetime
) -> tuple[int, str | None]:
    """The group's minimum now and, when a scheduled entry raises it, that entry's label."""
    best, why = min_size, None
    for i, entry in enumerate(entries):
        if entry.min_size > best and active(entry, now):
            best, why = entry.min_size, entry.name or f"schedule {i + 1} ({entry.cron})"
    return best, why
