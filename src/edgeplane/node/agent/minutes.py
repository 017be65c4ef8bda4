"""Totals per (site, name, minute) that an agent reports, with the minutes changed since they
were last taken (a minute is sent again, whole, each time it changes; a minute whose report
failed is marked changed again). Minutes older than ``KEEP_MINUTES`` are forgotten."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

KEEP_MINUTES = 15

MinuteKey = tuple[str, str, int]  # (site, name, minute as epoch seconds)
T = TypeVar("T")


class Minutes(Generic[T]):
    def __init__(self, new: Callable[[], T]) -> None:
        self._new = new
        self._totals: dict[MinuteKey, T] = {}
        self._changed: set[MinuteKey] = set()

    def __len__(self) -> int:
        return len(self._totals)

    def at(self, site: str, name: str, seconds: float) -> T:
        """The totals of the minute of ``seconds`` (made if new), marked changed."""
        key = (site, name, int(seconds // 60) * 60)
        totals = self._totals.get(key)
        if totals is None:
            totals = self._totals[key] = self._new()
        self._changed.add(key)
        return totals

    def take_changed(self) -> list[tuple[MinuteKey, T]]:
        """The minutes changed since the last call, in key order."""
        out = [(key, self._totals[key]) for key in sorted(self._changed)]
        self._changed.clear()
        return out

    def mark_changed(self, site: str, name: str, minute_epoch: int) -> None:
        """Send the minute again (its report failed), if it is still kept."""
        key = (site, name, minute_epoch)
        if key in self._totals:
            self._changed.add(key)

    def forget_changes(self) -> None:
        self._changed.clear()

    def forget_before(self, epoch_s: float) -> None:
        for key in [k for k in self._totals if k[2] < epoch_s - KEEP_MINUTES * 60]:
            del self._totals[key]
            self._changed.discard(key)
